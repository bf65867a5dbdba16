"""Contradictions a user once saw on screen, each driven through the real app.

Each test reproduces one report: two panels, or the screen and the engine (or `migviz run`),
disagreeing. tests/test_agreement.py checks the same rules in general over random runs; these
keep the cases people actually met.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from functools import partial

import pytest
from helpers import drive as helpers_drive
from textual.pilot import Pilot
from textual.widget import Widget

from core.engine import Engine
from core.events import Errno, Event, EventKind
from core.scenario import Scenario, load_scenario, scenario_from_dict
from core.trace import TraceFormatter, write_trace
from tui.app import MigvizApp
from tui.screens.help import HelpScreen
from tui.screens.inspect import InspectScreen
from tui.units import format_count, format_ns
from tui.widgets.event_log import EventLog
from tui.widgets.header_bar import HeaderBar
from tui.widgets.ipi_panel import IpiPanel
from tui.widgets.phase_strip import PhaseStrip
from tui.widgets.stats_line import StatsLine
from tui.widgets.tlb_panel import TlbPanel

drive = partial(helpers_drive, size=(160, 48))


def make(scenario: str | Scenario = "default", **options: object) -> MigvizApp:
    loaded = load_scenario(scenario) if isinstance(scenario, str) else scenario
    return MigvizApp(loaded, paused=True, **options)  # type: ignore[arg-type]


def text(app: MigvizApp, widget: type) -> str:
    found: Widget = app.query_one(widget)
    lines = getattr(found, "text", None)
    return lines if isinstance(lines, str) else str(found.render())


def step_events(app: MigvizApp) -> Iterator[Event]:
    """Step one event at a time (as `n` does), yielding each event once its frame is drawn."""
    engine = app.lane.engine
    while not engine.done:
        app.action_step_event()
        last = engine.view().last_event
        assert last is not None
        yield last


def tlb_row(app: MigvizApp, cpu: int) -> str:
    rows = [line for line in text(app, TlbPanel).splitlines() if line.startswith(f"cpu{cpu} ")]
    assert rows, text(app, TlbPanel)
    return rows[0]


def test_a_cpu_that_handled_a_full_flush_shows_no_stale_entry() -> None:
    # Seen: after "flush_tlb_func() on CPU 3 drops every TLB entry", cpu3's row still showed 35
    # stale entries for one more event.
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        checked = 0
        for event in step_events(app):
            if event.kind is EventKind.IPI_RECV and event.pages == -1:
                counts = re.search(r"(\d+)\s+(\d+)\s+\d+\s+\S", tlb_row(app, event.cpu))
                assert counts, tlb_row(app, event.cpu)
                assert (int(counts[1]), int(counts[2])) == (0, 0), tlb_row(app, event.cpu)
                checked += 1
        assert checked == 12  # 6 targets, one full flush per move, two moves

    drive(app, script)


def test_stalled_only_while_the_folio_is_unmapped() -> None:
    # Seen: CPUs read "stalled on 96" after folio 96 was remapped, and in the DONE state.
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        engine = app.lane.engine
        seen = 0
        for _ in step_events(app):
            for folio in re.findall(r"stalled on folio (\d+)", text(app, TlbPanel)):
                assert engine.folios.unmapped[int(folio)], f"folio {folio} is mapped"
                seen += 1
        assert seen, "threads do stall in default"
        assert "stalled" not in text(app, TlbPanel), "nobody waits once every move is done"

    drive(app, script)


def test_retries_in_the_strip_and_the_stats_are_the_engines() -> None:
    # Seen: the stats said "retries 0" while the strip said 1↻; later 52↻ against "retries 65".
    app = make("contended")

    async def script(pilot: Pilot[int]) -> None:
        total = in_unit = 0
        for event in step_events(app):
            if event.kind in (EventKind.BATCH_START, EventKind.MIGRATE_START,
                              EventKind.MIGRATE_END):
                in_unit = 0
            if (event.kind is EventKind.UNMAP_FAIL and event.arg == Errno.EAGAIN) or \
                    event.kind is EventKind.MOVE_FAIL:
                total += 1
                in_unit += 1
            stats = re.search(r"retries (\d+)", text(app, StatsLine))
            assert stats and int(stats[1]) == total
            strip = re.search(r"(\d+)(?: busy, retried| retried in this batch|↻)",
                              text(app, PhaseStrip))
            if event.kind is not EventKind.MIGRATE_END:
                assert (int(strip[1]) if strip else 0) == in_unit, text(app, PhaseStrip)
        assert total > 0

    drive(app, script)


def test_the_header_names_the_call_the_log_shows() -> None:
    # Seen: the header said "move 2/2" while the log still showed move 1's return.
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        for event in step_events(app):
            found = re.search(r"move (\d+)/2", text(app, HeaderBar))
            assert found and int(found[1]) == event.move + 1, (event.kind, text(app, HeaderBar))

    drive(app, script)


def test_the_event_log_is_in_time_order() -> None:
    # Seen: `[002] 0.000076` above `[003] 0.000075` (an IPI handler's exit line, printed before
    # the next CPU's entry that happened earlier).
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        for count, _ in enumerate(step_events(app)):
            stamps = [float(t) for t in re.findall(r"\] \S+ (\d+\.\d{6}):|\] (\d+\.\d{6}):",
                                                    text(app, EventLog)) for t in t if t]
            assert stamps == sorted(stamps), text(app, EventLog)
            if count > 200:
                break

    drive(app, script)


class FakeClock:
    """perf_counter() for the app: each call moves on by ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def play_to_end(app: MigvizApp, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
                frames: int = 20_000) -> None:
    """Play with frames driven by hand on a fake clock (the real timer never gets a turn)."""
    monkeypatch.setattr(time, "perf_counter", clock)
    app.playing = True
    for _ in range(frames):
        if not app.playing:
            break
        app._tick()
    assert app.lane.engine.done


