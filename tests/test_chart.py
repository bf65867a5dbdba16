"""The closing chart (tui/screens/chart.py) says what `migviz compare` says: at 80×24, 100×30 and
200×60 each figure is the summary's, formatted as the report formats it, in the report's
table where the report has the row; the longer bar is the larger figure's and the bars are in
proportion; the headline is the report's last line; nothing is wider than the screen; escape
and q close it. A broadcast pair (arm64) shows its invalidations and waits, not IPIs. Every
theme the picker offers gets bars that show on its background, in colours told apart.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable

import pytest
from textual.color import Color
from textual.content import Content
from textual.pilot import Pilot
from textual.theme import BUILTIN_THEMES, Theme

from core.bench import run_once
from core.scenario import Mode, Scenario, load_scenario
from core.summary import RunSummary
from themes import fallback_palette, load_builtin_themes, offered
from themes.contrast import GLYPH, colour_difference, contrast_ratio, css_variables, effective
from tui.report import compare_headline, format_compare
from tui.screens.chart import (
    APART,
    EIGHTHS,
    FULL,
    MODE_COLOURS,
    PIECES,
    ChartColours,
    ChartScreen,
    ChartView,
    stacked,
)
from tui.themed import ThemedApp
from tui.units import format_count, format_ns

SIZES = [(80, 24), (100, 30), (200, 60)]
ROW = re.compile(rf"^\s*(serial|batched)\s+([{FULL}{EIGHTHS[1:]}]*) (\S.*?)\s*$")
LEGEND_HEAD = re.compile(r"█ [a-z]")  # the legend's swatches, each before a piece's name
PIECE_NAMES = [name for name, _, _ in PIECES]


def bar_cells(text: str) -> float:
    """How long a drawn bar is, in cells (█ is a whole one, ▏ to ▉ one to seven eighths)."""
    return sum(1.0 if char == FULL else EIGHTHS.index(char) / 8 for char in text)


def runs(overrides: list[str]) -> tuple[Scenario, RunSummary, RunSummary]:
    scenario = load_scenario("tiny", overrides)
    return scenario, run_once(scenario, Mode.SERIAL), run_once(scenario, Mode.BATCHED)


@pytest.fixture(scope="module")
def x86() -> tuple[Scenario, RunSummary, RunSummary]:
    return runs([])


@pytest.fixture(scope="module")
def arm64() -> tuple[Scenario, RunSummary, RunSummary]:
    return runs(["topology.arch=arm64-tlbi"])


class ChartApp(ThemedApp):
    """The smallest app that shows the chart: migviz's themes, the chart pushed at start."""

    def __init__(self, serial: RunSummary, batched: RunSummary, caption: str,
                 theme: str | None = None) -> None:
        super().__init__()
        self.runs = (serial, batched)
        self.caption = caption
        self.wanted_theme = theme

    def on_mount(self) -> None:
        self.use_theme(self.wanted_theme)
        self.push_screen(ChartScreen(*self.runs, self.caption))


def run_chart(app: ChartApp, size: tuple[int, int],
              body: Callable[[Pilot[int], ChartView], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ChartScreen)
            await body(pilot, app.screen.query_one(ChartView))

    asyncio.run(main())


def plain(view: ChartView) -> list[str]:
    return [line.plain for line in view.lines]


def block(lines: list[str], heading: str) -> list[str]:
    """The lines of one chart: from its heading to the next heading (thick bars have a blank
    line between the modes' bars, and rows without a label above and below the labelled one)."""
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(heading))
    out = [lines[start]]
    for line in lines[start + 1:]:
        if line.strip() and not line.lstrip().startswith(("serial", "batched", FULL)):
            break
        out.append(line)
    return out


def bars(lines: list[str], heading: str) -> dict[str, tuple[float, str, int]]:
    """Each mode's bar in a chart: its length in cells, the figure after it, and where the
    line's text ends (the column after its last character)."""
    found = {}
    for line in block(lines, heading)[1:]:
        if LEGEND_HEAD.search(line):
            break  # the time chart's legend: figures, not bars
        match = ROW.match(line)
        if match and match.group(1) not in found:
            found[match.group(1)] = (bar_cells(match.group(2)), match.group(3),
                                     len(line.rstrip()))
    assert set(found) == {"serial", "batched"}, (heading, found)
    return found


