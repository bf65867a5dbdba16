"""Pilot tests of the migviz app: keys change the engine and the widgets, stepping back is exact,
the mode toggle waits for the batch boundary, split view races both modes, resizing never breaks.

Tests start the app paused and drive it with keys; nothing depends on wall-clock time.
"""

from __future__ import annotations

import asyncio
import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from helpers import drive as helpers_drive
from textual.pilot import Pilot

from core.breakpoints import Breakpoint
from core.events import EventKind
from core.folios import FolioState
from core.scenario import Mode, load_scenario
from themes import ThemeError, builtin_theme_files, parse_theme
from tui.app import MIN_HEIGHT, MIN_WIDTH, MigvizApp
from tui.keys import KEYS
from tui.lane import Lane
from tui.screens.breakpoints import BreakpointChoice, BreakpointScreen
from tui.screens.chart import ChartScreen
from tui.screens.help import HelpScreen
from tui.screens.inspect import InspectScreen, report_content
from tui.widgets.event_log import EventLog
from tui.widgets.folio_grid import (
    ABSENT,
    ARRIVING,
    CODES,
    GLYPHS,
    RESERVED,
    FolioGrid,
    cell_codes,
    grid_layout,
)
from tui.widgets.frame import EventHistory
from tui.widgets.header_bar import HeaderBar
from tui.widgets.ipi_panel import IpiPanel, sparkline
from tui.widgets.phase_strip import PhaseStrip
from tui.widgets.split_view import SplitView
from tui.widgets.tlb_panel import TlbPanel

drive = partial(helpers_drive, size=(120, 40))


def make(name: str = "default", mode: Mode | None = None) -> MigvizApp:
    return MigvizApp(load_scenario(name), mode, paused=True)


async def to_phase(pilot: Pilot[int], app: MigvizApp, name: str) -> None:
    """Press p until the engine is in the named phase."""
    for _ in range(12):
        if app.lane.engine.view().phase.name == name:
            break
        await pilot.press("p")
    assert app.lane.engine.view().phase.name == name
    await pilot.pause()


def header_text(app: MigvizApp) -> str:
    return str(app.query_one(HeaderBar).render())


def strip_text(app: MigvizApp) -> str:
    return str(app.query_one(PhaseStrip).render())


def test_starts_paused_with_no_timer() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        assert not app.playing
        assert not app.timer_running
        assert app.lane.engine.events == 0
        assert "PAUSED" in header_text(app)
        await pilot.press("space")
        assert app.playing and app.timer_running
        assert "PLAYING" in header_text(app)
        await pilot.press("space")
        assert not app.playing and not app.timer_running
        assert "PAUSED" in header_text(app)

    drive(app, script)


def test_step_keys_change_engine_and_widgets() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        engine = app.lane.engine
        before = header_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert engine.events == 1
        assert app.query_one(EventLog).lines, "the log explains the first step"
        await pilot.press("right")
        assert engine.events == 2
        await to_phase(pilot, app, "UNMAP")
        await pilot.press("n")
        await pilot.pause()
        grid = app.query_one("#node-0", FolioGrid)
        assert "▒" in grid.render_row(0).text, "unmapped folios show their glyph"
        dest = app.query_one("#node-1", FolioGrid)
        assert GLYPHS[RESERVED] in dest.render_row(0).text, "the destination is reserved"
        await to_phase(pilot, app, "FLUSH")
        assert "FLUSH" in header_text(app)
        assert header_text(app) != before
        flush_round = engine.view().ipi_round
        assert flush_round is not None
        await pilot.press("n", "n")
        await pilot.pause()
        ipi = app.query_one(IpiPanel).text
        # ✓ after a flush, = when the target was already current (here: the batch's round,
        # after the THP's PMD round caught every target up).
        assert re.search(r"[=✓]\d", ipi), "acknowledgements appear as targets handle the IPI"
        assert "↯" in app.query_one(TlbPanel).text, "a target CPU flashes"
        await pilot.press("B")
        await pilot.pause()
        view = engine.view()
        # default's first move is one batch: B ends on the next unit, the call's return, and
        # the header still names move 1, as the log's last line (mm_migrate_pages) does.
        assert view.last_event is not None
        assert view.last_event.kind is EventKind.MIGRATE_END
        assert view.move == 0 and "move 1/2" in header_text(app)
        assert "batch" in strip_text(app) or "between" in strip_text(app)

    drive(app, script)