@pytest.mark.parametrize("speed", [1024.0, 16384.0])
def test_end_of_run_figures_do_not_depend_on_the_speed(speed: float,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen: `migviz tui default --speed 16384` ended at 921.6 µs and 1.32 M pages/s;
    # `migviz run default` says 656.8 µs and 1.85 M.
    scenario = load_scenario("default")
    headless = Engine(scenario, checkpoints=False)
    headless.run_to_end()
    summary = headless.summary()
    app = make(scenario, speed=speed)

    async def script(pilot: Pilot[int]) -> None:
        play_to_end(app, FakeClock(1 / 30), monkeypatch)
        await pilot.pause()
        assert f"t={format_ns(summary.sim_time_ns)}" in text(app, HeaderBar)
        assert f"pages/s {format_count(summary.pages_per_sec)}" in text(app, StatsLine)

    drive(app, script)


def test_a_slow_engine_shows_the_rate_achieved_and_says_it_is_behind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen: at ×16384 on pmbench-2s the header claimed 58.7 ms/s while 1-2 ms/s were achieved.
    # A fake clock that moves a second per reading makes every frame overrun its budget.
    app = make(load_scenario("default", ["migration.moves=40"]), speed=16384.0)

    async def script(pilot: Pilot[int]) -> None:
        monkeypatch.setattr(time, "perf_counter", FakeClock(1.0))  # tui.app's and tui.lane's
        app.playing = True
        for _ in range(10):
            app._tick()
        header = text(app, HeaderBar)
        asked = format_ns(app.rate_ns * app.speed)
        assert "behind" in header, header
        achieved = re.search(r"([\d.]+ [nµm]?s)/s of " + re.escape(asked) + "/s", header)
        assert achieved, header
        app.playing = False

    drive(app, script)


def test_inspect_lists_only_the_rounds_that_flushed_the_folio() -> None:
    # Seen: the inspect view listed, as rounds "since it was last unmapped", rounds that came
    # after the folio was remapped and belonged to other folios; and n/p/B did nothing inside
    # inspect although its title said they keep stepping.
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        engine = app.lane.engine
        for event in step_events(app):
            if event.kind is EventKind.MIGRATE_END:
                break
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, InspectScreen)
        rounds = list(app.screen.report.flushes)
        # Folio 0 (a base page) was flushed by its batch's full flush and by nothing else: the
        # THP's PMD round flushed only the THP's entry.
        assert [row.pages for row in rounds] == [-1], rounds
        before = engine.events
        await pilot.press("n", "p", "B")
        await pilot.pause()
        assert engine.events > before, "n/p/B keep stepping inside inspect"
        assert isinstance(app.screen, InspectScreen)

    drive(app, script)


def split_scenario() -> tuple[Scenario, int]:
    """A THP that is split after -ENOMEM and whose pieces are then unmapped, and the number of
    events up to the first unmap of a piece."""
    for seed in range(200):
        scenario = scenario_from_dict({
            "name": "split", "seed": seed, "topology": {"nodes": 2, "cpus": 4},
            "memory": {"folios": [{"order": 0, "count": 3}, {"order": 9, "count": 1}]},
            "workload": {"threads": 2, "access_interval_ns": 200},
            "migration": {"initiator_cpu": 3, "moves": 1, "enomem": 0.3},
        })
        engine = Engine(scenario, checkpoints=False)
        split = False
        for count, event in enumerate(engine.iter_events(), 1):
            split |= event.kind is EventKind.SPLIT
            if split and event.kind is EventKind.UNMAP and event.folio >= 4:
                return scenario, count + 3
    raise AssertionError("no seed splits a THP and unmaps its pieces")


