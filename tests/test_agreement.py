"""The screen never contradicts the engine or itself.

A property test steps random scenarios the way a user does (one event, a phase, a batch, back,
a mode toggle) and, at every step, reads each widget's figures off the text it would draw and
checks them against the engine's view, and the view against the engine's counters and against
an independent tally of the events applied so far:

- the header's move / batch / pass / phase are the last event's (the log's last line);
- the CPU panel's valid / stale TLB entries and IPI counts are the view's; "stalled on N" only
  while folio N is unmapped; a target that handled a full flush holds no entry;
- the strip's retries are the unit's, the stats' retries the run's, both as the events say;
- rounds and IPIs agree between the stats, the IPI panel (its kinds add up to its total), the
  per-CPU column and the events;
- the log's lines are those `migviz trace --printk` prints up to this instant, in time order;
- the grids show each folio on its node in its state;
- at the end, time and pages/s are `migviz run`'s.

Widgets are built from frames without an app (their content functions are pure), so hundreds
of steps take seconds; tests/test_app.py drives the same widgets through the real app.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from helpers import folio_groups
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine import CpuActivity, Engine, EngineView
from core.events import Errno, Event, EventKind
from core.folios import FolioState
from core.scenario import Mode, Scenario, load_scenario, scenario_from_dict
from core.tlb import CpuRole
from core.trace import TraceFormatter, lines_until
from tui.lane import Lane
from tui.units import format_count, format_ns
from tui.widgets.event_log import EventLog
from tui.widgets.folio_grid import ABSENT, ARRIVING, RESERVED, cell_codes
from tui.widgets.frame import Frame
from tui.widgets.header_bar import PHASE_NAMES, HeaderBar
from tui.widgets.ipi_panel import IpiPanel
from tui.widgets.phase_strip import strip_content
from tui.widgets.stats_line import stats_content
from tui.widgets.tlb_panel import TlbPanel

THP = 9
WIDTH = 150  # wide layouts: every figure is on screen
SETTINGS = settings(deadline=None, database=None, max_examples=40,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
probability = st.one_of(st.just(0.0), st.floats(0.0, 0.4))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Small scenarios with every mechanism: lazy CPUs, THPs and large folios, busy folios,
    writeback, allocation failures, small batches, several moves, and now and then a kernel
    that skips its flushes. The migrating task has a CPU of its own."""
    cpus = draw(st.integers(2, 8))
    threads = draw(st.integers(0, cpus - 1))
    lazy = draw(st.lists(st.integers(0, threads - 1), unique=True, max_size=threads)) \
        if threads else []
    size = draw(st.integers(1, 24))
    orders = draw(st.lists(st.sampled_from([0, 0, 0, 0, 2]), min_size=size, max_size=size))
    for _ in range(draw(st.integers(0, 1))):
        orders.insert(draw(st.integers(0, len(orders))), THP)
    migration: dict[str, Any] = {
        "mode": draw(st.sampled_from(["serial", "batched"])),
        "initiator_cpu": draw(st.integers(threads, cpus - 1)),
        "moves": draw(st.integers(1, 3)),
        "batch_pages": draw(st.sampled_from([1, 4, 16, 512])),
        "contention": draw(probability),
        "move_contention": draw(probability),
        "writeback": draw(probability),
        "enomem": draw(st.one_of(st.just(0.0), st.floats(0.0, 0.1))),
        "skip_flush": draw(st.booleans()) and draw(st.booleans()),
    }
    return scenario_from_dict({
        "name": "random",
        "seed": draw(st.integers(0, 2**32)),
        "topology": {"nodes": 2, "cpus": cpus, "tlb_entries": draw(st.sampled_from([2, 1536]))},
        "memory": {"folios": folio_groups(orders)},
        "workload": {"threads": threads, "lazy_cpus": lazy,
                     "access_interval_ns": draw(st.sampled_from([60, 200, 700])),
                     "write_ratio": draw(st.floats(0.0, 1.0))},
        "migration": migration,
    })