def compare_rows(scenario: Scenario, serial: RunSummary,
                 batched: RunSummary) -> dict[str, tuple[str, str, str]]:
    """`migviz compare`'s table: label → (serial, batched, change)."""
    table = {}
    for line in format_compare({"serial": serial, "batched": batched}, scenario).splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 4:
            table[cells[0]] = (cells[1], cells[2], cells[3])
    return table


def count(value: float) -> str:
    """A count as the report's tables print it."""
    return f"{value:,.0f}"


def assert_in_proportion(found: dict[str, tuple[float, str, int]], serial: float,
                         batched: float) -> None:
    """The larger figure has the longer bar, and the bars are in proportion within a cell."""
    (s_len, _, _), (b_len, _, _) = found["serial"], found["batched"]
    if serial == batched:
        assert s_len == b_len
        return
    longer, shorter = (s_len, b_len) if serial > batched else (b_len, s_len)
    large, small = max(serial, batched), min(serial, batched)
    assert longer > shorter
    assert abs(shorter - longer * small / large) <= 1.0, (found, serial, batched)


def assert_nothing_overflows(view: ChartView) -> None:
    width = view.scrollable_content_region.width
    too_wide = [line.plain for line in view.lines if line.cell_length > width]
    assert not too_wide, (width, too_wide)
    # What reaches the screen is what the lines say (no line cut by the crop to the width).
    top = view.scroll_offset.y
    for y in range(min(view.size.height, len(view.lines) - top)):
        assert view.render_line(y).text.rstrip() == view.lines[top + y].plain.rstrip()


# ---------------------------------------------------------------------------------------------
# What the chart shows


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_figure_is_the_reports(size: tuple[int, int],
                                     x86: tuple[Scenario, RunSummary, RunSummary]) -> None:
    scenario, serial, batched = x86
    width = size[0]
    app = ChartApp(serial, batched, "tiny, complete runs")
    table = compare_rows(scenario, serial, batched)

    async def body(pilot: Pilot[int], view: ChartView) -> None:
        lines = plain(view)
        assert len(lines) <= view.size.height  # x86 tiny needs no scrolling at these sizes
        assert_nothing_overflows(view)
        assert "tiny, complete runs" in lines[0] and "serial (Linux 6.2)" in lines[0]

        # The headline, wrapped to the width, is the report's closing sentence.
        headline = compare_headline(serial, batched)
        assert format_compare({"serial": serial, "batched": batched}, scenario) \
            .splitlines()[-1].strip() == headline
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("batched "))
        shown = []
        for line in lines[start:]:
            if not line.strip():
                break
            shown.append(line.strip())
            if " ".join(shown) == headline:
                break
        assert " ".join(shown) == headline

        expected: dict[str, tuple[str, Callable[[float], str]]] = {
            "IPIs delivered (TLB row)": ("nr_tlb_remote_flush_received", count),
            "simulated time": ("sim_time_ns", format_ns),
            "pages per second": ("pages_per_sec", format_count),
            "workload stall p99": ("stall_p99_ns", format_ns),
        }
        for label, (key, fmt) in expected.items():
            found = bars(lines, label)
            s_value, b_value = getattr(serial, key), getattr(batched, key)
            assert found["serial"][1] == fmt(s_value) and found["batched"][1] == fmt(b_value)
            # ... and `migviz compare` prints the same figures and the same change.
            assert table[label][:2] == (found["serial"][1], found["batched"][1])
            heading = block(lines, label)[0]
            assert heading.rstrip().endswith(f"batched {table[label][2]}"), heading
            assert_in_proportion(found, s_value, b_value)
            # The longer bar fills the width (its figure ends at the right margin).
            longest = max(found.values(), key=lambda row: row[0])
            assert longest[2] >= view.scrollable_content_region.width - 2

        # Where the time went: one stacked bar per mode on one scale, totals of the pieces;
        # the legend gives each piece's figure for each mode.
        pieces = {mode: [getattr(run, key) for _, key, _ in PIECES]
                  for mode, run in (("serial", serial), ("batched", batched))}
        found = bars(lines, "where the time went")
        for mode, values in pieces.items():
            assert found[mode][1] == format_ns(sum(values))
        assert_in_proportion(found, sum(pieces["serial"]), sum(pieces["batched"]))
        chart = block(lines, "where the time went")
        legend = chart[next(i for i, line in enumerate(chart) if LEGEND_HEAD.search(line)):]
        heads = [line for line in legend if "█ " in line]
        assert [name for head in heads for name in re.findall(r"█ (\w+)", head)] == PIECE_NAMES
        for mode, values in pieces.items():
            figures = [figure for line in legend if line.strip().startswith(mode)
                       for figure in re.split(r"\s{2,}", line.strip().removeprefix(mode).strip())]
            assert figures == [format_ns(value) for value in values], (mode, legend)

    run_chart(app, size, body)
    assert width == app.size.width