def test_toggle_mid_batch_takes_effect_at_next_batch() -> None:
    app = make("tiny")

    async def script(pilot: Pilot[int]) -> None:
        engine = app.lane.engine
        await to_phase(pilot, app, "UNMAP")
        await pilot.press("n")  # two unmaps in: mid-batch
        await pilot.press("b")
        await pilot.pause()
        assert engine.mode is Mode.BATCHED
        assert engine.pending_mode is Mode.SERIAL
        assert "SERIAL at next batch" in header_text(app)
        first_batch = engine.view().batch
        for _ in range(30):  # finish the batch in flight event by event
            await pilot.press("n")
            last = engine.view().last_event
            assert last is not None
            if last.kind in (EventKind.BATCH_START, EventKind.UNMAP, EventKind.FLUSH_SEND) and \
                    engine.mode is Mode.SERIAL:  # type: ignore[comparison-overlap]
                break  # the first serial folio: its PTE is cleared and flushed
            if last.kind is EventKind.FLUSH_SEND:
                assert last.pages == -1, "the batch in flight still flushes once, in full"
                assert engine.mode is Mode.BATCHED
        assert engine.mode is Mode.SERIAL  # type: ignore[comparison-overlap]
        assert engine.pending_mode is None
        view = engine.view()
        assert first_batch == 1
        assert (view.folio_state[:4] == FolioState.REMAPPED).all(), "batch 1 completed batched"
        assert (view.folio_node[:4] == 1).all()
        await pilot.pause()
        assert "SERIAL" in header_text(app)
        assert "at next batch" not in header_text(app)

    drive(app, script)


def _snapshot(app: MigvizApp) -> dict[str, object]:
    view = app.lane.engine.view()
    return {
        "clock": view.clock_ns, "events": view.events, "phase": view.phase,
        "batch": view.batch, "state": view.folio_state.tolist(), "node": view.folio_node.tolist(),
        "counters": (view.counters.nr_tlb_remote_flush, view.counters.pgmigrate_success,
                     view.counters.nr_tlb_remote_flush_received),
        "tlb": (view.tlb_valid, view.tlb_stale), "round": view.ipi_round,
        "recent": view.recent_events[-20:],
        "header": header_text(app), "strip": strip_text(app),
        "ipi": app.query_one(IpiPanel).text, "tlb_panel": app.query_one(TlbPanel).text,
        "log": app.query_one(EventLog).text,
        "grid": [app.query_one("#node-0", FolioGrid).render_row(r).text for r in range(3)],
    }


def test_step_back_returns_the_exact_earlier_view() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        for _ in range(110):
            app.action_step_event()
        await pilot.pause()
        before = _snapshot(app)
        await pilot.press("p", "p", "n", "n", "n")
        await pilot.pause()
        after = _snapshot(app)
        assert after != before
        steps = app.lane.engine.events - 110
        for _ in range(steps):
            await pilot.press("u" if _ % 2 else "left")
        await pilot.pause()
        assert app.lane.engine.events == 110
        assert _snapshot(app) == before

    drive(app, script)


def test_split_view_runs_both_modes() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("s")
        await pilot.pause()
        assert app.split and app.race is not None
        split = app.query_one(SplitView)
        assert split.display
        assert not app.query_one("#single").display
        for _ in range(40):
            await pilot.press("n")
        await pilot.pause()
        serial, batched = app.race
        assert serial.engine.mode is Mode.SERIAL and batched.engine.mode is Mode.BATCHED
        assert serial.engine.events > 0 and batched.engine.events > 0
        assert abs(serial.engine.clock - batched.engine.clock) < 5_000, "one shared clock"
        race = str(app.query_one("#race").render())
        assert "serial" in race or "batched" in race
        # Run the race to the end through the frame function, as the timer would.
        app.playing = True
        for _ in range(500):
            if serial.engine.done and batched.engine.done:
                break
            app.duo.target = 2e9
            app._tick()
        await pilot.pause()
        assert serial.engine.done and batched.engine.done
        race = str(app.query_one("#race").render())
        assert "faster" in race and "fewer IPIs" in race
        assert isinstance(app.screen, ChartScreen)  # the race ends on its chart
        await pilot.press("escape")
        await pilot.press("s")
        await pilot.pause()
        assert not app.split and app.query_one("#single").display

    drive(app, script)


def test_help_lists_every_key() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(str(static.render()) for static in app.screen.query("Static"))
        for key in KEYS:
            assert key.help in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)

    drive(app, script)


