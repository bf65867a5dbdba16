"""Folio cells that fill big screens (tui/widgets/folio_grid.py): on a big grid the cells grow,
wider and up to three lines tall, and everything that maps between cells and folios follows
(drawing, the selection highlight, clicks, cursor keys, repaints); grids up to 120×40 keep the
layout they always had.

The app is driven paused, as in test_app.py; expected places and texts are computed here from
the engine's view, not read back from the grid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt
import pytest
from rich.style import Style
from textual.pilot import Pilot

from core.engine import Engine
from core.scenario import load_scenario
from tui.app import MigvizApp
from tui.screens.inspect import InspectScreen
from tui.widgets.folio_grid import (
    BIG_GRID_CELLS,
    CELL_SHAPES,
    GLYPHS,
    THP_LABEL,
    THP_ORDER,
    FolioGrid,
    GridLayout,
    cell_codes,
    cell_text,
    choose_layout,
    grid_layout,
)

BIG = (200, 60)
SMALL_SIZES = [(80, 24), (100, 30), (120, 40)]

Script = Callable[[MigvizApp, Pilot[int]], Awaitable[None]]


def drive(name: str, size: tuple[int, int], script: Script, steps: int = 0) -> None:
    """Run ``script`` against a paused app at ``size``, after ``steps`` engine events."""
    app = MigvizApp(load_scenario(name), paused=True)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            for _ in range(steps):
                app.action_step_event()
            await pilot.pause()
            await script(app, pilot)

    asyncio.run(main())


def old_layout(orders: npt.NDArray[np.int8], width: int, height: int) -> tuple[GridLayout, int]:
    """The grid's layout rule before its cells could grow (FolioGrid._relayout until then), kept
    here as the reference: the layout and its step (2: a blank line between rows)."""
    layout = None
    for scale in (3, 2):
        candidate = grid_layout(orders, width, 1, scale)
        if 2 * candidate.rows - 1 <= height:
            layout = candidate
            break
    if layout is None:
        layout = grid_layout(orders, width, 1)
    if layout.rows > height:
        layout = grid_layout(orders, width - 1, 0)
        if layout.rows <= height:
            layout = grid_layout(orders, width, 0)
    return layout, 2 if 2 * layout.rows - 1 <= height else 1


def assert_old_layout(layout: GridLayout, orders: npt.NDArray[np.int8], width: int,
                      height: int) -> None:
    old, step = old_layout(orders, width, height)
    where = (width, height)
    assert (layout.scale, layout.gap, layout.width, layout.step, layout.cell_rows) == (
        old.scale, old.gap, old.width, step, 1), where
    assert np.array_equal(layout.row_start, old.row_start), where
    assert np.array_equal(layout.x, old.x), where


def address_orders(name: str) -> npt.NDArray[np.int8]:
    """A scenario's folio orders in address order, as the grid lays its cells out."""
    view = Engine(load_scenario(name)).view()
    return view.folio_order[np.argsort(view.folio_first_page, kind="stable")]


def visible_grids(app: MigvizApp) -> list[FolioGrid]:
    return [grid for grid in app.screen.query(FolioGrid) if grid.display and grid.size.width]


def layout_of(grid: FolioGrid) -> GridLayout:
    layout = grid._layout
    assert layout is not None
    return layout


def shown_codes(app: MigvizApp, grid: FolioGrid) -> npt.NDArray[np.uint8]:
    """Each folio's cell code on this grid in the frame the app last pushed."""
    frame = app.last_frame
    assert frame is not None
    return cell_codes(frame, grid.node)


def expected_cells(app: MigvizApp, grid: FolioGrid) -> dict[int, tuple[int, int, int, str]]:
    """Each folio's cell as it should be drawn: (x, top line, width, text of its plain line),
    packed here from the engine's view: address order, left to right, one gap column, a row
    wrapping when the next cell does not fit, ``step`` lines from one row to the next."""
    layout = layout_of(grid)
    view = app.lane.engine.view()
    codes = shown_codes(app, grid)
    cells = {}
    x = row = 0
    for folio in np.argsort(view.folio_first_page, kind="stable").tolist():
        text = cell_text(int(codes[folio]), int(view.folio_order[folio]), layout.scale,
                         label=False)
        if x and x + len(text) > layout.width:
            x, row = 0, row + 1
        cells[folio] = (x, row * layout.step, len(text), text)
        x += len(text) + layout.gap
    return cells


def cell_styles(grid: FolioGrid, x: int, line: int, width: int) -> list[Style]:
    strip = grid.render_line(line - grid.scroll_offset.y).crop(x, x + width)
    return [segment.style or Style() for segment in strip]


async def click_cell(pilot: Pilot[int], grid: FolioGrid, x: int, y: int) -> None:
    """Click a content-relative point of the grid (as the test of clicks in test_app.py)."""
    region = grid.content_region
    await pilot.click(grid, offset=(region.x - grid.region.x + x, region.y - grid.region.y + y))
    await pilot.pause()


# ----------------------------------------------------------------------------------------------
# Where nothing changes