# What a user presses: n (event), p (phase), B (batch), u (back), b (toggle).
actions = st.lists(st.sampled_from(["n", "n", "n", "n", "p", "p", "B", "u", "b"]),
                   min_size=20, max_size=120)


class Session:
    """A lane stepped like the app steps it, and the events applied so far (exactly)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.lane = Lane(scenario, None)
        self.applied: list[Event] = []
        self.toggled = False

    def press(self, key: str) -> None:
        engine = self.lane.engine
        if key == "u":
            if engine.events:
                engine.back(1)
                self.lane.stepped_back()
                del self.applied[engine.events:]
            return
        if key == "b":
            engine.toggle_mode()
            self.toggled = True
            return
        events = {"n": engine.step, "p": engine.step_phase, "B": engine.step_batch}[key]()
        self.lane.record(events, 0)
        self.applied.extend(events)

    def frame(self) -> Frame:
        engine = self.lane.engine
        return self.lane.frame(clock_ns=None, playing=False, speed=1.0, rate_ns=1000.0,
                               now_ns=engine.clock, bucket_ns=1000, selected=0, frame_no=0)


# ---------------------------------------------------------------------------------------------
# Reading widgets


def header_figures(frame: Frame) -> dict[str, str]:
    text = HeaderBar.build(frame, 400).plain
    found = re.search(r"move (\d+)/(\d+) node (\d)→(\d) │ (batch|folio) (\d+)/(\d+) │ "
                      r"pass (\d+).*│ phase (\S+) │ t=([^│]+?) │", text)
    assert found, text
    keys = ("move", "moves", "src", "dst", "unit", "index", "total", "pass", "phase", "clock")
    return dict(zip(keys, found.groups(), strict=True))


ROW = re.compile(r"^cpu(\d+)\s+n\d+\s+\S\s+\S+(?: \S+)*?\s+[✓·]\s+(?P<bar>[█▒·]*)\s*"
                 r"(?:(?P<valid>\d+)\s+(?P<stale>\d+)\s+)?(?P<ipis>\d+)\s+(?P<now>.*)$")


def tlb_rows(frame: Frame) -> dict[int, dict[str, Any]]:
    rows = {}
    for line in TlbPanel().build(frame, WIDTH)[1:]:
        match = ROW.match(line.plain)
        if match is None:
            continue  # the folded line of idle CPUs
        rows[int(match[1])] = {
            "valid": int(match["valid"]) if match["valid"] else None,
            "stale": int(match["stale"]) if match["stale"] else None,
            "ipis": int(match["ipis"]), "now": match["now"].strip(),
        }
    return rows


def number_after(label: str, text: str) -> int:
    found = re.search(re.escape(label) + r"(\d+)", text)
    assert found, (label, text)
    return int(found[1])


# ---------------------------------------------------------------------------------------------
# The checks


def eagain(event: Event) -> bool:
    return (event.kind is EventKind.UNMAP_FAIL and event.arg == Errno.EAGAIN) or \
        event.kind is EventKind.MOVE_FAIL


def check_header(frame: Frame, applied: list[Event]) -> None:
    view = frame.view
    if view.numa:
        check_numa_header(frame, applied)
        return
    figures = header_figures(frame)
    assert int(figures["moves"]) == view.moves
    assert (int(figures["src"]), int(figures["dst"])) == (view.src, view.dst)
    last = applied[-1] if applied else None
    if last is None:
        assert figures["move"] == "1"
        return
    assert int(figures["move"]) == last.move + 1, "the header names the log's call"
    assert int(figures["index"]) == view.batch == last.batch
    assert int(figures["pass"]) == view.pass_ == last.pass_
    assert figures["phase"] == PHASE_NAMES[last.phase]
    assert figures["clock"] == format_ns(view.clock_ns)
    assert view.clock_ns == max(e.time_ns for e in applied)
    assert (figures["unit"] == "folio") == (view.mode is Mode.SERIAL)


def check_numa_header(frame: Frame, applied: list[Event]) -> None:
    """NUMA balancing has no move or batch to name: the header counts the threads' hinting
    faults and their calls so far, and names the scanner's pass of the last event."""
    view = frame.view
    text = HeaderBar.build(frame, 400).plain
    found = re.search(r"NUMA balancing node (\d)→(\d) │ faults (\d+) │ calls (\d+) │ "
                      r"scan pass (\d+) │ phase (\S+) │ t=([^│]+?) │", text)
    assert found, text
    assert (int(found[1]), int(found[2])) == (view.src, view.dst)
    assert int(found[3]) == view.counters.numa_hint_faults == sum(
        1 for e in applied if e.kind is EventKind.NUMA_FAULT)
    assert int(found[4]) == view.counters.migrate_calls == sum(
        1 for e in applied if e.kind is EventKind.MIGRATE_START)
    assert int(found[5]) == view.pass_ == (applied[-1].pass_ if applied else view.pass_)
    assert found[7] == format_ns(view.clock_ns)


