"""Legibility of migviz's colours: WCAG 2 AA contrast of every foreground/background pair the
app draws, in each migviz theme and, for the state colours, under every theme the palette's
picker offers; and the colours that must be told apart stay apart.

The pairs are data (below), each with what draws it. Ratios are computed from the theme files
through Textual's own colour system (``Theme.to_color_system().generate()`` derives ``$panel``,
``$boost`` and the like) and Textual's colour arithmetic for translucent layers, so a CPU row
flashing ``on $ipi 35%`` is measured on the colour it really gets.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.color import Color
from textual.theme import BUILTIN_THEMES

from core.scenario import load_scenario
from themes import STATE_COLOURS, VARIABLES, ThemeFile, builtin_theme_files, fallback_palette, offered
from themes.contrast import (
    GLYPH,
    TEXT,
    colour_difference,
    contrast_ratio,
    css_variables,
    delta_e00,
    pair_ratio,
)
from tui.app import MigvizApp
from tui.cli import main as cli_main
from tui.widgets.folio_grid import FolioGrid

DECORATION = 1.4  # not information (WCAG's "pure decoration"), kept faint on purpose, but visible

# Backgrounds, as layers painted bottom first.
SURFACE = ("$surface",)  # grids, CPU/TLB and IPI panels, event log, the help/inspect/breakpoint boxes
PANEL = ("$panel",)  # header, phase strip, stats line, footer; the IPI sparkline's cells
BACKGROUND = ("$background",)  # the screen: legend, split-view titles and stats lines
FLASH = ("$surface", "$ipi 35%")  # a CPU row handling a shootdown IPI (tlb_panel.py)
RACE = ("$background", "$boost")  # split view's race line
CHECKLIST = ("$surface", "$foreground 5%")  # the focused breakpoint list (its background-tint)


@dataclass(frozen=True)
class Pair:
    """One colour drawn on one background, the contrast it needs, and where the app draws it."""

    colour: str
    on: tuple[str, ...]
    need: float
    where: str


def badge(colour: str, where: str) -> Pair:
    """A badge: the background colour as bold text on a coloured block (header_bar.py)."""
    return Pair("$background", ("$panel", colour), TEXT, where)


PAIRS: tuple[Pair, ...] = (
    # The folio grids (folio_grid.py) and the same glyphs in the help and inspect screens.
    Pair("$node-0", SURFACE, TEXT, "mapped/reserved cells on node 0; CPU labels; grid title"),
    Pair("$node-1", SURFACE, TEXT, "mapped/reserved cells on node 1; CPU labels; grid title"),
    Pair("$state-unmapped", SURFACE, TEXT, "▒ cells; 'stalled on folio N'; set_migration_pte"),
    Pair("$state-flushed", SURFACE, GLYPH, "░ cells: unmapped and flushed"),
    Pair("$state-copying", SURFACE, GLYPH, "» copying / ▓ arriving cells"),
    Pair("$state-remapped", SURFACE, TEXT, "◆ cells; remove_migration_pte in the event log"),
    Pair("$state-retrying", SURFACE, GLYPH, "↻ cells"),
    Pair("$state-failed", SURFACE, GLYPH, "✗ failed / ÷ split cells"),
    Pair("$state-absent", SURFACE, DECORATION,
         "· marks an empty slot: the folio's absence is the information (it is drawn on the "
         "other grid), the dot only keeps the slot's place, faint so that the states stand out"),
    # CPUs & TLBs (tlb_panel.py), IPI panel (ipi_panel.py), event log (event_log.py), the
    # help, inspect and breakpoint screens: text on $surface.
    Pair("$foreground", SURFACE, TEXT, "panel text: CPU roles, IPI totals, log lines, help"),
    Pair("$text-muted", SURFACE, TEXT, "column heads, labels, dimmed log lines"),
    Pair("$text-disabled", SURFACE, TEXT, "'idle' CPUs and the idle-CPU summary line"),
    Pair("$accent", SURFACE, TEXT, "initiator CPU, kernel function names, log border title"),
    Pair("$primary", SURFACE, TEXT, "TLB panel title, help and inspect headings"),
    Pair("$ipi", SURFACE, TEXT, "IPI acks and totals, IPI panel title, tlb_flush lines"),
    Pair("$tlb-valid", SURFACE, GLYPH, "█ valid TLB entries in a CPU's bar"),
    Pair("$tlb-stale", SURFACE, TEXT, "▒ stale entries, and the stale count"),
    Pair("$error", SURFACE, TEXT, "'no rounds at all' (a kernel that never flushes)"),
    Pair("$warning", SURFACE, TEXT, "inspect: 'this THP was split'"),
    # A CPU row flashing while it handles an IPI: all its text and bars take $foreground, as
    # no colour of its own (not even $ipi: a tint of a colour never contrasts with the colour
    # itself) could reach the bar there in every theme.
    Pair("$foreground", FLASH, TEXT, "a flashing CPU row: label, role, bar, counts, '↯ IPI'"),
    # Header (header_bar.py), phase strip (phase_strip.py), stats line (stats_line.py), footer.
    Pair("$foreground", PANEL, TEXT, "header, stats figures, phase strip, footer descriptions"),
    Pair("$text-muted", PANEL, TEXT, "header separators and labels, stats labels"),
    Pair("$primary", PANEL, TEXT, "' migviz' in the header"),
    Pair("$accent", PANEL, TEXT, "'»» skipping a quiet gap'; the footer's keys"),
    Pair("$warning", PANEL, TEXT, "'→ SERIAL at next batch'"),
    Pair("$success", PANEL, TEXT, "'all moves done', 'copy-after-flush ✓ held'"),
    Pair("$error", PANEL, TEXT, "'copy-after-flush ✗ broken'"),
    Pair("$phase-unmap", PANEL, TEXT, "phase strip: unmap label and bar; time legend 'unmap'"),
    Pair("$phase-flush", PANEL, TEXT, "phase strip: flush label and bar"),
    Pair("$phase-move", PANEL, TEXT, "phase strip: move label and bar; time legend 'move'"),
    Pair("$state-retrying", PANEL, TEXT, "'N busy, retried', 'sync fallback'; time legend 'wait'"),
    Pair("$ipi", PANEL, TEXT, "stats 'IPIs'; time legend 'flush'; █ sparkline cells"),
    Pair("$state-failed", PANEL, TEXT, "stats 'failed N'"),
    Pair("$state-copying", PANEL, TEXT, "time legend 'copy' and its bar"),
    Pair("$foreground 70%", PANEL, TEXT, "time legend 'prepare' and its bar"),
    # ('isolate', $foreground 25%, is never drawn: it is outside migrate_pages(), time_content
    # zeroes it.)
    Pair("$text-disabled", PANEL, DECORATION, "· the unused rest of the time bar"),
    badge("$success", "PLAYING / DONE badge"),
    badge("$warning", "PAUSED badge"),
    badge("$primary", "BATCHED badge"),
    badge("$secondary", "SERIAL badge"),
    badge("$accent", "SPLIT badge"),
    # The screen's background: legend (legend.py), split view (split_view.py), 'too small'.
    Pair("$node-0", BACKGROUND, GLYPH, "legend: ■ mapped"),
    Pair("$node-1", BACKGROUND, GLYPH, "legend: ◌ reserved"),
    Pair("$state-unmapped", BACKGROUND, GLYPH, "legend: ▒"),
    Pair("$state-flushed", BACKGROUND, GLYPH, "legend: ░"),
    Pair("$state-copying", BACKGROUND, TEXT, "legend: », ▓; split stats: time legend 'copy'"),
    Pair("$state-remapped", BACKGROUND, GLYPH, "legend: ◆"),
    Pair("$state-retrying", BACKGROUND, TEXT, "legend: ↻; split stats: time legend 'wait'"),
    Pair("$state-failed", BACKGROUND, TEXT, "legend: ✗; split stats: 'failed N'"),
    Pair("$state-absent", BACKGROUND, DECORATION, "legend: · (see the grid's empty slots)"),
    Pair("$text-muted", BACKGROUND, TEXT, "legend labels; split titles and stats labels"),
    Pair("$foreground", BACKGROUND, TEXT, "split view stats figures"),
    Pair("$warning", BACKGROUND, TEXT, "'migviz needs at least 60×20'"),
    Pair("$success", BACKGROUND, TEXT, "split titles: 'done'; split stats: '✓ held'"),
    Pair("$ipi", BACKGROUND, TEXT, "split stats: 'IPIs N', time legend 'flush'"),
    Pair("$error", BACKGROUND, TEXT, "split stats: 'copy-after-flush ✗ broken'"),
    Pair("$phase-unmap", BACKGROUND, TEXT, "split stats: time legend 'unmap'"),
    Pair("$phase-move", BACKGROUND, TEXT, "split stats: time legend 'move'"),
    Pair("$foreground 70%", BACKGROUND, TEXT, "split stats: time legend 'prepare'"),
    Pair("$text-disabled", BACKGROUND, DECORATION, "split stats: · the unused rest of the bar"),
    # Split view's race line.
    Pair("$foreground", RACE, TEXT, "race line"),
    Pair("$success", RACE, TEXT, "race line: 'N× faster'"),
    Pair("$ipi", RACE, TEXT, "race line: 'M% fewer IPIs'"),
    Pair("$text-muted", RACE, TEXT, "race line: the figures in brackets"),
    # The breakpoint screen (screens/breakpoints.py), its list focused.
    Pair("$foreground", CHECKLIST, TEXT, "breakpoint names and descriptions, [ ] boxes"),
    Pair("$success", CHECKLIST, GLYPH, "[x]: a breakpoint that is on (the glyph says so too)"),
)


# Colours drawn side by side in one grid (and node 0's against node 1's): told apart at a glance.
GRID_COLOURS = ("state-unmapped", "state-flushed", "state-copying", "state-remapped",
                "state-retrying", "state-failed", "state-absent")
DISTINCT = 15.0  # ΔE00; the closest pair of the first shipped palettes was 15.6
# Under a simulated colour-vision deficiency, in the colour-blind-safe theme.
DISTINCT_CVD = 6.0  # ΔE00; the shipped Okabe–Ito palette's closest pair was 6.4 (deutan)

MIGVIZ = {theme.name: theme for theme in builtin_theme_files()}


def describe(layers: tuple[str, ...]) -> str:
    return " + ".join(layers)


# ---------------------------------------------------------------------------------------------
# The measuring itself


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    white, black = Color.parse("#ffffff"), Color.parse("#000000")
    assert contrast_ratio(white, black) == pytest.approx(21.0)
    assert contrast_ratio(Color.parse("#767676"), white) == pytest.approx(4.54, abs=0.005)
    assert contrast_ratio(Color.parse("#777777"), white) < TEXT  # the classic near miss


def test_translucent_layers_blend_as_textual_paints_them() -> None:
    variables = {"surface": "#000000", "ipi": "#ffffff", "text-muted": "auto 60%"}
    # 35% white over black, then white text at 60% over that (auto picks white on dark).
    flash = pair_ratio("$ipi", ("$surface", "$ipi 35%"), variables)
    assert flash == pytest.approx(contrast_ratio(Color.parse("#ffffff"), Color(89, 89, 89)))
    muted = pair_ratio("$text-muted", ("$surface",), variables)
    assert muted == pytest.approx(contrast_ratio(Color(153, 153, 153), Color(0, 0, 0)))


@pytest.mark.parametrize(("one", "other", "expected"), [
    # Sharma, Wu & Dalal (2005), the CIEDE2000 test data: pairs 1, 7, 17 and 25.
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
])
def test_colour_difference_matches_ciede2000_reference_values(
        one: tuple[float, float, float], other: tuple[float, float, float],
        expected: float) -> None:
    assert delta_e00(one, other) == pytest.approx(expected, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# migviz's own themes


@pytest.mark.parametrize("name", sorted(MIGVIZ))
def test_every_pair_meets_wcag_aa(name: str) -> None:
    variables = css_variables(MIGVIZ[name].to_textual_theme())
    failures = []
    for pair in PAIRS:
        ratio = pair_ratio(pair.colour, pair.on, variables)
        if ratio < pair.need:
            failures.append(f"{name}: {pair.colour} on {describe(pair.on)} is {ratio:.2f}:1, "
                            f"needs {pair.need}:1 ({pair.where})")
    assert not failures, "\n".join(failures)


def test_the_pairs_cover_every_colour_the_widgets_use() -> None:
    """A colour variable used anywhere in tui/ but in no pair would go unmeasured."""
    tui = Path(__file__).resolve().parent.parent / "tui"
    used: set[str] = set()
    for path in [*tui.rglob("*.py"), *tui.rglob("*.tcss")]:
        used |= set(re.findall(r"\$([a-z][a-z0-9-]*)", path.read_text("utf-8")))
    measured = {word[1:] for pair in PAIRS for layer in (pair.colour, *pair.on)
                for word in layer.split() if word.startswith("$")}
    # f"$node-{node}" in the code is a prefix: node-0 and node-1.
    unmeasured = {name for name in used
                  if not any(name == m or (name.endswith("-") and m.startswith(name))
                             for m in measured)}
    assert not unmeasured, f"colours drawn but in no pair: {sorted(unmeasured)}"
    assert {"node-0", "node-1", "ipi", "text-muted"} <= used  # the scan does find them


@pytest.mark.parametrize("name", sorted(MIGVIZ))
def test_grid_colours_stay_distinguishable(name: str) -> None:
    variables = MIGVIZ[name].variables
    close = [f"{name}: {a} vs {b}: ΔE00 {d:.1f} < {DISTINCT}"
             for a, b, d in grid_differences(variables) if d < DISTINCT]
    assert not close, "\n".join(close)


@pytest.mark.parametrize("deficiency", ["protan", "deutan", "tritan"])
def test_okabe_ito_theme_stays_distinguishable_with_colour_vision_deficiencies(
        deficiency: str) -> None:
    variables = MIGVIZ["migviz-okabe-ito"].variables
    close = [f"{deficiency}: {a} vs {b}: ΔE00 {d:.1f} < {DISTINCT_CVD}"
             for a, b, d in grid_differences(variables, deficiency) if d < DISTINCT_CVD]
    assert not close, "\n".join(close)


# Machado, Oliveira & Fernandes (2009), severity 1.0, on linear RGB.
CVD: dict[str, tuple[tuple[float, float, float], ...]] = {
    "protan": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216),
               (-0.003882, -0.048116, 1.051998)),
    "deutan": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413),
               (-0.011820, 0.042940, 0.968881)),
    "tritan": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602),
               (0.004733, 0.691367, 0.303900)),
}


def simulate(colour: Color, deficiency: str | None) -> Color:
    """How ``colour`` looks with a colour-vision deficiency (None: as it is)."""
    if deficiency is None:
        return colour

    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    def encode(v: float) -> int:
        v = min(max(v, 0.0), 1.0)
        return round(255 * (12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055))

    rgb = [linear(c) for c in colour.rgb]
    r, g, b = (encode(sum(m * c for m, c in zip(row, rgb, strict=True)))
               for row in CVD[deficiency])
    return Color(r, g, b)


def grid_differences(variables: dict[str, str],
                     deficiency: str | None = None) -> list[tuple[str, str, float]]:
    """ΔE00 of every two colours that share a grid, and of node 0's against node 1's."""
    pairs = [("node-0", "node-1")]
    for node in ("node-0", "node-1"):
        pairs += list(itertools.combinations((node, *GRID_COLOURS), 2))
    pairs = sorted(set(pairs))
    return [(a, b, colour_difference(simulate(Color.parse(variables[a]), deficiency),
                                     simulate(Color.parse(variables[b]), deficiency)))
            for a, b in pairs]


# ---------------------------------------------------------------------------------------------
# Under the other themes of the picker


def test_fallback_palettes_are_complete_and_distinguishable() -> None:
    for dark in (True, False):
        palette = fallback_palette(dark)
        assert set(palette) == set(VARIABLES)
        close = [f"{'dark' if dark else 'light'} fallback: {a} vs {b}: ΔE00 {d:.1f}"
                 for a, b, d in grid_differences(palette) if d < DISTINCT]
        assert not close, "\n".join(close)


def test_state_colours_hold_under_every_theme_the_picker_offers() -> None:
    """Switch the running app to each theme its palette offers and measure the variables in
    force (App.theme_variables, what the CSS was built from) against that theme's grid."""
    app = MigvizApp(load_scenario("tiny"), paused=True)
    failures: list[str] = []
    seen: list[str] = []

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            for name in sorted(app.available_themes):
                app.theme = name
                await pilot.pause()
                seen.append(name)
                variables = app.theme_variables
                for colour in STATE_COLOURS:
                    ratio = pair_ratio(f"${colour}", SURFACE, variables)
                    if ratio < GLYPH:
                        failures.append(f"{name}: ${colour} on $surface is {ratio:.2f}:1")
                absent = pair_ratio("$state-absent", SURFACE, variables)
                if absent < DECORATION:
                    failures.append(f"{name}: $state-absent on $surface is {absent:.2f}:1")

    asyncio.run(main())
    assert "solarized-light" in seen and "migviz-okabe-ito" in seen
    assert not failures, "\n".join(failures)