def test_broadcast_runs_show_invalidations_and_waits_not_ipis(
        arm64: tuple[Scenario, RunSummary, RunSummary]) -> None:
    scenario, serial, batched = arm64
    assert serial.nr_tlb_remote_flush_received == batched.nr_tlb_remote_flush_received == 0
    assert batched.tlbi_broadcasts > 0
    app = ChartApp(serial, batched, "arm64 tiny")

    async def body(pilot: Pilot[int], view: ChartView) -> None:
        lines = plain(view)
        assert_nothing_overflows(view)
        text = "\n".join(lines)
        assert "IPI" not in text  # not in the headings, not in the headline
        assert "Linux 6.3" not in lines[0]  # arm64 batched its flush in 6.5
        for label, key in (("broadcast invalidations", "tlbi_broadcasts"),
                           ("broadcast waits (DSB/TLBSYNC)", "sync_waits")):
            found = bars(lines, label)
            s_value, b_value = getattr(serial, key), getattr(batched, key)
            assert (found["serial"][1], found["batched"][1]) == (count(s_value), count(b_value))
            assert_in_proportion(found, s_value, b_value)
        headline = compare_headline(serial, batched)
        assert "fewer broadcast waits (DSB/TLBSYNC)" in headline
        assert " ".join(line.strip() for line in lines[1:3]).startswith(headline)
        # `migviz compare` ends with the same sentence.
        report = format_compare({"serial": serial, "batched": batched}, scenario)
        assert report.splitlines()[-1].strip() == headline

    run_chart(app, (100, 30), body)


def test_a_chart_taller_than_the_screen_scrolls(
        arm64: tuple[Scenario, RunSummary, RunSummary]) -> None:
    _, serial, batched = arm64
    app = ChartApp(serial, batched, "arm64 tiny")

    async def body(pilot: Pilot[int], view: ChartView) -> None:
        assert len(view.lines) > view.size.height
        assert_nothing_overflows(view)  # the lines leave the scrollbar its column
        await pilot.press("end")
        await pilot.pause()
        assert view.scroll_offset.y == len(view.lines) - view.size.height
        last = view.render_line(view.size.height - 1).text
        assert last.strip().startswith("batched") and format_ns(batched.time_wait_ns) in last
        assert_nothing_overflows(view)

    run_chart(app, (80, 18), body)


@pytest.mark.parametrize("key", ["escape", "q"])
def test_escape_and_q_close_it(key: str, x86: tuple[Scenario, RunSummary, RunSummary]) -> None:
    _, serial, batched = x86
    app = ChartApp(serial, batched, "tiny")

    async def body(pilot: Pilot[int], view: ChartView) -> None:
        await pilot.press(key)
        await pilot.pause()
        assert not isinstance(app.screen, ChartScreen)
        assert not app.screen.query(ChartView)

    run_chart(app, (80, 24), body)


# ---------------------------------------------------------------------------------------------
# Bars


