"""ChartScreen: the closing chart. Serial against batched as paired bars (IPIs, simulated time,
pages per second, stall p99) and one stacked bar per mode of where the migrating task's time
went, for the end of a run or a race, or any moment the caller names in the caption.

Every figure comes from the two runs' RunSummary fields, printed as `migviz compare` prints them
(its labels, its formats, its changes and its closing sentence, from tui/report.py); only the
lengths of the bars are worked out here. Colours are theme variables, picked per theme: a bar
must reach 3:1 on the background, and the pieces of the stacked bar must stay told apart (in
some themes two of the variables they would take are one colour).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.content import Content
from textual.screen import ModalScreen

from core.scenario import Arch
from core.summary import RunSummary
from themes.contrast import GLYPH, colour_difference, contrast_ratio, css_variables, effective
from tui.report import METRICS, broadcasts, compare_headline, percent_change
from tui.units import format_ns
from tui.widgets.lines import LinesView

FULL = "█"
EIGHTHS = " ▏▎▍▌▋▊▉"  # a cell filled from the left by 0…7 eighths
MODES = ("serial", "batched")
LABEL_WIDTH = len("batched") + 1  # the column naming the mode of each bar

# Where the migrating task's time went (RunSummary.time_*_ns): name, field, and the theme
# colours it may take, first choice first. isolate and wait are outside migrate_pages()'s CPU
# time (isolating comes before the call, waiting is sleeping): greys and a quiet colour.
PIECES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("isolate", "time_isolate_ns",
     ("$foreground 40%", "$foreground 50%", "$foreground 60%", "$state-failed")),
    ("prepare", "time_prepare_ns", ("$foreground 75%", "$foreground", "$node-1")),
    ("unmap", "time_unmap_ns", ("$phase-unmap", "$state-unmapped", "$error")),
    ("flush", "time_flush_ns", ("$ipi", "$phase-flush")),
    ("copy", "time_copy_ns", ("$state-copying", "$accent", "$state-flushed", "$node-1")),
    ("move", "time_move_ns", ("$phase-move", "$state-remapped", "$success", "$node-0")),
    ("wait", "time_wait_ns",
     ("$state-retrying", "$node-0", "$node-1", "$state-flushed", "$accent")),
)
# Each mode's bars: the colours of the split view's columns (and the mode badges) first.
MODE_COLOURS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("serial", ("$secondary", "$node-1", "$accent")),
    ("batched", ("$primary", "$success", "$node-0")),
)
# "Migration time": the migrating task's, or (NUMA balancing) the threads' in their own calls.
TIME_NOTES = (
    "migration time by kind of work; isolate (before the call) and wait (asleep) are outside "
    "migrate_pages()",
    "migration time by kind of work; isolate and wait: outside migrate_pages()",
    "migration time, by kind of work",
)
APART = 15.0  # ΔE00 between the colours of one kind (modes, pieces): different at a glance


@dataclass(frozen=True, slots=True)
class Metric:
    """One pair of bars: a RunSummary field, labelled and formatted as report.py does."""

    key: str
    better: str  # which way is better, in words

    @property
    def label(self) -> str:
        return METRICS[self.key][0]

    def value(self, run: RunSummary) -> float:
        return float(getattr(run, self.key))

    def text(self, run: RunSummary) -> str:
        return METRICS[self.key][1](getattr(run, self.key))


def chart_metrics(serial: RunSummary, batched: RunSummary) -> tuple[Metric, ...]:
    """The pairs of bars, in order. A broadcast mechanism sends no IPIs: its invalidations and
    its waits stand where the IPIs would."""
    flushes: tuple[Metric, ...]
    if broadcasts(serial, batched):
        flushes = (Metric("tlbi_broadcasts", "fewer is better"),
                   Metric("sync_waits", "fewer is better"))
    else:
        flushes = (Metric("nr_tlb_remote_flush_received", "fewer is better"),)
    return (*flushes, Metric("sim_time_ns", "shorter is better"),
            Metric("pages_per_sec", "more is better"), Metric("stall_p99_ns", "lower is better"))


def pick_colours(wanted: Sequence[tuple[str, Sequence[str]]], variables: Mapping[str, str],
                 apart: float) -> dict[str, str]:
    """For each name the first of its colours that reaches 3:1 on ``$background`` and stays
    ``apart`` (ΔE00) from the colours picked before it (its first colour if none does), as the
    opaque colour it paints on the background: a translucent colour drawn over another piece
    would otherwise blend with that piece. If the background is the terminal's own (an ANSI
    theme: nothing can be measured), the first colours, as they are."""
    try:
        ground = effective(["$background"], variables)
    except (KeyError, ValueError):
        return {name: candidates[0] for name, candidates in wanted}
    picked: dict[str, str] = {}
    seen: list[Color] = []
    for name, candidates in wanted:
        choice: Color | None = None
        for expression in candidates:
            try:
                colour = effective(["$background", expression], variables)
            except (KeyError, ValueError):
                continue
            if choice is None:
                choice = colour  # the fallback: the first colour there is
            if contrast_ratio(colour, ground) >= GLYPH and all(
                    colour_difference(colour, other) >= apart for other in seen):
                choice = colour
                break
        if choice is None:
            choice = effective(["$background", "$foreground"], variables)
        picked[name] = choice.hex
        seen.append(choice)
    return picked


@dataclass(frozen=True, slots=True)
class ChartColours:
    """The colour of each mode's bars and of each piece of the stacked bars."""

    modes: Mapping[str, str]
    pieces: Mapping[str, str]

    @classmethod
    def for_variables(cls, variables: Mapping[str, str]) -> ChartColours:
        return cls(pick_colours(MODE_COLOURS, variables, APART),
                   pick_colours([(name, options) for name, _, options in PIECES], variables,
                                APART))