def in_flight(applied: list[Event]) -> dict[int, int]:
    """NUMA balancing: CPU -> the folio its thread is migrating, from the events alone (a
    misplaced folio's hinting fault opens the thread's call, its MIGRATE_END closes it)."""
    calls: dict[int, int] = {}
    for event in applied:
        if event.kind is EventKind.NUMA_FAULT and event.arg == 0:
            calls[event.cpu] = event.folio
        elif event.kind is EventKind.MIGRATE_END:
            calls.pop(event.cpu, None)
    return calls


def check_numa_calls(frame: Frame, applied: list[Event]) -> None:
    """Each migrating thread's CPU row and the phase strip name the folio its events say it is
    migrating; the pages count is the finished calls' plus what the calls in flight remapped."""
    view = frame.view
    calls = in_flight(applied)
    assert {cpu: folio for cpu, folio in enumerate(view.cpu_migrating) if folio >= 0} == calls
    rows = tlb_rows(frame)
    for cpu, folio in calls.items():
        if cpu not in frame.flash and view.cpu_activity[cpu] != CpuActivity.IPI:
            assert rows[cpu]["now"] == f"migrating folio {folio}"
    strip = strip_content(frame, 400).plain
    if view.done:
        assert "NUMA balancing done" in strip
    elif calls:
        assert f"{len(calls)} call{'s' if len(calls) > 1 else ''} in flight" in strip
        for cpu, folio in calls.items():
            assert f"cpu{cpu} → folio {folio}" in strip
    else:
        assert "no call in flight" in strip
    finished = sum(e.pages for e in applied if e.kind is EventKind.MIGRATE_END)
    remapped = {e.folio: e for e in applied if e.kind is EventKind.REMAP}
    flying = sum(1 << remapped[folio].order for folio in calls.values() if folio in remapped)
    assert view.pages_done == finished + flying
    stats = stats_content(frame, 400).plain
    assert f"pages {view.pages_done}/{view.pages_total}" in stats