@pytest.mark.parametrize("size", SMALL_SIZES, ids=[f"{w}x{h}" for w, h in SMALL_SIZES])
@pytest.mark.parametrize("name", ["tiny", "default", "thp"])
def test_terminals_up_to_120x40_keep_the_layout_they_had(name: str,
                                                         size: tuple[int, int]) -> None:
    async def script(app: MigvizApp, pilot: Pilot[int]) -> None:
        for split in (False, True):
            grids = visible_grids(app)
            assert len(grids) == (4 if split else 2)
            for grid in grids:
                layout = layout_of(grid)
                assert_old_layout(layout, grid._orders, grid.size.width, grid.size.height)
                old, step = old_layout(grid._orders, grid.size.width, grid.size.height)
                assert grid.virtual_size.height == old.rows * step - (step - 1)
            await pilot.press("s")
            await pilot.pause()

    drive(name, size, script)


@pytest.mark.parametrize("name", ["tiny", "default", "thp"])
def test_grids_below_the_big_size_keep_the_standard_layout(name: str) -> None:
    orders = address_orders(name)
    seen_small = seen_big = 0
    for width in range(8, 130, 9):
        for height in range(2, 48, 3):
            layout = choose_layout(orders, width, height)
            old, step = old_layout(orders, width, height)
            if width * height < BIG_GRID_CELLS:
                assert_old_layout(layout, orders, width, height)
                seen_small += 1
                continue
            seen_big += 1
            # A big grid only ever grows its cells, never past its height.
            assert layout.covered >= old.covered, (width, height)
            if layout.cell_rows > 1 or layout.scale > old.scale:
                assert layout.lines <= height and layout.step == layout.cell_rows + 1
            else:
                assert_old_layout(layout, orders, width, height)
    assert seen_small and seen_big


# ----------------------------------------------------------------------------------------------
# Big screens


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_big_screen_cells_grow_and_fill_the_grid(name: str) -> None:
    largest = max(CELL_SHAPES, key=lambda shape: shape[0] * shape[1])

    async def script(app: MigvizApp, pilot: Pilot[int]) -> None:
        for grid in visible_grids(app):
            width, height = grid.size.width, grid.size.height
            area = width * height
            layout = layout_of(grid)
            old, _ = old_layout(grid._orders, width, height)
            before, after = old.covered / area, layout.covered / area
            # Cells bigger than today's, up to three lines tall, covering far more of the grid,
            # all of it on screen.
            assert layout.scale * layout.cell_rows > old.scale
            assert layout.cell_rows >= 2
            assert after >= 4 * before, (before, after)
            assert layout.lines <= height and grid.max_scroll_y == 0
            if name == "default":
                # 97 folios: most of the grid is cells, and they reach down its whole height.
                assert after >= 0.5, after
                assert layout.lines >= 0.8 * height
            else:
                # 8 folios cannot fill it: they take the biggest cell there is.
                assert (layout.scale, layout.cell_rows) == largest

    drive(name, BIG, script)


@pytest.mark.parametrize(("name", "steps"), [("tiny", 14), ("default", 130)])
def test_every_folio_is_drawn_with_its_glyph_on_every_line_of_its_cell(name: str,
                                                                       steps: int) -> None:
    async def script(app: MigvizApp, pilot: Pilot[int]) -> None:
        view = app.lane.engine.view()
        for grid in visible_grids(app):
            layout = layout_of(grid)
            assert layout.cell_rows > 1
            codes = shown_codes(app, grid)
            lines = [grid.render_line(y).text for y in range(grid.size.height)]
            shown = set()
            for folio, (x, top, width, plain) in expected_cells(app, grid).items():
                assert grid.cell_offset(folio) == (x, top)
                glyph = GLYPHS[int(codes[folio])]
                drawn = [lines[top + k][x:x + width] for k in range(layout.cell_rows)]
                order = int(view.folio_order[folio])
                for k, text in enumerate(drawn):
                    if order >= THP_ORDER and k == (layout.cell_rows - 1) // 2:
                        # A THP names its size once, on the middle line.
                        label = cell_text(int(codes[folio]), order, layout.scale)
                        assert text == label and THP_LABEL in text, (folio, k, text)
                    else:
                        assert text == plain and THP_LABEL not in text, (folio, k, text)
                    assert glyph in text
                    gap = lines[top + k][x + width:x + width + layout.gap]
                    assert gap.strip() == ""
                if top + layout.cell_rows < len(lines):
                    assert lines[top + layout.cell_rows][x:x + width].strip() == ""
                shown.add(glyph)
            assert len(shown) >= 2, "a run in progress shows several states"

    drive(name, BIG, script, steps)


def test_the_selection_highlights_every_line_of_a_tall_cell() -> None:
    async def script(app: MigvizApp, pilot: Pilot[int]) -> None:
        grid = app.query_one("#node-0", FolioGrid)
        cells = expected_cells(app, grid)
        layout = layout_of(grid)
        selected = app.selected
        neighbour = list(cells)[list(cells).index(selected) + 1]
        for k in range(layout.cell_rows):
            x, top, width, _ = cells[selected]
            assert all(style.reverse for style in cell_styles(grid, x, top + k, width)), k
            x, top, width, _ = cells[neighbour]
            assert not any(style.reverse for style in cell_styles(grid, x, top + k, width)), k

    drive("default", BIG, script, 20)