def test_every_action_is_a_palette_command() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for name in ("play/pause", "step event", "step phase", "step batch", "step back",
                     "toggle serial/batched", "split view", "faster", "slower", "reset",
                     "inspect folio", "help", "screenshot"):
            assert f"migviz: {name}" in titles
        assert "Theme" in titles

    drive(app, script)


def test_theme_switch() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        assert app.theme == "migviz-dark"
        await to_phase(pilot, app, "FLUSH")
        grid = app.query_one("#node-0", FolioGrid)
        dark = grid.render_row(0)
        for name in ("migviz-light", "migviz-okabe-ito", "nord", "textual-light",
                     "migviz-dark"):
            app.theme = name
            await pilot.pause()
            assert grid.render_row(0).text == dark.text
            if name == "migviz-light":
                assert grid.render_row(0) != dark, "colours follow the theme"

    drive(app, script)


def test_resize_down_to_40x12_and_back() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        await to_phase(pilot, app, "FLUSH")
        for size in ((80, 24), (40, 12), (61, 21), (59, 19), (200, 60), (120, 36)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            small = size[0] < MIN_WIDTH or size[1] < MIN_HEIGHT
            assert app.screen.has_class("-too-small") == small
            if small:
                message = str(app.query_one("#too-small").render())
                assert f"needs at least {MIN_WIDTH}×{MIN_HEIGHT}" in message
                assert f"now {size[0]}×{size[1]}" in message
        await pilot.press("s")
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert not app.screen.has_class("-too-small")

    drive(app, script, size=(120, 40))


def test_click_selects_and_enter_inspects() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        await to_phase(pilot, app, "FLUSH")
        grid = app.query_one("#node-0", FolioGrid)
        region = grid.content_region
        cell = grid.cell_offset(1)
        assert cell is not None
        where = (region.x - grid.region.x + cell[0], region.y - grid.region.y + cell[1])
        await pilot.click(grid, offset=where)
        await pilot.pause()
        assert app.selected == 1
        assert not isinstance(app.screen, InspectScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, InspectScreen)
        assert app.screen.report.folio == 1
        assert app.screen.report.rows, "its unmap is in its lifecycle"
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, InspectScreen)
        await pilot.click(grid, offset=where)
        await pilot.pause()
        assert isinstance(app.screen, InspectScreen), "a click on the selected folio opens it"

    drive(app, script)


def test_speed_keys_double_and_halve() -> None:
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        assert app.speed == 1
        await pilot.press("plus", "equals_sign")
        assert app.speed == 4
        assert "×4" in header_text(app)
        await pilot.press("minus", "minus", "minus")
        assert app.speed == 0.5

    drive(app, script)


def test_frame_tick_advances_simulated_time_and_pauses_at_end() -> None:
    app = make("tiny")

    async def script(pilot: Pilot[int]) -> None:
        app.playing = True
        app.solo.target = 5_000
        app._tick()
        assert app.lane.engine.clock > 4_000
        for _ in range(100):
            if app.lane.engine.done:
                break
            app.solo.target = 10**9
            app._tick()
        await pilot.pause()
        assert app.lane.engine.done
        assert not app.playing and not app.timer_running
        assert "DONE" in header_text(app)
        await pilot.press("r")
        assert app.lane.engine.events == 0

    drive(app, script)


def test_screenshot_key_writes_svg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGVIZ_SCREENSHOT_DIR", str(tmp_path))
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("ctrl+s")
        await pilot.pause()

    drive(app, script)
    assert list(tmp_path.glob("migviz-default-*.svg"))


# ----------------------------------------------------------------------------------------------
# Pieces without an app


def test_every_cell_code_has_its_own_glyph() -> None:
    # NO_COLOR: glyphs alone must tell every state apart.
    glyphs = [GLYPHS[code] for code in range(CODES)]
    assert len(set(glyphs)) == CODES
    assert {ABSENT, ARRIVING, RESERVED} <= set(GLYPHS)
    # Every folio state has its cell code (the grid's own codes come after them).
    assert set(FolioState) <= set(GLYPHS) and min(ABSENT, ARRIVING, RESERVED) > max(FolioState)


def test_the_legend_names_prot_none_only_under_numa_balancing() -> None:
    from tui.widgets.legend import legend_content

    numa = legend_content(160, numa=True).plain
    assert f"{GLYPHS[FolioState.PROT_NONE]} PROT_NONE" in numa
    assert "PROT_NONE" not in legend_content(160).plain
    assert "PROT_NONE" in legend_content(40, numa=True).plain, "second when room is short"