def check_cpus(frame: Frame, engine: Engine, applied: list[Event], skip_flush: bool) -> None:
    view = frame.view
    rows = tlb_rows(frame)
    last = applied[-1] if applied else None
    for cpu, role in enumerate(view.cpu_role):
        row = rows[cpu]
        assert row["ipis"] == int(view.counters.tlb_shootdowns[cpu]) == sum(
            1 for e in applied if e.kind is EventKind.IPI_RECV and e.cpu == cpu)
        if role in (CpuRole.WORKLOAD, CpuRole.LAZY):
            assert (row["valid"], row["stale"]) == (view.tlb_valid[cpu], view.tlb_stale[cpu])
        stalled = re.fullmatch(r"stalled on folio (\d+)", row["now"])
        if cpu in frame.flash or view.cpu_activity[cpu] == CpuActivity.IPI:
            assert row["now"].startswith("↯"), "a CPU handling a shootdown flashes"
        elif view.cpu_activity[cpu] == CpuActivity.STALLED:
            assert stalled and int(stalled[1]) == view.cpu_stalled_on[cpu]
        if stalled:
            folio = int(stalled[1])
            assert engine.folios.unmapped[folio], f"cpu{cpu} 'stalled on {folio}', not unmapped"
            assert not view.done
    if view.done:
        assert all(activity != CpuActivity.STALLED for activity in view.cpu_activity)
    # The view against the engine: an entry is stale exactly when its folio is unmapped, except
    # where a skipped flush left it mapping the old folio after the remap.
    if not skip_flush:
        valid, stale = engine.workload.entries_at(engine.clock)
        unmapped = engine.folios.unmapped
        assert not (stale & ~unmapped[np.newaxis, :]).any()
        assert not (valid & unmapped[np.newaxis, :]).any()
        assert view.counters.ordering_violations == 0
    if last is not None and last.kind is EventKind.IPI_RECV and not skip_flush:
        cpu = last.cpu
        if last.pages == -1:
            assert view.tlb_valid[cpu] == view.tlb_stale[cpu] == 0, \
                "a full flush leaves no entry on the CPU that handled it"
        else:
            assert all(holder != cpu for holder, _ in engine.folio_tlb(last.folio)), \
                "the flushed folio's entry is gone from the CPU that handled the IPI"


def check_retries(frame: Frame, applied: list[Event]) -> None:
    view = frame.view
    total = sum(1 for e in applied if eagain(e))
    assert view.counters.retries == total
    stats = stats_content(frame, 400).plain
    assert number_after("retries ", stats) == total
    strip = strip_content(frame, 400).plain
    unit = view.unit
    if unit.unit:
        # Since the unit's first event: a batch starts with BATCH_START; a serial unit is one
        # folio, whose events all carry its unit number.
        last = applied[-1]
        first = max((i for i, e in enumerate(applied) if e.kind in (
            EventKind.BATCH_START, EventKind.MIGRATE_START) or e.serial != last.serial or (
            last.serial and e.batch != last.batch)), default=-1)
        in_unit = sum(1 for e in applied[first + 1:] if eagain(e))
        assert unit.retries == in_unit
        found = re.search(r"(\d+) retried in this (batch|folio)", strip)
        assert (int(found[1]) if found else 0) == in_unit, strip
        assert unit.retries <= total


def check_rounds(frame: Frame, applied: list[Event]) -> None:
    view = frame.view
    c = view.counters
    sends = sum(1 for e in applied if e.kind is EventKind.FLUSH_SEND)
    ipis = sum(1 for e in applied if e.kind is EventKind.IPI_RECV)
    assert c.nr_tlb_remote_flush == sends
    assert c.nr_tlb_remote_flush_received == ipis == int(c.tlb_shootdowns.sum())
    assert int(c.rounds_by_kind.sum()) == sends
    stats = stats_content(frame, 400).plain
    assert number_after("rounds ", stats) == sends
    assert number_after("IPIs ", stats) == ipis
    assert f"pages {view.pages_done}/{view.pages_total}" in stats
    panel = "\n".join(line.plain for line, _ in IpiPanel().build(frame, 120))
    totals = re.search(r"total\s+(\d+) rounds? · (\d+) IPIs", panel)
    assert totals and (int(totals[1]), int(totals[2])) == (sends, ipis), panel
    kinds = re.search(r"kinds\s+(.*)", panel)
    assert kinds
    if sends:
        by_kind = [int(n) for n in re.findall(r"(\d+) [a-zA-Z]", kinds[1])]
        assert sum(by_kind) == sends, kinds[1]
    round_ = view.ipi_round
    acks = re.search(r"acks\s+(\d+) of (\d+)", panel)
    if round_ is not None and round_.targets:
        assert acks and (int(acks[1]), int(acks[2])) == (round_.acked, len(round_.targets))
        last_send = max(i for i, e in enumerate(applied) if e.kind is EventKind.FLUSH_SEND)
        handled = sum(1 for e in applied[last_send:] if e.kind is EventKind.IPI_RECV)
        assert round_.acked == handled, "acks are the IPIs handled since the round was sent"
    else:
        assert acks is None