def test_the_live_log_prints_split_pieces_as_migviz_trace_does() -> None:
    # Seen: after a THP split the live log printed other addresses than `migviz trace` for the
    # pieces.
    scenario, events = split_scenario()
    engine = Engine(scenario, checkpoints=False)
    trace = list(write_trace(engine.iter_events(), TraceFormatter(scenario, printk=False)))
    app = make(scenario)

    def fields(line: str) -> tuple[str, str, str] | None:
        found = re.search(r"\[(\d{3})\] \S+ +(\d+\.\d{6}): (\w+): (addr=\S+ \S+)", line)
        return None if found is None else (found[2], found[3], found[4])

    async def script(pilot: Pilot[int]) -> None:
        for _ in range(events):
            app.action_step_event()
        await pilot.pause()
        shown = [f for f in map(fields, text(app, EventLog).splitlines()) if f is not None]
        want = [f for f in map(fields, trace) if f is not None]
        assert shown, text(app, EventLog)
        assert all(line in want for line in shown), (shown, want)

    drive(app, script, size=(200, 60))


def test_the_ipi_panel_accounts_for_every_round() -> None:
    # Seen: the panel said "1 round per batch" while showing 2 rounds for a one-batch move (the
    # THP's PMD is flushed at once).
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        for event in step_events(app):
            if event.kind is EventKind.MIGRATE_END:
                break
        panel = text(app, IpiPanel)
        total = re.search(r"(\d+) rounds", panel)
        assert total and total[1] == "2", panel
        assert "1 round per batch" not in panel
        assert "1 THP PMD flush" in panel and "1 batch flush" in panel, panel

    drive(app, script)


def test_no_flush_entries_that_survive_the_remap_are_stale() -> None:
    # Seen: in no-flush, entries that were never flushed counted as green "valid" after the
    # remap, though they still map the old page.
    app = make("no-flush")

    async def script(pilot: Pilot[int]) -> None:
        for event in step_events(app):
            if event.kind is EventKind.MIGRATE_END:
                break
        # After the first move every folio is mapped again, on its new node; the entries the
        # threads filled before it still map the old pages.
        rows = re.findall(r"(\d+)\s+(\d+)\s+\d+\s+(?:running|stalled|↯)", text(app, TlbPanel))
        assert rows and sum(int(stale) for _, stale in rows) > 0, text(app, TlbPanel)

    drive(app, script)


def test_help_makes_no_claim_a_run_can_contradict() -> None:
    # Seen: help said batched time is "mostly copy" while tiny showed flush 38%, copy 29%.
    app = make("tiny")

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        help_text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "mostly" not in help_text

    drive(app, script)


def test_help_and_palette_show_the_keys_as_remapped() -> None:
    # Seen: remapped keys (--keymap) still showed the default keys in help and in the palette.
    app = make(keymap={"migviz.step-event": "j", "migviz.reset": "ctrl+r"})

    async def script(pilot: Pilot[int]) -> None:
        commands = {command.title: command.help for command in app.get_system_commands(app.screen)}
        assert commands["migviz: step event"].endswith("[j]"), commands["migviz: step event"]
        assert commands["migviz: reset"].endswith("[^r]"), commands["migviz: reset"]
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        step = [line for line in help_text.splitlines() if "step one event" in line]
        assert step and step[0].split()[0] == "j", step
        assert "n/→" not in help_text

    drive(app, script)


def test_reset_keeps_a_pending_mode_switch_and_says_so() -> None:
    # Seen: r after b dropped the switch silently (the run restarted in the old mode).
    app = make("tiny")

    async def script(pilot: Pilot[int]) -> None:
        for _ in range(4):
            app.action_step_event()
        await pilot.press("b")
        assert app.lane.engine.pending_mode is not None
        await pilot.press("r")
        await pilot.pause()
        engine = app.lane.engine
        assert engine.events == 0
        assert engine.mode.value == "serial" and engine.pending_mode is None
        assert "SERIAL" in text(app, HeaderBar)
        assert any("SERIAL" in str(n.message) for n in app._notifications)

    drive(app, script)


def test_a_thp_round_asks_for_one_2mib_entry_not_512_invlpgs() -> None:
    # Seen: "INVLPG 512 pages" for a THP's PMD round, which reads as 512 invalidations; the send
    # traces the 2 MiB range in pages (pages:512), each target invalidates one PMD-sized entry.
    app = make()

    async def script(pilot: Pilot[int]) -> None:
        for event in step_events(app):
            if event.kind is EventKind.FLUSH_SEND and event.pages == 512:
                break
        else:
            raise AssertionError("default has a THP whose PMD is flushed")
        panel = text(app, IpiPanel)
        assert "INVLPG one 2 MiB entry" in panel and "512 pages" not in panel, panel
        log = text(app, EventLog)
        assert "pages:512" in log, "the trace keeps the kernel's own count"
        for event in step_events(app):
            if event.kind is EventKind.IPI_RECV:
                # One invalidation, or (generations behind, as in this batch) a full flush.
                assert event.pages in (1, -1), event
                break

    drive(app, script)