def test_numa_balancing_opens_in_the_app() -> None:
    """The app draws NUMA balancing: the threads' calls in the header and the strip, a
    migrating thread's row, and the PROT_NONE pages the scans leave on the grid."""
    async def main() -> None:
        app = MigvizApp(load_scenario("numa-balancing"), paused=True)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            engine = app.lane.engine
            while not any(folio >= 0 for folio in engine.view().cpu_migrating):
                await pilot.press("n")
                await pilot.pause()
            view = engine.view()
            frame = app.last_frame
            assert frame is not None
            header = str(app.query_one(HeaderBar).render())
            assert f"faults {view.counters.numa_hint_faults}" in header
            assert f"calls {view.counters.migrate_calls}" in header
            strip = str(app.query_one(PhaseStrip).render())
            assert "in flight" in strip
            codes = cell_codes(frame, 0)
            assert (codes == FolioState.PROT_NONE).any(), "the scan's pages on node 0's grid"
            assert "PROT_NONE" in str(app.query_one("#legend").render())
            # Inspecting the folio a thread migrates names that thread and its call.
            cpu, folio = next((c, f) for c, f in enumerate(view.cpu_migrating) if f >= 0)
            report = app.lane.report(folio)
            assert report is not None and report.migrating_cpu == cpu
            text = report_content(report).plain
            assert f"cpu{cpu}'s thread faulted on it and migrates it" in text
            assert "NUMA hinting fault (PROT_NONE PTE)" in text
            calls = [e.move for e in app.lane.engine.recent
                     if e.kind is EventKind.NUMA_FAULT and e.folio == folio and not e.arg]
            assert calls and f"cpu{cpu} · call {calls[-1] + 1} · scan pass" in text
            assert "move 1" not in text and "batch 1" not in text

    asyncio.run(main())


def test_grid_layout_keeps_wide_cells_on_one_row() -> None:
    orders = np.array([0] * 10 + [9] + [0] * 5, dtype=np.int8)
    layout = grid_layout(orders, 12, 1)
    for folio in range(orders.size):
        assert layout.x[folio] + layout.widths[folio] <= 12
    assert layout.row_start[-1] == orders.size
    uniform = grid_layout(np.zeros(65_536, dtype=np.int8), 75, 0)
    assert uniform.rows == -(-65_536 // 75)


def test_history_truncates_and_buckets() -> None:
    scenario = load_scenario("tiny")
    from core.engine import Engine

    engine = Engine(scenario)
    history = EventHistory()
    events = []
    while not engine.done:
        events += engine.step()
    history.extend(events)
    assert history.ipi_total() == engine.counters.nr_tlb_remote_flush_received
    total = sum(history.ipi_buckets(engine.clock, 1000, 1000))
    assert total == history.ipi_total()
    history.truncate(10)
    assert all(row.seq < 10 for row in history.folio_rows(0))
    assert sparkline((0, 1, 8)) == "  ▁█"[1:] or len(sparkline((0, 1, 8))) == 3


def test_no_color_keeps_glyphs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        assert app.no_color
        await to_phase(pilot, app, "FLUSH")
        row = app.query_one("#node-0", FolioGrid).render_row(0).text
        assert GLYPHS[FolioState.UNMAPPED] in row

    drive(app, script, size=(80, 24))


def test_builtin_themes_are_valid_and_bad_ones_are_named() -> None:
    names = {theme.name for theme in builtin_theme_files()}
    assert {"migviz-dark", "migviz-light", "migviz-okabe-ito"} <= names
    with pytest.raises(ThemeError, match="variables"):
        parse_theme('name = "x"\nprimary = "#000000"\n[variables]\nnode-0 = "#fff"\n', "x.toml")
    with pytest.raises(ThemeError, match="primary"):
        parse_theme('name = "x"\nprimary = "not-a-colour"\n', "x.toml")


def test_lane_knows_a_quiet_gap_ahead() -> None:
    """Isolating the folios before migrate_pages() starts is a long quiet stretch: the lane learns
    when it ends from the engine, so the app can cross it quickly instead of at x1."""
    scenario = load_scenario("default")
    lane = Lane(scenario, None)
    costs = scenario.costs
    # Draining the LRU caches, walking default's 96 PTEs and 1 PMD, isolating its 97 folios.
    isolation = costs.isolate_call_ns + costs.walk_pte_ns * 97 + costs.isolate_folio_ns * 97
    applied = lane.advance(1_000.0, 100.0, float("inf"), 0)
    assert applied == 0
    assert lane.next_at == isolation
    # Once simulated time reaches it, migrate_pages() starts.
    lane.advance(float(isolation), 100.0, float("inf"), 1)
    assert lane.engine.events >= 1 and lane.engine.last_event is not None


def test_breakpoint_pauses_a_playing_run_at_the_event() -> None:
    app = make("tiny")

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, BreakpointScreen)
        await pilot.press("space", "escape")  # toggle the first kind (flush), apply
        await pilot.pause()
        assert not isinstance(app.screen, BreakpointScreen)
        assert app.breakpoints == BreakpointChoice(frozenset({Breakpoint.FLUSH}), None)
        app.playing = True
        for _ in range(200):
            app.solo.target = 10**9  # as if much wall time had passed
            app._tick()
            if not app.playing:
                break
        assert not app.playing, "the run should have stopped at the first flush"
        last = app.lane.engine.last_event
        assert last is not None and last.kind is EventKind.FLUSH_SEND
        assert app.lane.engine.counters.nr_tlb_remote_flush == 1

    drive(app, script)