TRACE_LINE = re.compile(r"^\s*(?P<task>\S+-\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+"
                        r"(?P<ts>\d+\.\d{6}):\s+(?P<name>[a-z_]+):\s?(?P<payload>.*?)"
                        r"(?:  \(no tracepoint\))?$")


def parsed(line: str) -> tuple[str, ...] | None:
    """A trace line's fields, whatever its spacing (the log aligns its columns its own way)."""
    match = TRACE_LINE.match(line.removeprefix("# "))
    return None if match is None else tuple(match.groupdict().values())


def check_log(frame: Frame, applied: list[Event], scenario: Scenario) -> None:
    view = frame.view
    lines = [line.plain for line in EventLog().build(frame, 400, 12)]
    shown = [fields for fields in map(parsed, lines) if fields is not None]
    formatter = TraceFormatter(scenario, printk=True)
    expected = [parsed(line) for _, line in lines_until(applied, formatter, view.clock_ns)]
    # The log's lines are the run's trace (`migviz trace --printk`) up to this instant: its
    # last lines, in its order, with the same addresses, pfns and timestamps.
    assert shown == expected[len(expected) - len(shown):]
    if applied:
        assert shown, "the log shows the latest lines"
    stamps = [float(fields[3]) for fields in shown]
    assert stamps == sorted(stamps), "the log is in time order"


def check_grids(frame: Frame) -> None:
    view = frame.view
    alive = view.folio_alive
    for node in (0, 1):
        codes = cell_codes(frame, node)
        here = view.folio_node == node
        assert (codes[here] == view.folio_state[here]).all()
        elsewhere = codes[~here]
        assert np.isin(elsewhere, [ABSENT, RESERVED, ARRIVING]).all()
        if node != view.dst or view.done:
            assert (elsewhere == ABSENT).all()
    flying = (view.folio_state == FolioState.COPYING) & alive
    assert (cell_codes(frame, view.dst)[flying & (view.folio_node == view.src)] == ARRIVING).all()


def check_end(view: EngineView, frame: Frame, scenario: Scenario, toggled: bool) -> None:
    if not view.done or toggled:
        return
    headless = Engine(scenario, checkpoints=False, history=1)
    headless.run_to_end()
    summary = headless.summary()
    assert view.clock_ns == summary.sim_time_ns
    assert view.pages_per_sec == summary.pages_per_sec
    assert view.ipis_per_page == summary.ipis_per_page
    assert view.workload.percentile(99) == summary.stall_p99_ns
    assert header_figures(frame)["clock"] == format_ns(summary.sim_time_ns)
    stats = stats_content(frame, 400).plain
    assert f"pages/s {format_count(summary.pages_per_sec)}" in stats


@SETTINGS
@given(scenario=scenarios(), keys=actions)
def test_every_panel_agrees_with_the_engine_at_every_step(scenario: Scenario,
                                                          keys: list[str]) -> None:
    session = Session(scenario)
    skip_flush = scenario.migration.skip_flush
    for key in [*keys, *["B"] * 400]:  # the user's keys, then batch steps to the end
        session.press(key)
        engine = session.lane.engine
        frame = session.frame()
        applied = session.applied
        assert len(applied) == engine.events
        assert [e.seq for e in applied] == list(range(len(applied)))
        check_header(frame, applied)
        check_cpus(frame, engine, applied, skip_flush)
        check_retries(frame, applied)
        check_rounds(frame, applied)
        check_log(frame, applied, scenario)
        check_grids(frame)
        check_end(frame.view, frame, scenario, session.toggled)
        if engine.done:
            break
    assert session.lane.engine.done