def bar(value: float, largest: float, cells: int) -> str:
    """``value`` as a bar that is ``cells`` long at ``largest``, to an eighth of a cell; a value
    above 0 shows at least an eighth."""
    if value <= 0 or largest <= 0 or cells <= 0:
        return ""
    eighths = max(1, round(value / largest * cells * 8))
    full, rest = divmod(eighths, 8)
    return FULL * full + (EIGHTHS[rest] if rest else "")


def stacked(values: Sequence[float], styles: Sequence[str], largest: float,
            cells: int) -> list[tuple[str, str]]:
    """Pieces side by side as one bar ``cells`` long at ``largest``, each piece's ends placed to
    the eighth: a cell where one piece ends and the next begins is drawn in both colours (the
    first as the glyph, the second as its background)."""
    total = sum(values)
    if total <= 0 or largest <= 0 or cells <= 0:
        return []
    scale = cells * 8 / largest
    ends: list[int] = []
    running = 0.0
    for value in values:
        running += value
        ends.append(round(running * scale))
    length = ends[-1]
    starts = [0, *ends[:-1]]

    def piece_at(eighth: int) -> int:
        return next(i for i in range(len(values)) if starts[i] <= eighth < ends[i])

    out: list[tuple[str, str]] = []
    for cell in range(-(-length // 8)):
        low, high = cell * 8, min(cell * 8 + 8, length)
        first, last = piece_at(low), piece_at(high - 1)
        if first == last:
            glyph, style = (FULL if high - low == 8 else EIGHTHS[high - low]), styles[first]
        elif high - low < 8:  # the bar ends inside this cell: the larger share takes it
            share = ends[first] - low
            glyph = EIGHTHS[high - low]
            style = styles[first] if share * 2 >= high - low else styles[last]
        else:
            glyph, style = EIGHTHS[ends[first] - low], f"{styles[first]} on {styles[last]}"
        if out and out[-1][1] == style and glyph == FULL and out[-1][0][-1] == FULL:
            out[-1] = (out[-1][0] + glyph, style)
        else:
            out.append((glyph, style))
    return out


def _fit(parts: list[tuple[str, str]], width: int) -> Content:
    return Content.assemble(*parts).truncate(width)


def _spread(left: list[tuple[str, str]], right: list[tuple[str, str]], width: int) -> Content:
    """``left`` and ``right`` on one line of ``width``; ``right`` is dropped if it does not fit."""
    used = sum(len(text) for text, _ in left)
    room = width - used - sum(len(text) for text, _ in right)
    if room < 2:
        return _fit(left, width)
    return Content.assemble(*left, " " * room, *right)


class ChartLayout:
    """The chart as lines of ``width`` cells, bars ``thickness`` rows each."""

    def __init__(self, serial: RunSummary, batched: RunSummary, caption: str,
                 colours: ChartColours, close_keys: str = "esc") -> None:
        self.runs = {"serial": serial, "batched": batched}
        self.caption = caption
        self.colours = colours
        self.close_keys = close_keys

    def lines(self, width: int, height: int) -> list[Content]:
        """The chart for ``height`` rows: the thickest bars that fit with a blank line before
        each chart; else one-row bars and as many blank lines as fit (the title's first, then
        the time chart's); if even that does not fit, no blank lines (the view scrolls)."""
        for thickness in (3, 2):
            blocks = self.blocks(width, thickness)
            if sum(len(block) for block in blocks) + len(blocks) - 1 <= height:
                return self.join(blocks, len(blocks) - 1)
        blocks = self.blocks(width, 1)
        spare = height - sum(len(block) for block in blocks)
        return self.join(blocks, max(0, min(spare, len(blocks) - 1)))

    def blocks(self, width: int, thickness: int) -> list[list[Content]]:
        """The header, then each chart: lists of lines."""
        serial, batched = self.runs["serial"], self.runs["batched"]
        return [self.header(width),
                *(self.pair(metric, width, thickness)
                  for metric in chart_metrics(serial, batched)),
                self.time(width, thickness)]

    @staticmethod
    def join(blocks: list[list[Content]], gaps: int) -> list[Content]:
        """The blocks one after another, ``gaps`` of them after a blank line: the first chart,
        the last (the time chart), then the others in order."""
        order = [1, len(blocks) - 1, *range(2, len(blocks) - 1)]
        spaced = set(order[:gaps])
        out: list[Content] = []
        for index, block in enumerate(blocks):
            if index in spaced:
                out.append(Content(""))
            out += block
        return out

    def header(self, width: int) -> list[Content]:
        """The title and caption, then the comparison in report.py's words."""
        # The kernels that brought each path on x86 (arm64 batched its flush in 6.5).
        title = [("serial (Linux 6.2) vs batched (Linux 6.3)", "bold")]
        if any(run.arch != Arch.X86_IPI for run in self.runs.values()) or \
                len(title[0][0]) + len(self.caption) + 3 > width:
            title = [("serial vs batched", "bold")]
        title += [(" · ", "$text-muted"), (self.caption, "bold")]
        close = [(f"{self.close_keys} closes", "$text-muted")]
        if sum(len(text) for text, _ in title + close) + 2 <= width:
            lines = [_spread(title, close, width)]
        elif sum(len(text) for text, _ in title) <= width:
            lines = [_fit(title, width)]
        else:  # the caption on a line of its own
            lines = [_spread(title[:1], close, width)]
            lines += [Content.styled(line, "bold")
                      for line in textwrap.wrap(self.caption, width)]
        headline = compare_headline(serial=self.runs["serial"], batched=self.runs["batched"])
        lines += [Content.styled(line, "bold") for line in textwrap.wrap(headline, width)]
        return lines

    def _bar_rows(self, mode: str, drawn: list[tuple[str, str]], value: str,
                  thickness: int) -> list[Content]:
        """One mode's bar, ``thickness`` rows; its name and value on the middle row."""
        rows = []
        for row in range(thickness):
            middle = row == (thickness - 1) // 2
            label = (mode if middle else "").ljust(LABEL_WIDTH)
            parts: list[tuple[str, str]] = [(label, "$foreground"), *drawn]
            if middle:  # (beside an empty bar, in the bar's first cell)
                parts.append((f" {value}" if drawn and drawn[0][0] else value, "bold"))
            rows.append(Content.assemble(*parts))
        return rows

    def _pair_rows(self, bars: Mapping[str, list[tuple[str, str]]], values: Mapping[str, str],
                   thickness: int) -> list[Content]:
        rows = self._bar_rows("serial", bars["serial"], values["serial"], thickness)
        if thickness > 1:  # thick bars in one colour would touch: a line between them
            rows.append(Content(""))
        return rows + self._bar_rows("batched", bars["batched"], values["batched"], thickness)

    def _heading(self, label: str, notes: Sequence[str], change: str, width: int) -> Content:
        """A chart's name, the longest of its ``notes`` that fits, and batched's change."""
        right = [("batched ", "$text-muted"), (change, "bold")] if change else []
        room = width - len(label) - sum(len(text) for text, _ in right) - 2
        note = next((note for note in notes if len(note) + 2 <= room), "")
        left = [(label, "bold")] + ([(f"  {note}", "$text-muted")] if note else [])
        return _spread(left, right, width)

    def pair(self, metric: Metric, width: int, thickness: int) -> list[Content]:
        """A heading (label, which way is better, batched's change), then the two bars."""
        serial, batched = self.runs["serial"], self.runs["batched"]
        values = {mode: metric.text(run) for mode, run in self.runs.items()}
        cells = width - LABEL_WIDTH - 1 - max(len(text) for text in values.values())
        largest = max(metric.value(serial), metric.value(batched))
        bars = {mode: [(bar(metric.value(run), largest, cells), self.colours.modes[mode])]
                for mode, run in self.runs.items()}
        change = percent_change(metric.value(serial), metric.value(batched))
        return [self._heading(metric.label, (metric.better,), change, width),
                *self._pair_rows(bars, values, thickness)]

    def time(self, width: int, thickness: int) -> list[Content]:
        """Where the migrating task's time went: one stacked bar per mode on one scale, and a
        table of the pieces, coloured as in the bars, with each mode's figures."""
        spent = {mode: [float(getattr(run, key)) for _, key, _ in PIECES]
                 for mode, run in self.runs.items()}
        totals = {mode: format_ns(sum(values)) for mode, values in spent.items()}
        cells = width - LABEL_WIDTH - 1 - max(len(text) for text in totals.values())
        largest = max(sum(values) for values in spent.values())
        styles = [self.colours.pieces[name] for name, _, _ in PIECES]
        bars = {mode: stacked(values, styles, largest, cells) for mode, values in spent.items()}
        heading = self._heading("where the time went", TIME_NOTES, "", width)
        space = [Content("")] if thickness > 1 else []  # thick bars would touch the legend
        return [heading, *self._pair_rows(bars, totals, thickness), *space, *self.legend(width)]

    def legend(self, width: int) -> list[Content]:
        """The pieces as columns (a colour swatch and a name over each mode's figure), in as
        many rows of columns as the width needs."""
        columns = []
        for name, key, _ in PIECES:
            figures = {mode: format_ns(getattr(run, key)) for mode, run in self.runs.items()}
            size = max(len(name) + 2, *(len(text) for text in figures.values()))
            columns.append((name, figures, size))
        gap = 2 if LABEL_WIDTH + sum(c[2] + 2 for c in columns) - 2 <= width else 1
        rows: list[list[tuple[str, dict[str, str], int]]] = [[]]
        used = LABEL_WIDTH
        for column in columns:
            if rows[-1] and used + gap + column[2] > width:
                rows.append([])
                used = LABEL_WIDTH
            used += column[2] + (gap if rows[-1] else 0)
            rows[-1].append(column)
        out = []
        for row in rows:
            head: list[tuple[str, str]] = [(" " * LABEL_WIDTH, "")]
            lines: dict[str, list[tuple[str, str]]] = {
                mode: [(mode.ljust(LABEL_WIDTH), "$text-muted")] for mode in MODES}
            for index, (name, figures, size) in enumerate(row):
                space = " " * (gap if index else 0)
                head += [(space, ""), ("█ ", self.colours.pieces[name]),
                         (name.ljust(size - 2), "$text-muted")]
                for mode in MODES:
                    lines[mode].append((space + figures[mode].ljust(size), "$foreground"))
            out += [_fit(head, width), *(_fit(lines[mode], width) for mode in MODES)]
        return out


class ChartView(LinesView):
    """The chart, redrawn for its width and height and for the theme's colours."""

    DEFAULT_CSS = """
    ChartView { height: 1fr; background: $background; }
    """

    def __init__(self, serial: RunSummary, batched: RunSummary, caption: str, *,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.serial, self.batched, self.caption = serial, batched, caption
        self.colours: ChartColours | None = None

    def on_mount(self) -> None:
        # (LinesView's on_mount runs too: Textual calls each class's handler.) The signal comes
        # once the new theme's CSS is built; a watcher of App.theme would run before that.
        self.app.theme_changed_signal.subscribe(self, self._theme_switched)

    def _theme_switched(self, _theme: object) -> None:
        self.colours = None
        self.rebuild()

    def on_width(self, width: int) -> None:
        self.rebuild()

    def close_keys(self) -> str:
        """The keys that close the chart, as bound now (a keymap may have moved them)."""
        keys = getattr(self.app, "bound_keys", None)
        return str(keys("chart.close", "escape,q")) if keys is not None else "esc/q"

    def rebuild(self) -> None:
        if not self.size.width:
            return
        if self.colours is None:
            app = self.app
            variables = css_variables(app.current_theme, app.get_theme_variable_defaults())
            self.colours = ChartColours.for_variables(variables)
        margin = 1 if self.content_region.width < 100 else 2
        width = self.content_region.width - 2 * margin
        height = self.content_region.height
        layout = ChartLayout(self.serial, self.batched, self.caption, self.colours,
                             self.close_keys())
        lines = layout.lines(width, height)
        if len(lines) > height:  # the view scrolls: its scrollbar takes a column
            width -= self.styles.scrollbar_size_vertical
            lines = layout.lines(width, height)
        pad = Content(" " * margin)
        self.set_lines([Content.assemble(pad, line) for line in lines])


class ChartScreen(ModalScreen[None]):
    """The closing chart over the whole terminal; escape or q closes it."""

    BINDINGS = [
        Binding("escape,q", "close", "Close", id="chart.close"),
        Binding("down", "scroll('down')", "Down", show=False),
        Binding("up", "scroll('up')", "Up", show=False),
        Binding("pagedown", "scroll('page_down')", "Page down", show=False),
        Binding("pageup", "scroll('page_up')", "Page up", show=False),
        Binding("home", "scroll('home')", "Top", show=False),
        Binding("end", "scroll('end')", "Bottom", show=False),
    ]

    DEFAULT_CSS = """
    ChartScreen { background: $background; }
    ChartScreen > ChartView { width: 1fr; height: 1fr; }
    """

    def __init__(self, serial: RunSummary, batched: RunSummary, caption: str) -> None:
        super().__init__()
        self.serial, self.batched, self.caption = serial, batched, caption

    def compose(self) -> ComposeResult:
        yield ChartView(self.serial, self.batched, self.caption, id="chart")

    def action_close(self) -> None:
        self.dismiss()

    def action_scroll(self, where: str) -> None:
        view = self.query_one(ChartView)
        moves = {"down": view.scroll_down, "up": view.scroll_up,
                 "page_down": view.scroll_page_down, "page_up": view.scroll_page_up,
                 "home": view.scroll_home, "end": view.scroll_end}
        moves[where](animate=False)