def test_clicking_any_line_of_a_tall_cell_selects_its_folio() -> None:
    async def script(app: MigvizApp, pilot: Pilot[int]) -> None:
        grid = app.query_one("#node-0", FolioGrid)
        layout = layout_of(grid)
        cells = expected_cells(app, grid)
        # Every point of every cell maps to its folio; gaps and blank lines to none.
        owner = {}
        for folio, (x, top, width, _) in cells.items():
            for k in range(layout.cell_rows):
                for dx in range(width):
                    owner[(x + dx, top + k)] = folio
        for y in range(layout.lines + 1):
            for x in range(layout.width):
                assert grid.folio_at(x, y) == owner.get((x, y), -1), (x, y)
        # Real clicks: a different folio on each line of its cell, second row of cells.
        second_row = [folio for folio, cell in cells.items() if cell[1] == layout.step]
        assert len(second_row) > layout.cell_rows
        for k in range(layout.cell_rows):
            folio = second_row[k + 1]
            x, top, width, _ = cells[folio]
            await click_cell(pilot, grid, x + min(k, width - 1), top + k)
            assert app.selected == folio, (k, folio)
            assert not isinstance(app.screen, InspectScreen)
        chosen = app.selected
        x, top, width, _ = cells[chosen]
        await click_cell(pilot, grid, x, top + layout.cell_rows)  # the blank line below
        assert app.selected == chosen and not isinstance(app.screen, InspectScreen)
        await click_cell(pilot, grid, x + width - 1, top)  # the selected cell's other corner
        assert isinstance(app.screen, InspectScreen), "a click on the selected folio opens it"
        assert app.screen.report.folio == chosen

    drive("default", BIG, script, 20)


def test_cursor_keys_move_by_a_row_of_tall_cells() -> None:
    async def script(app: MigvizApp, pilot: Pilot[int]) -> None:
        grid = app.query_one("#node-0", FolioGrid)
        grid.focus()
        await pilot.pause()
        layout = layout_of(grid)
        cells = expected_cells(app, grid)
        at = {(x, top): folio for folio, (x, top, _, _) in cells.items()}
        in_order = list(cells)  # address order
        await pilot.press("l")
        await pilot.pause()
        first = app.selected
        assert first == in_order[1], "l: the next folio"
        await pilot.press("h")
        await pilot.pause()
        assert app.selected == in_order[0], "h: the previous folio"
        await pilot.press("l")
        await pilot.pause()
        x, top = cells[first][:2]
        await pilot.press("down")
        await pilot.pause()
        assert app.selected == at[(x, top + layout.step)], "one row of cells down, same column"
        below = app.selected
        width = cells[below][2]
        for k in range(layout.cell_rows):  # the highlight moved with it, every line
            assert all(s.reverse for s in cell_styles(grid, x, top + layout.step + k, width))
            assert not any(s.reverse for s in cell_styles(grid, x, top + k, width))
        await pilot.press("up")
        await pilot.pause()
        assert app.selected == first
        await pilot.press("end")
        await pilot.pause()
        last = app.selected
        offset = grid.cell_offset(last)
        assert offset is not None
        assert grid.scroll_offset.y == 0, "the whole grid fits: nothing scrolls"
        assert offset[1] + layout.cell_rows <= grid.scrollable_content_region.height
        await pilot.press("pageup")
        await pilot.pause()
        rows = max(1, grid.scrollable_content_region.height // layout.step - 1)
        expected_row = max(cells[last][1] // layout.step - rows, 0)
        assert cells[app.selected][1] == expected_row * layout.step

    drive("default", BIG, script, 20)


def test_a_changed_tall_cell_repaints_every_line(monkeypatch: pytest.MonkeyPatch) -> None:
    async def script(app: MigvizApp, pilot: Pilot[int]) -> None:
        grid = app.query_one("#node-1", FolioGrid)
        layout = layout_of(grid)
        assert layout.cell_rows > 1
        repainted: list[int] = []
        original = grid.refresh_line

        def record(line: int) -> None:
            repainted.append(line)
            original(line)

        monkeypatch.setattr(grid, "refresh_line", record)
        changed: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        for _ in range(40):
            before = shown_codes(app, grid)
            repainted.clear()
            app.action_step_event()
            await pilot.pause()
            changed = np.flatnonzero(shown_codes(app, grid) != before)
            if changed.size:
                break
        assert changed.size, "some folio's cell changed on the destination"
        cells = expected_cells(app, grid)
        lines = [grid.render_line(y).text for y in range(grid.size.height)]
        for folio in changed.tolist():
            x, top, width, plain = cells[folio]
            assert set(range(top, top + layout.cell_rows)) <= set(repainted), folio
            for k in range(layout.cell_rows):  # the cached rows were dropped: new glyphs
                assert lines[top + k][x:x + width] == plain

    drive("tiny", BIG, script)