def test_numa_balancing_panels_agree_at_every_step() -> None:
    """The app's NUMA-balancing screen, stepped like a user steps it (events, phases, units,
    back, a mode switch), then to the end: header, CPU rows, strip, rounds, log and grids say
    what the events applied so far say, at every step."""
    import random

    scenario = load_scenario("numa-balancing", ["numa.passes=1"])
    session = Session(scenario)
    keys = random.Random(11).choices(["n", "n", "n", "n", "p", "B", "u", "u", "b"], k=160)
    busy = 0
    for key in [*keys, *["B"] * 2000]:
        session.press(key)
        engine = session.lane.engine
        frame = session.frame()
        applied = session.applied
        assert len(applied) == engine.events
        check_header(frame, applied)
        check_numa_calls(frame, applied)
        check_cpus(frame, engine, applied, False)
        check_rounds(frame, applied)
        check_log(frame, applied, scenario)
        check_grids(frame)
        check_end(frame.view, frame, scenario, session.toggled)
        busy += len(in_flight(applied)) > 0
        if engine.done:
            break
    assert session.lane.engine.done
    assert busy, "some step showed a call in flight"
    view = session.frame().view
    assert view.pages_done == view.pages_total == view.counters.numa_pages_migrated


def replay(scenario: Scenario, toggles: list[tuple[int, Mode]], count: int) -> list[Event]:
    """The first ``count`` events of a run with mode switches asked for at these positions."""
    engine = Engine(scenario, checkpoints=False)
    events: list[Event] = []
    for position, mode in [*toggles, (count, None)]:
        while engine.events < position and (step := engine.step()):
            events.extend(step)
        if mode is not None:
            engine.set_mode(mode)
    return events


def test_the_real_app_draws_what_the_checks_read() -> None:
    """The checks above read widgets' content builders; here the running app is stepped with
    keys and each widget on screen must show exactly what its builder makes of the app's last
    frame, whose view is the engine's at that instant (so the checks hold on screen too)."""
    import asyncio
    import random

    from tui.app import MigvizApp
    from tui.widgets.stats_line import StatsLine

    keys = random.Random(7).choices(["n", "n", "n", "p", "B", "u", "b"], k=40)
    for name in ("tiny", "contended", "thp", "numa-balancing"):
        app = MigvizApp(load_scenario(name), paused=True)
        applied: list[Event] = []

        async def main(app: MigvizApp = app, applied: list[Event] = applied) -> None:
            async with app.run_test(size=(160, 48)) as pilot:
                await pilot.pause()
                toggles: list[tuple[int, Mode]] = []
                for key in keys:
                    before = app.lane.engine.events
                    await pilot.press(key)
                    await pilot.pause()
                    engine = app.lane.engine
                    if key == "b":
                        toggles.append((before, engine.pending_mode or engine.mode))
                    toggles = [t for t in toggles if t[0] <= engine.events]
                    applied[:] = replay(app.scenario, toggles, engine.events)
                    frame = app.last_frame
                    assert frame is not None and frame.view.events == engine.events
                    tlb = app.query_one(TlbPanel)
                    assert tlb.lines == tlb.build(frame, tlb.text_width)
                    ipi = app.query_one(IpiPanel)
                    assert [line.plain for line in ipi.lines] == [
                        line.plain for line in ipi._fitted(frame)]
                    assert app.query_one(HeaderBar).render() == HeaderBar.build(
                        frame, app.query_one(HeaderBar).size.width)
                    stats = app.query_one(StatsLine)
                    assert stats.render().plain.splitlines()[0] == stats_content(  # type: ignore[union-attr]
                        frame, stats.size.width).plain
                    check_header(frame, applied)
                    check_retries(frame, applied)
                    check_rounds(frame, applied)

        asyncio.run(main())
