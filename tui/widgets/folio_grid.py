"""FolioGrid: one node's folios, one cell per folio, glyph and colour carrying the state.

Both grids (node 0 and node 1) use the same slot for a folio, so a folio that migrates visibly
leaves a slot on one grid and fills the same slot on the other. While a folio is in flight the
destination slot shows the folio allocated by get_new_folio() (◌), then the copy arriving (▓).
A 2 MiB THP is a wide cell that names its size (``[■2M■]``). On a big grid (a big terminal, a
projector) the cells grow, wider and up to three lines tall, to fill the space (see
:func:`choose_layout`). The grid is a Line-API ``ScrollView``: only the rows whose cells changed
since the last frame are repainted, and finished rows are cached.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.folios import FolioState
from tui.widgets.frame import Frame

# Cell codes beyond FolioState (0..8): what a slot shows for a folio that is not on this node.
RESERVED = 9  # destination folio allocated (get_new_folio), nothing copied yet
ARRIVING = 10  # folio_copy() is filling the destination folio
ABSENT = 11  # the folio lives on another node
CODES = 12

GLYPHS: dict[int, str] = {
    FolioState.MAPPED: "■",
    FolioState.UNMAPPED: "▒",
    FolioState.FLUSHED: "░",
    FolioState.COPYING: "»",
    FolioState.REMAPPED: "◆",
    FolioState.RETRYING: "↻",
    FolioState.FAILED: "✗",
    FolioState.SPLIT: "÷",
    FolioState.PROT_NONE: "□",
    RESERVED: "◌",
    ARRIVING: "▓",
    ABSENT: "·",
}

COMPONENT: dict[int, str] = {
    FolioState.MAPPED: "foliogrid--mapped",
    FolioState.UNMAPPED: "foliogrid--unmapped",
    FolioState.FLUSHED: "foliogrid--flushed",
    FolioState.COPYING: "foliogrid--copying",
    FolioState.REMAPPED: "foliogrid--remapped",
    FolioState.RETRYING: "foliogrid--retrying",
    FolioState.FAILED: "foliogrid--failed",
    FolioState.SPLIT: "foliogrid--split",
    FolioState.PROT_NONE: "foliogrid--prot-none",
    RESERVED: "foliogrid--reserved",
    ARRIVING: "foliogrid--arriving",
    ABSENT: "foliogrid--absent",
}

# (code, short label, long meaning) in the order the legend and the help list them.
LEGEND: tuple[tuple[int, str, str], ...] = (
    (FolioState.MAPPED, "mapped", "mapped on this node, not being migrated"),
    (FolioState.PROT_NONE, "PROT_NONE", "NUMA balancing's scan made its PTE PROT_NONE: the next "
     "touch takes a hinting fault"),
    (FolioState.UNMAPPED, "unmapped·stale TLB", "PTE is a migration entry but the TLB flush is "
     "still pending: other CPUs may hit stale entries"),
    (FolioState.FLUSHED, "flushed", "unmapped and every TLB flushed: safe to copy"),
    (FolioState.COPYING, "copying", "folio_copy() is reading it"),
    (ARRIVING, "arriving", "the destination folio being filled by the copy"),
    (RESERVED, "reserved", "destination folio allocated (get_new_folio), not copied yet"),
    (FolioState.REMAPPED, "remapped", "migrated in this move, mapped on its new node"),
    (FolioState.RETRYING, "retry", "-EAGAIN (or given up by the async batch): tried again"),
    (FolioState.FAILED, "failed", "could not be migrated in this move"),
    (ABSENT, "elsewhere", "an empty slot: the folio is on the other node"),
)

THP_ORDER = 9

CACHED_ROWS = 1024  # rendered rows kept: bounded, the least recently drawn go first


def cell_glyphs(order: int) -> int:
    """How many glyphs a folio's cell shows: 1 for a base page, more for a large folio."""
    if order == 0:
        return 1
    return 4 if order >= THP_ORDER else max(1, order // 3 + 1)


def cell_width(order: int, scale: int = 1) -> int:
    """Columns a cell takes (large folios get brackets: ``[■■■■]``); ``scale`` widens every
    cell when the grid has room (big terminals, projectors)."""
    return scale if order == 0 else cell_glyphs(order) * scale + 2


THP_LABEL = "2M"  # a PMD-mapped THP's cell names its size: it must not read as four pages


def cell_text(code: int, order: int, scale: int = 1, label: bool = True) -> str:
    """One line of a folio's cell; ``label=False``: a line of a tall cell other than the one
    that names a THP's size (the label is drawn once per cell)."""
    glyph = GLYPHS[code]
    if order == 0:
        return glyph * scale
    inner = cell_glyphs(order) * scale
    if order >= THP_ORDER and label:
        side = (inner - len(THP_LABEL)) // 2
        return "[" + glyph * side + THP_LABEL + glyph * (inner - len(THP_LABEL) - side) + "]"
    return "[" + glyph * inner + "]"


@dataclass(frozen=True, slots=True)
class GridLayout:
    """Where each folio's cell sits: rows are contiguous runs of folio numbers."""

    width: int
    gap: int
    scale: int
    row_start: npt.NDArray[np.int64]  # first folio of each row (plus a sentinel = count)
    x: npt.NDArray[np.int64]  # column of each folio's cell
    row_of: npt.NDArray[np.int64]
    widths: npt.NDArray[np.int64]  # columns of each cell, without the gap
    uniform: bool  # every folio is a base page
    cell_rows: int = 1  # lines of text each cell takes (tall cells on big grids)
    step: int = 1  # lines from one row of cells to the next (cell_rows + 1: a blank line between)

    @property
    def rows(self) -> int:
        return int(self.row_start.size - 1)

    @property
    def lines(self) -> int:
        """Lines of text the grid takes (its virtual height)."""
        return max(self.rows * self.step - (self.step - self.cell_rows), 0)

    @property
    def covered(self) -> int:
        """Character cells the folios' cells cover: how much of the grid they fill."""
        return int(self.widths.sum()) * self.cell_rows

    def label_line(self, part: int) -> bool:
        """Whether line ``part`` of a tall cell is the one naming a THP's size (the middle)."""
        return part == (self.cell_rows - 1) // 2


def grid_layout(orders: npt.NDArray[np.int8], width: int, gap: int,
                scale: int = 1) -> GridLayout:
    """Pack cells left to right, wrapping at ``width``; a wide cell never straddles two rows."""
    count = int(orders.size)
    width = max(width, 1)
    uniform = not (count and orders.any())
    if uniform:
        widths = np.full(count, scale, dtype=np.int64)
        per_row = max(1, (width + gap) // (scale + gap))
        index = np.arange(count, dtype=np.int64)
        row_of = index // per_row
        x = (index % per_row) * (scale + gap)
        rows = (count + per_row - 1) // per_row
        row_start = np.append(np.arange(rows, dtype=np.int64) * per_row, count)
        return GridLayout(width, gap, scale, row_start, x, row_of, widths, True)
    widths = np.array([cell_width(int(o), scale) for o in orders], dtype=np.int64)
    x = np.zeros(count, dtype=np.int64)
    row_of = np.zeros(count, dtype=np.int64)
    starts = [0]
    col = 0
    row = 0
    for i in range(count):
        w = int(widths[i])
        if col > 0 and col + w > width:
            row += 1
            col = 0
            starts.append(i)
        x[i] = col
        row_of[i] = row
        col += w + gap
    starts.append(count)
    return GridLayout(width, gap, scale, np.array(starts, dtype=np.int64), x, row_of, widths,
                      False)


GAP = 1  # columns between two cells of a spaced layout

# A big grid may grow its cells: one of at least this many character cells, as each grid of the
# main view gets on a terminal of about 150×45 (the split view's four: about 160×48). Smaller
# grids keep the standard layout, so terminals up to 120×40 look as they always did.
BIG_GRID_CELLS = 1100
MAX_SCALE = 12  # columns per glyph: wider, a cell would read as a bar, not one folio
MAX_CELL_ROWS = 5

# The cell shapes (columns per glyph, lines) a big grid chooses from. A line of text is about
# twice as tall as a column is wide, so a tall cell stays between 3:4 and 3:2 (width:height) on
# screen, a square-ish block: 3 to 6 columns for 2 lines, 5 to 8 for 3. One line tall: the
# standard layout's 1 to 3 columns.
CELL_SHAPES: tuple[tuple[int, int], ...] = tuple(
    (scale, rows) for rows in range(1, MAX_CELL_ROWS + 1) for scale in range(1, MAX_SCALE + 1)
    if scale <= 3 * rows and (rows == 1 or 2 * scale >= 3 * rows))


def standard_layout(orders: npt.NDArray[np.int8], width: int, height: int) -> GridLayout:
    """The layout for any grid: the widest cells (3 columns, then 2) that fit with a blank line
    between rows, then plain spaced cells, then dense cells (scrolling if even those do not
    fit)."""
    for scale in (3, 2):
        candidate = grid_layout(orders, width, GAP, scale)
        if 2 * candidate.rows - 1 <= height:
            return replace(candidate, step=2)
    layout = grid_layout(orders, width, GAP)
    if layout.rows > height:
        layout = grid_layout(orders, width - 1, 0)  # it scrolls: leave room for the scrollbar
        if layout.rows <= height:
            layout = grid_layout(orders, width, 0)
    return replace(layout, step=2 if 2 * layout.rows - 1 <= height else 1)


def biggest_cells(orders: npt.NDArray[np.int8], width: int,
                  height: int) -> GridLayout | None:
    """Of the :data:`CELL_SHAPES` that fit the grid without scrolling (a blank line between
    rows of cells), the one whose cells cover the most of it (ties: the squarer cell); None if
    none fits."""
    present, counts = np.unique(orders, return_counts=True)
    total_glyphs = sum(cell_glyphs(int(order)) * int(count)
                       for order, count in zip(present, counts, strict=True))
    brackets = 2 * int(np.count_nonzero(orders))
    room = (width + GAP) * (height + 1)
    best: GridLayout | None = None
    best_key = (0, 0)
    for scale, rows in CELL_SHAPES:
        # Every cell with its gap and its blank line must fit in the grid's area: a cheap
        # bound that skips packing big scenarios.
        if (total_glyphs * scale + brackets + GAP * orders.size) * (rows + 1) > room:
            continue
        candidate = grid_layout(orders, width, GAP, scale)
        if candidate.rows * (rows + 1) - 1 > height:
            continue
        candidate = replace(candidate, cell_rows=rows, step=rows + 1)
        key = (candidate.covered, -abs(scale - 2 * rows))
        if best is None or key > best_key:
            best, best_key = candidate, key
    return best


def choose_layout(orders: npt.NDArray[np.int8], width: int, height: int) -> GridLayout:
    """Where the cells go on a grid of ``width`` × ``height``.

    The rule: every grid gets :func:`standard_layout` (cells up to 3 columns wide, one line
    tall). A big grid, of at least :data:`BIG_GRID_CELLS` character cells, then takes the cell
    shape of :func:`biggest_cells` (up to 8 columns and 3 lines) when its cells cover more of
    the grid than the standard layout's, without scrolling. Smaller grids (every terminal up to
    120×40) keep the standard layout exactly, and so does a big grid whose standard layout
    already fills it (or scrolls): no bigger cell fits.
    """
    layout = standard_layout(orders, width, height)
    if width * height >= BIG_GRID_CELLS:
        bigger = biggest_cells(orders, width, height)
        if bigger is not None and bigger.covered > layout.covered:
            layout = bigger
    return layout


def cell_codes(frame: Frame, node: int) -> npt.NDArray[np.uint8]:
    """Each folio's cell code on ``node``'s grid."""
    view = frame.view
    state = view.folio_state
    here = view.folio_node == node
    codes = np.full(state.size, ABSENT, dtype=np.uint8)
    codes[here] = state[here]
    if node == view.dst and not view.done:
        leaving = (view.folio_node == view.src) & view.folio_alive
        codes[leaving & ((state == FolioState.UNMAPPED) | (state == FolioState.FLUSHED))] = RESERVED
        codes[leaving & (state == FolioState.COPYING)] = ARRIVING
    return codes


def grid_title(frame: Frame, codes: npt.NDArray[np.uint8], node: int, width: int) -> str:
    """The grid's title: its node, its role in the move and what it holds, in the longest form
    that fits the border (``width`` 0: not laid out yet, the longest)."""
    view = frame.view
    here = (view.folio_node == node) & view.folio_alive
    folios = int(np.count_nonzero(here))
    pages = int(np.left_shift(1, view.folio_order[here].astype(np.int64)).sum())
    arriving = int(np.count_nonzero((codes == RESERVED) | (codes == ARRIVING)))
    role = short = ""
    if not view.done:
        role, short = (" · source", " src") if node == view.src else (" · destination", " dst")
    extra = f" +{arriving} arriving" if arriving else ""
    plus = f"+{arriving}" if arriving else ""
    forms = (
        f"node {node}{role} · {folios} folios{extra} · {pages} pages",
        f"node {node}{role} · {folios}{plus} folios",
        f"node {node}{short} · {folios}{plus} folios",
        f"node {node}{short} · {folios}{plus}",
        f"n{node}{short} {folios}{plus}",
        f"n{node}",
    )
    room = width - 4  # the border's corners and the spaces around the title
    return next((form for form in forms if width <= 0 or len(form) <= room), forms[-1])


class FolioGrid(ScrollView, can_focus=True, inherit_bindings=False):
    """The folios of one NUMA node."""

    BINDINGS = [
        Binding("up", "cursor(-1, 0)", "Select up", show=False, id="grid.up"),
        Binding("down", "cursor(1, 0)", "Select down", show=False, id="grid.down"),
        Binding("h", "cursor(0, -1)", "Select previous folio", show=False, id="grid.previous"),
        Binding("l", "cursor(0, 1)", "Select next folio", show=False, id="grid.next"),
        Binding("home", "cursor_to(0)", "Select first folio", show=False, id="grid.first"),
        Binding("end", "cursor_to(-1)", "Select last folio", show=False, id="grid.last"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="grid.page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="grid.page-down"),
    ]

    COMPONENT_CLASSES = set(COMPONENT.values()) | {"foliogrid--cursor"}

    DEFAULT_CSS = """
    FolioGrid {
        background: $surface;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    FolioGrid.-node-0 > .foliogrid--mapped { color: $node-0; }
    FolioGrid.-node-1 > .foliogrid--mapped { color: $node-1; }
    FolioGrid > .foliogrid--unmapped { color: $state-unmapped; text-style: bold; }
    FolioGrid > .foliogrid--flushed { color: $state-flushed; text-style: bold; }
    FolioGrid > .foliogrid--copying { color: $state-copying; text-style: bold; }
    FolioGrid > .foliogrid--arriving { color: $state-copying; }
    FolioGrid.-node-0 > .foliogrid--reserved { color: $node-0; }
    FolioGrid.-node-1 > .foliogrid--reserved { color: $node-1; }
    FolioGrid.-node-0 > .foliogrid--prot-none { color: $node-0; }
    FolioGrid.-node-1 > .foliogrid--prot-none { color: $node-1; }
    FolioGrid > .foliogrid--remapped { color: $state-remapped; }
    FolioGrid > .foliogrid--retrying { color: $state-retrying; text-style: bold; }
    FolioGrid > .foliogrid--failed { color: $state-failed; text-style: bold; }
    FolioGrid > .foliogrid--split { color: $state-failed; }
    FolioGrid > .foliogrid--absent { color: $state-absent; }
    FolioGrid > .foliogrid--cursor { text-style: reverse bold; }
    """

    class Selected(Message):
        """The user picked a folio (click or cursor keys)."""

        def __init__(self, folio: int, node: int, clicked: bool = False) -> None:
            super().__init__()
            self.folio = folio
            self.node = node
            self.clicked = clicked

    def __init__(self, node: int, *, id: str | None = None, classes: str | None = None) -> None:
        # Rendered rows of cells, by (row, whether it is a tall cell's labelled line).
        self._cache: LRUCache[tuple[int, bool], Strip] = LRUCache(CACHED_ROWS)
        self._styles: list[Style] | None = None
        self._base: Style | None = None  # self.rich_style, kept with _styles (CSS look-ups cost)
        super().__init__(id=id, classes=f"{classes or ''} -node-{node}".strip())
        self.node = node
        self._frame: Frame | None = None
        self._orders: npt.NDArray[np.int8] = np.zeros(0, dtype=np.int8)
        self._codes: npt.NDArray[np.uint8] = np.zeros(0, dtype=np.uint8)
        self._layout: GridLayout | None = None
        self._selected = -1  # a folio id
        # Cells are laid out in address order: `_order` maps a cell position to its folio and
        # `_rank` a folio to its position (the identity until a THP splits: its pieces get new
        # ids at the end of the table but take the THP's place in the grid).
        self._order: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._rank: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._step = 1  # lines from one row of cells to the next (the layout's step)
        self._title_source: tuple[Frame, npt.NDArray[np.uint8]] | None = None

    # ------------------------------------------------------------------------------------------
    # Data in

    def show(self, frame: Frame) -> None:
        """Take a new frame; repaint only the rows whose cells changed."""
        self._frame = frame
        view = frame.view
        codes = cell_codes(frame, self.node)
        self._update_title(frame, codes)
        if view.folio_order.size != self._order.size:
            self._order = np.argsort(view.folio_first_page, kind="stable").astype(np.int64)
            self._rank = np.empty_like(self._order)
            self._rank[self._order] = np.arange(self._order.size)
        orders = view.folio_order[self._order]
        codes = codes[self._order]
        relayout = orders.size != self._orders.size or not np.array_equal(orders, self._orders)
        if relayout:
            self._orders = orders
            self._codes = codes
            self._selected = frame.selected
            self._relayout()
            return
        layout = self._layout
        if layout is None:
            return
        changed = np.flatnonzero(codes != self._codes)
        self._codes = codes
        rows = set(layout.row_of[changed].tolist()) if changed.size else set()
        if frame.selected != self._selected:
            for folio in (self._selected, frame.selected):
                if 0 <= folio < self._rank.size:
                    rows.add(int(layout.row_of[self._rank[folio]]))
            self._selected = frame.selected
            self._scroll_to_folio(self._selected)
        elif frame.playing and view.last_event is not None:
            # Follow the migration front while playing (big scenarios scroll).
            self._scroll_to_folio(view.last_event.folio)
        self._refresh_rows(rows)

    def _update_title(self, frame: Frame, codes: npt.NDArray[np.uint8]) -> None:
        self._title_source = (frame, codes)
        title = grid_title(frame, codes, self.node, self.size.width)
        if title != self.border_title:  # setting it repaints the whole grid
            self.border_title = title

    def _refresh_rows(self, rows: set[int]) -> None:
        """Repaint these rows of cells: every line of a tall cell."""
        layout = self._layout
        if not rows or layout is None:
            return
        top = self.scroll_offset.y
        height = self.scrollable_content_region.height
        for row in rows:
            self._cache.discard((row, True))
            self._cache.discard((row, False))
            first = row * self._step
            for line in range(max(first, top), min(first + layout.cell_rows, top + height)):
                self.refresh_line(line)

    # ------------------------------------------------------------------------------------------
    # Layout

    def on_resize(self, event: events.Resize) -> None:
        if self._title_source is not None:
            self._update_title(*self._title_source)
        self._relayout()

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self) -> None:
        self._styles = self._base = None
        self._cache.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = self._base = None
        self._cache.clear()

    def _relayout(self) -> None:
        """Lay the cells out for the grid's size (:func:`choose_layout`)."""
        self._cache.clear()
        width = self.size.width
        height = self.size.height
        if width <= 0 or self._orders.size == 0:
            self._layout = None
            self.virtual_size = Size(width, 0)
            self.refresh()
            return
        layout = choose_layout(self._orders, width, height)
        self._layout = layout
        self._step = layout.step
        self.virtual_size = Size(layout.width, layout.lines)
        self.refresh()
        self._scroll_to_selected()

    def _scroll_to_selected(self) -> None:
        self._scroll_to_folio(self._selected)

    def _scroll_to_folio(self, folio: int) -> None:
        layout = self._layout
        if layout is None or not 0 <= folio < self._rank.size:
            return
        first = int(layout.row_of[self._rank[folio]]) * self._step
        top = self.scroll_offset.y
        height = self.scrollable_content_region.height
        if height > 0 and not (top <= first and first + layout.cell_rows <= top + height):
            self.scroll_to_region(Region(0, first, 1, layout.cell_rows), animate=False,
                                  immediate=True)

    # ------------------------------------------------------------------------------------------
    # Drawing

    def _cell_styles(self) -> list[Style]:
        if self._styles is None:
            base = self._base = self.rich_style
            self._styles = [
                base + self.get_component_rich_style(COMPONENT[code], partial=True)
                for code in range(CODES)
            ]
            cursor = self.get_component_rich_style("foliogrid--cursor", partial=True)
            self._styles += [style + cursor for style in self._styles]
        return self._styles

    def _base_style(self) -> Style:
        self._cell_styles()
        assert self._base is not None
        return self._base

    def render_line(self, y: int) -> Strip:
        line = y + self.scroll_offset.y
        width = self.scrollable_content_region.width
        layout = self._layout
        row, part = divmod(line, self._step)
        if layout is None or part >= layout.cell_rows:
            return Strip.blank(width, self._base_style())
        # Every line of a tall cell draws its glyph; only a THP's middle line differs (2M).
        label = layout.uniform or layout.label_line(part)
        cached = self._cache.get((row, label))
        if cached is None or cached.cell_length != width:
            base = self._base_style()
            cached = self.render_row(row, label).crop(0, width).extend_cell_length(width, base)
            self._cache[(row, label)] = cached
        return cached

    def render_row(self, row: int, label: bool = True) -> Strip:
        """One row of cells (unit-testable without an app once styles are set); ``label=False``:
        a line of tall cells other than the one that names a THP's size."""
        layout = self._layout
        if layout is None or not 0 <= row < layout.rows:
            return Strip.blank(0, self._base_style())
        styles = self._cell_styles()
        start, end = int(layout.row_start[row]), int(layout.row_start[row + 1])
        codes = self._codes[start:end].astype(np.int64)
        selected = int(self._rank[self._selected]) if 0 <= self._selected < self._rank.size \
            else -1
        if 0 <= selected - start < codes.size:
            codes = codes.copy()
            codes[selected - start] += CODES
        gap = " " * layout.gap
        segments: list[Segment] = []
        base = self._base_style()
        if layout.uniform:
            # Runs of equal cells become one segment each.
            bounds = np.flatnonzero(np.diff(codes)) + 1
            edges = [0, *bounds.tolist(), codes.size]
            for a, b in zip(edges, edges[1:], strict=False):
                code = int(codes[a])
                glyph = GLYPHS[code % CODES] * layout.scale
                if gap:
                    segments.append(Segment((glyph + gap) * (b - a - 1) + glyph, styles[code]))
                    segments.append(Segment(gap, base))
                else:
                    segments.append(Segment(glyph * (b - a), styles[code]))
        else:
            orders = self._orders[start:end]
            for i in range(codes.size):
                code = int(codes[i])
                segments.append(Segment(cell_text(code % CODES, int(orders[i]), layout.scale,
                                                  label), styles[code]))
                if gap:
                    segments.append(Segment(gap, base))
        return Strip(segments).simplify()

    # ------------------------------------------------------------------------------------------
    # Selecting

    def folio_at(self, x: int, y: int) -> int:
        """The folio under a content-relative point (any line of a tall cell), or -1."""
        layout = self._layout
        row, part = divmod(y + self.scroll_offset.y, self._step)
        if layout is None or part >= layout.cell_rows or not 0 <= row < layout.rows:
            return -1
        start, end = int(layout.row_start[row]), int(layout.row_start[row + 1])
        xs = layout.x[start:end]
        i = int(np.searchsorted(xs, x + self.scroll_offset.x, side="right")) - 1
        if i < 0:
            return -1
        cell = start + i
        if x + self.scroll_offset.x >= layout.x[cell] + layout.widths[cell]:
            return -1
        return int(self._order[cell])

    def cell_offset(self, folio: int) -> tuple[int, int] | None:
        """Where a folio's cell starts (its top-left corner), relative to the content region
        (None if not laid out)."""
        layout = self._layout
        if layout is None or not 0 <= folio < self._rank.size:
            return None
        cell = int(self._rank[folio])
        return (int(layout.x[cell]) - self.scroll_offset.x,
                int(layout.row_of[cell]) * self._step - self.scroll_offset.y)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        folio = self.folio_at(offset.x, offset.y)
        if folio >= 0:
            self.post_message(self.Selected(folio, self.node, clicked=True))

    def action_cursor(self, rows: int, step: int) -> None:
        layout = self._layout
        if layout is None or not self._orders.size:
            return
        current = int(self._rank[max(self._selected, 0)])
        if step:
            target = min(max(current + step, 0), self._orders.size - 1)
        else:
            row = min(max(int(layout.row_of[current]) + rows, 0), layout.rows - 1)
            start, end = int(layout.row_start[row]), int(layout.row_start[row + 1])
            xs = layout.x[start:end]
            target = start + min(int(np.searchsorted(xs, layout.x[current], side="right")) - 1,
                                 end - start - 1)
            target = max(target, start)
        self.post_message(self.Selected(int(self._order[target]), self.node))

    def action_cursor_to(self, position: int) -> None:
        """Select the cell at a position (-1: the last), in address order."""
        if self._orders.size:
            cell = position % self._orders.size
            self.post_message(self.Selected(int(self._order[cell]), self.node))

    def action_page(self, direction: int) -> None:
        rows = max(1, self.scrollable_content_region.height // self._step - 1)
        self.action_cursor(direction * rows, 0)