def test_many_idle_cpus_fold_into_one_line() -> None:
    from tui.widgets.tlb_panel import cpu_ranges, shown_cpus

    assert cpu_ranges([8, 9, 10, 23, 32, 33]) == "cpu8-10, cpu23, cpu32-33"
    lane = Lane(load_scenario("pmbench-2s", ["memory.folios=[{order = 0, count = 64}]"]), None)
    frame = lane.frame(clock_ns=None, playing=False, speed=1.0, rate_ns=1.0, now_ns=0,
                       bucket_ns=1, selected=0, frame_no=0)
    rows, idle = shown_cpus(frame)
    assert rows == [*range(8), *range(24, 32), 47]  # the 16 pmbench threads and migratepages
    assert len(idle) == 48 - 17
    small = Lane(load_scenario("default"), None)
    rows, idle = shown_cpus(small.frame(clock_ns=None, playing=False, speed=1.0, rate_ns=1.0,
                                        now_ns=0, bucket_ns=1, selected=0, frame_no=0))
    assert rows == list(range(8)) and idle == []


def test_breakpoints_given_at_start_stop_the_run() -> None:
    app = MigvizApp(load_scenario("contended"), paused=True,
                    breakpoints=frozenset({Breakpoint.RETRY}))

    async def script(pilot: Pilot[int]) -> None:
        app.playing = True
        for _ in range(300):
            app.solo.target = 10**9
            app._tick()
            if not app.playing:
                break
        last = app.lane.engine.last_event
        assert not app.playing and last is not None
        assert last.kind in (EventKind.UNMAP_FAIL, EventKind.MOVE_FAIL)

    drive(app, script)


def test_a_keymap_remaps_a_key() -> None:
    app = MigvizApp(load_scenario("tiny"), paused=True, keymap={"migviz.step-event": "j"})

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("j")
        await pilot.pause()
        assert app.lane.engine.events == 1
        await pilot.press("n")  # no longer bound
        await pilot.pause()
        assert app.lane.engine.events == 1

    drive(app, script)


def test_a_split_thps_pieces_take_its_place_in_the_grid() -> None:
    scenario = load_scenario("tiny", ["memory.folios=[{order = 9, count = 1}, "
                                      "{order = 0, count = 4}]", "migration.enomem=1.0"])
    app = MigvizApp(scenario, paused=True)

    async def script(pilot: Pilot[int]) -> None:
        for _ in range(40):
            await pilot.press("n")
            last = app.lane.engine.last_event
            if last is not None and last.kind is EventKind.SPLIT:
                break
        await pilot.pause()
        view = app.lane.engine.view()
        assert view.folio_order.size == 5 + 512  # the THP's 512 pieces were appended
        grid = app.screen.query(FolioGrid).first()
        thp, first_piece, base = 0, 5, 1
        assert grid._rank[first_piece] == grid._rank[thp] + 1
        assert grid._rank[base] == grid._rank[thp] + 513  # after every piece
        offset = grid.cell_offset(first_piece)
        assert offset is not None and grid.folio_at(*offset) == first_piece

    drive(app, script)


def test_a_frame_tick_in_the_shutdown_window_draws_nothing() -> None:
    """Textual prunes the screens before it stops the app's timers: a frame tick (or a tour
    step's timer) firing in between must not look for widgets (seen once in CI: NoMatches for
    HeaderBar while a tour step played as the test's app closed)."""
    app = MigvizApp(load_scenario("tiny"))

    async def main() -> None:
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            assert app.playing

    asyncio.run(main())
    assert not app.is_running
    app._tick()
    asyncio.run(app.action_tour_next())