@pytest.mark.parametrize("values", [[5, 0, 1, 7, 2, 0, 3], [1, 1, 1], [100, 1], [0, 0, 9]])
@pytest.mark.parametrize("cells", [7, 40])
def test_stacked_bar_gives_each_piece_its_share(values: list[int], cells: int) -> None:
    """Each piece covers its share of the bar within a cell; a cell where two meet shows both
    (the first as the glyph, the next as its background)."""
    styles = [f"#0000{i:02x}" for i in range(len(values))]
    largest = sum(values) * 1.25  # a shorter bar on the scale of a longer one
    covered = [0] * len(values)  # eighths
    for text, style in stacked(values, styles, largest, cells):
        fore, _, back = style.partition(" on ")
        for glyph in text:
            eighths = 8 if glyph == FULL else EIGHTHS.index(glyph)
            covered[styles.index(fore)] += eighths
            if back:
                covered[styles.index(back)] += 8 - eighths
    for value, eighths in zip(values, covered, strict=True):
        assert abs(eighths - value / largest * cells * 8) <= 8, (values, covered)
    assert abs(sum(covered) - sum(values) / largest * cells * 8) <= 8


# ---------------------------------------------------------------------------------------------
# Colours


# What the theme picker offers: migviz's themes, and Textual's own where migviz's colours show.
OFFERED: dict[str, Theme] = {
    **{name: theme for name, theme in BUILTIN_THEMES.items() if offered(theme)},
    **{theme.name: theme for theme in load_builtin_themes()},
}


@pytest.mark.parametrize("name", sorted(OFFERED))
def test_colours_show_and_stay_apart_in_every_offered_theme(name: str) -> None:
    theme = OFFERED[name]
    variables = css_variables(theme, fallback_palette(theme.dark))
    colours = ChartColours.for_variables(variables)
    ground = effective(["$background"], variables)
    for kind, picked, wanted in (("mode", colours.modes, MODE_COLOURS),
                                 ("piece", colours.pieces,
                                  [(n, options) for n, _, options in PIECES])):
        for item, options in wanted:
            # A theme colour (maybe translucent, painted on the background) ...
            painted = {effective(["$background", option], variables).hex for option in options}
            assert picked[item] in painted, (name, item, picked[item])
            # ... that shows as a graphic does (WCAG 1.4.11) ...
            ratio = contrast_ratio(Color.parse(picked[item]), ground)
            assert ratio >= GLYPH, f"{name}: {kind} {item} {picked[item]} is {ratio:.2f}:1"
        # ... and differs at a glance from the others of its kind.
        for (a, one), (b, other) in itertools.combinations(picked.items(), 2):
            difference = colour_difference(Color.parse(one), Color.parse(other))
            assert difference >= APART, f"{name}: {a} {one} vs {b} {other}: ΔE00 {difference:.1f}"


def test_the_drawn_bars_follow_a_theme_switch(
        x86: tuple[Scenario, RunSummary, RunSummary]) -> None:
    """Okabe–Ito gives IPIs and copying one colour: the chart's flush and copy pieces stay
    apart there, and the running chart repaints in the new theme's colours."""
    _, serial, batched = x86
    app = ChartApp(serial, batched, "tiny")

    def piece_colours(view: ChartView) -> set[str]:
        lines = plain(view)
        row = next(i for i, line in enumerate(lines) if line.strip().startswith("where"))
        content: Content = view.lines[row + 1]
        strip = view.render_line(row + 1 - view.scroll_offset.y)
        assert strip.text.rstrip() == content.plain.rstrip()
        ground = view.rich_style.bgcolor
        drawn = set()
        for segment in strip:
            if segment.style is None or not set(segment.text) & set(FULL + EIGHTHS[1:]):
                continue
            for colour in (segment.style.color, segment.style.bgcolor):
                if colour is not None and colour != ground:  # a glyph's, or a piece behind it
                    drawn.add(Color.from_rich_color(colour).hex)
        return drawn

    async def body(pilot: Pilot[int], view: ChartView) -> None:
        assert view.colours is not None
        before = view.colours.pieces
        assert piece_colours(view) == {before[n] for n in PIECE_NAMES if n != "wait"}
        app.theme = "migviz-okabe-ito"
        await pilot.pause()
        await pilot.pause()
        after = view.colours.pieces
        assert after != before and after["flush"] != after["copy"]
        assert piece_colours(view) == {after[n] for n in PIECE_NAMES if n != "wait"}

    assert serial.time_wait_ns == 0  # (tiny never waits: no wait piece is drawn)
    run_chart(app, (100, 30), body)