def test_picker_offers_every_theme_whose_background_is_known() -> None:
    """The ANSI themes paint on the terminal's own background, whose colour nobody knows: no
    palette can be shown to reach the bar there, so the picker leaves them out."""
    app = MigvizApp(load_scenario("tiny"), paused=True)
    names: set[str] = set()

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            names.update(app.available_themes)

    asyncio.run(main())
    left_out = {name for name, theme in BUILTIN_THEMES.items() if not offered(theme)}
    assert left_out == {"ansi-dark", "ansi-light"}
    assert names == (set(BUILTIN_THEMES) - left_out) | set(MIGVIZ)


def test_a_theme_left_out_of_the_picker_is_bad_input_on_the_command_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["tui", "tiny", "--theme", "ansi-dark"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("migviz: error: --theme ansi-dark: not offered")


def test_a_theme_with_its_own_variables_is_offered_as_it_is() -> None:
    """A user's theme file defines every variable itself: it is offered whatever it looks like."""
    text = (Path(__file__).resolve().parent.parent / "themes" / "migviz-dark.toml").read_text()
    own = ThemeFile.model_validate({**tomllib.loads(text), "name": "mine", "surface": "#ffffff"})
    assert offered(own.to_textual_theme())


def test_light_palette_is_painted_under_solarized_light() -> None:
    """Under solarized-light a flushed cell was #e8c547 on #eee8d5 (1.4:1): the app now paints
    the light palette's colour, and the grid really shows it."""
    app = MigvizApp(load_scenario("tiny"), paused=True, theme="solarized-light")

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.theme == "solarized-light"
            grid = app.query_one("#node-0", FolioGrid)
            style = grid.get_component_rich_style("foliogrid--flushed")
            assert style.color is not None and style.bgcolor is not None
            painted = Color.from_rich_color(style.color)
            assert painted == Color.parse(fallback_palette(dark=False)["state-flushed"])
            ground = Color.from_rich_color(style.bgcolor)
            assert contrast_ratio(painted, ground) >= GLYPH

    asyncio.run(main())
