"""Nothing is cut: at 80×24, 100×30, 120×36 and 200×60, in the single and the split view, every
line a panel draws fits its panel, the footer shows every key without scrolling, grid titles fit
their border, and the copy-after-flush check stays on the stats line.
"""

from __future__ import annotations

import asyncio

import pytest
from textual.content import Content
from textual.widgets import Footer

from core.scenario import load_scenario
from tui.app import MigvizApp
from tui.widgets.event_log import EventLog
from tui.widgets.folio_grid import FolioGrid
from tui.widgets.header_bar import HeaderBar
from tui.widgets.ipi_panel import IpiPanel
from tui.widgets.lines import FrameLine, LinesView
from tui.widgets.phase_strip import PhaseStrip
from tui.widgets.stats_line import StatsLine
from tui.widgets.tlb_panel import TlbPanel

SIZES = [(80, 24), (100, 30), (120, 36), (200, 60)]


def overruns(app: MigvizApp) -> list[str]:
    """Every place where drawn text is wider than its widget."""
    problems = []
    screen = app.screen
    for view in screen.query(LinesView):
        if not view.display or not view.size.width:
            continue
        width = view.scrollable_content_region.width
        for number, line in enumerate(view.lines):
            if line.cell_length > width:
                problems.append(f"{type(view).__name__} line {number}: {line.plain!r} > {width}")
    for line_widget in [*screen.query(FrameLine), *screen.query(HeaderBar)]:
        if not line_widget.display or not line_widget.size.width:
            continue
        content = line_widget.render()
        assert isinstance(content, Content)
        width = line_widget.content_region.width
        for row in content.split("\n"):
            if row.cell_length > width:
                problems.append(f"{type(line_widget).__name__}: {row.plain!r} > {width}")
    for grid in screen.query(FolioGrid):
        if grid.display and grid.size.width and len(str(grid.border_title)) > grid.size.width - 2:
            problems.append(f"grid title {grid.border_title!r} > {grid.size.width - 2}")
    footer = screen.query_one(Footer)
    if footer.max_scroll_x > 0:
        problems.append(f"footer needs {footer.virtual_size.width} columns, has {footer.size.width}")
    return problems


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("name", ["default", "thp", "contended", "no-flush"])
def test_nothing_is_cut(name: str, size: tuple[int, int]) -> None:
    app = MigvizApp(load_scenario(name), paused=True)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            # The start, a flush in flight, the move phase, the end of the first call.
            for steps in (0, 100, 30, 200):
                for _ in range(steps):
                    app.action_step_event()
                await pilot.pause()
                assert overruns(app) == [], (name, size, app.lane.engine.events)
                stats = app.screen.query_one(StatsLine).render()
                assert isinstance(stats, Content)
                assert "copy-after-flush" in stats.plain or "flush→copy" in stats.plain
            await pilot.press("s")
            await pilot.pause()
            for _ in range(3):
                await pilot.press("n")
            await pilot.pause()
            assert overruns(app) == [], (name, size, "split")
            for strip in app.screen.query(PhaseStrip):
                text = strip.render()
                assert isinstance(text, Content)
                assert "move" in text.plain or "between" in text.plain or "done" in text.plain

    asyncio.run(main())


def test_the_panels_widgets_are_all_checked() -> None:
    # overruns() knows every kind of text panel the app draws.
    assert {TlbPanel, IpiPanel, EventLog} <= set(LinesView.__subclasses__())
    assert {PhaseStrip, StatsLine} <= set(FrameLine.__subclasses__())
