"""NUMA balancing as the caller (migration.caller = "numa-balancing"): the threads of the process
migrate the folios they take hinting faults on, one folio per migrate_pages() call, and the CPU
that flushes is inside mm_cpumask, so it flushes itself and IPIs the others."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

import core.numa
from core.engine import Engine
from core.events import Event, EventKind, RoundKind
from core.scenario import Mode, ScenarioError, load_scenario
from core.timeline import OPEN
from core.trace import TraceFormatter, write_trace
from core.workload import Workload

# A THP alone in the first 2 MiB chunk, 128 base pages in the second; scans far enough apart
# that the second pass finds every folio home, close enough that a fault or two lands while a
# scan's flush is pending.
SMALL = ["memory.folios=[{order = 9, count = 1}, {order = 0, count = 128}]",
         "numa.scan_period_ns=300000"]

NumaRun = tuple[Mode, Engine, list[Event]]


def run(mode: Mode, overrides: list[str] = SMALL) -> tuple[Engine, list[Event]]:
    engine = Engine(load_scenario("numa-balancing", overrides), mode, checkpoints=False)
    events = list(engine.iter_events())
    return engine, events


@pytest.fixture(scope="module", params=[Mode.SERIAL, Mode.BATCHED], ids=["6.2", "6.3"])
def numa_run(request: pytest.FixtureRequest) -> tuple[Mode, Engine, list[Event]]:
    engine, events = run(request.param)
    return request.param, engine, events


def calls(events: list[Event]) -> dict[int, list[Event]]:
    """The events of each migrate_pages() call (Event.move is the call's number)."""
    by_call: dict[int, list[Event]] = defaultdict(list)
    for e in events:
        if e.kind in (EventKind.MIGRATE_START, EventKind.BATCH_START, EventKind.UNMAP,
                      EventKind.COPY, EventKind.REMAP, EventKind.MIGRATE_END) or \
                e.round_kind in (RoundKind.PMD, RoundKind.PTE, RoundKind.BATCH):
            by_call[e.move].append(e)
    return by_call


def test_every_call_migrates_one_folio_the_faulting_thread_touched(numa_run: NumaRun) -> None:
    mode, engine, events = numa_run
    faults = {e.folio: e for e in events if e.kind is EventKind.NUMA_FAULT and not e.arg}
    by_call = calls(events)
    assert by_call and len(by_call) == engine.counters.migrate_calls
    for call, steps in by_call.items():
        start = next(e for e in steps if e.kind is EventKind.MIGRATE_START)
        end = next(e for e in steps if e.kind is EventKind.MIGRATE_END)
        assert start.pages == 1, "migrate_misplaced_page() passes a list of one folio"
        assert {e.folio for e in steps if e.folio >= 0} == {start.folio}
        fault = faults[start.folio]
        # The thread that faulted migrates, on its own CPU, right after its fault ...
        assert {e.cpu for e in steps if e.kind is not EventKind.IPI_RECV} == {fault.cpu}
        assert fault.time_ns < start.time_ns <= end.time_ns
        # ... to its own node.
        remap = next(e for e in steps if e.kind is EventKind.REMAP)
        assert remap.node == engine.machine.node_of_cpu[fault.cpu]
        batch_starts = [e for e in steps if e.kind is EventKind.BATCH_START]
        assert len(batch_starts) == (1 if mode is Mode.BATCHED else 0), call


def test_counters_are_the_events(numa_run: NumaRun) -> None:
    _, engine, events = numa_run
    c = engine.counters
    kinds = [e.kind for e in events]
    assert c.numa_hint_faults == kinds.count(EventKind.NUMA_FAULT)
    assert c.numa_hint_faults_local == sum(
        1 for e in events if e.kind is EventKind.NUMA_FAULT and e.arg)
    assert c.numa_pte_updates == sum(e.pages for e in events if e.kind is EventKind.NUMA_SCAN)
    assert c.numa_pages_migrated == c.pgmigrate_success == sum(
        e.pages for e in events if e.kind is EventKind.MIGRATE_END)
    local = [e for e in events if e.kind is EventKind.LOCAL_FLUSH]
    assert c.nr_tlb_local_flush_all == sum(1 for e in local if e.pages == -1)
    assert c.nr_tlb_local_flush_one == sum(e.pages for e in local if e.pages > 0)
    assert c.nr_tlb_remote_flush == kinds.count(EventKind.FLUSH_SEND)
    assert c.nr_tlb_remote_flush_received == kinds.count(EventKind.IPI_RECV)
    assert c.numa_hint_faults_local > 0, "the second pass finds folios already home"
    assert c.numa_pages_migrated == engine.scenario.memory.total_pages, "every page moved once"
    table = engine.folios
    assert (table.node[: table.count] == 1).all()


def test_the_sender_flushes_itself_and_ipis_the_others(numa_run: NumaRun) -> None:
    """flush_tlb_mm_range() from a thread: the sender is in mm_cpumask, so flush_tlb_func()
    runs on it (reason 3, or 2 for 6.3's batch flush) between the send and the acks, and only
    the other CPUs of the mask get IPIs."""
    mode, engine, events = numa_run
    mask = set(engine.machine.mm_cpumask)
    sends = [i for i, e in enumerate(events) if e.kind is EventKind.FLUSH_SEND]
    assert sends
    for index in sends:
        send = events[index]
        assert send.cpu in mask and send.cpu not in send.targets
        assert set(send.targets) == mask - {send.cpu}
        local = next(e for e in events[index:] if e.kind is EventKind.LOCAL_FLUSH
                     and e.cpu == send.cpu)
        assert local.time_ns >= send.time_ns
        assert local.arg == (2 if send.round_kind is RoundKind.BATCH else 3)
        if send.round_kind is RoundKind.BATCH:
            assert mode is Mode.BATCHED and send.pages == -1


def test_scan_flushes_follow_the_chunk_and_the_generations(numa_run: NumaRun) -> None:
    """The THP alone in its 2 MiB chunk is one PMD stride: a partial flush that every CPU, one
    generation behind, does as one INVLPG; the base pages' chunk is 64 pages, past the ceiling
    of 33: a full flush."""
    _, _, events = numa_run
    scans = [e for e in events if e.kind is EventKind.FLUSH_SEND
             and e.round_kind is RoundKind.PROT_NONE]
    first = scans[0]
    assert first.pages == 512
    acks = [e for e in events if e.kind is EventKind.IPI_RECV and e.time_ns >= first.time_ns
            and e.round_kind is RoundKind.PROT_NONE][: len(first.targets)]
    assert [e.pages for e in acks] == [1] * len(first.targets)
    full = [s for s in scans if s.pages == -1]
    assert full, "the base pages' chunk is flushed whole"


def test_a_prot_none_page_migrates_without_a_flush(numa_run: NumaRun) -> None:
    """pte_accessible() is false for a PROT_NONE PTE: neither 6.2's ptep_clear_flush() nor
    6.3's set_tlb_ubc_flush_pending() flushes for it, unless a scan's own flush is still
    pending (mm_tlb_flush_pending). A THP's pmdp_invalidate() flushes always."""
    mode, engine, events = numa_run
    gathers = engine.task.s.numa_gathers
    for steps in calls(events).values():
        unmap = next(e for e in steps if e.kind is EventKind.UNMAP)
        rounds = [e for e in steps if e.kind is EventKind.FLUSH_SEND]
        local = [e for e in steps if e.kind is EventKind.LOCAL_FLUSH]
        if unmap.order == 9:
            assert [r.round_kind for r in rounds] == [RoundKind.PMD]
            continue
        start = next(e for e in steps if e.kind is EventKind.MIGRATE_START)
        costs = engine.scenario.costs
        cleared = start.time_ns + costs.alloc_ns + costs.lock_ns + costs.unmap_pte_ns
        pending = any(begin <= cleared < end for begin, end in gathers)
        assert len(local) == int(pending)
        if not pending:
            assert not rounds and unmap.arg == 0
        elif mode is Mode.SERIAL:
            assert [r.round_kind for r in rounds] == [RoundKind.PTE] and rounds[0].pages == 1
            assert local[0].time_ns <= unmap.time_ns, "flushed, then the migration entry"
        else:
            assert [r.round_kind for r in rounds] == [RoundKind.BATCH]
            assert unmap.arg == 1 and unmap.time_ns <= rounds[0].time_ns, "deferred"
            assert rounds[0].pages == -1 and local[0].pages in (-1, 0)


def test_batching_has_nothing_to_batch() -> None:
    """One folio per call: in either kernel a call sends at most one round, to the same CPUs;
    the scans' rounds are the same code in both."""
    per_call: dict[object, object] = {}
    for mode in (Mode.SERIAL, Mode.BATCHED):
        _, events = run(mode)
        rounds = [len([e for e in steps if e.kind is EventKind.FLUSH_SEND])
                  for steps in calls(events).values()]
        assert max(rounds) == 1
        per_call[mode] = {len(e.targets) for e in events if e.kind is EventKind.FLUSH_SEND}
        scans = [(e.time_ns, e.pages) for e in events if e.kind is EventKind.NUMA_SCAN]
        per_call[mode, "scans"] = scans[:2]
    assert per_call[Mode.SERIAL] == per_call[Mode.BATCHED] == {3}
    assert per_call[Mode.SERIAL, "scans"] == per_call[Mode.BATCHED, "scans"]


def test_the_planned_faults_are_the_workloads_faults(numa_run: NumaRun) -> None:
    """The planner finds faults by simulating the workload ahead; the workload itself, run over
    the finished timeline in small windows, must stall at exactly those accesses, plus those
    that met a folio another thread was already migrating (or restoring)."""
    _, engine, events = numa_run
    planned = {(e.time_ns, e.cpu, e.folio) for e in events if e.kind is EventKind.NUMA_FAULT}
    fresh = Workload(engine.scenario, engine.machine, engine.folios, engine.timeline)
    seen = set()
    time = 0
    while time <= engine.clock:  # the last event may be a fault: its access is at the clock
        time = min(time + 300, engine.clock + 1)
        fresh.advance_to(time)
        for thread in np.flatnonzero(fresh.stalled_on >= 0):
            seen.add((int(fresh.stall_start[thread]), fresh.cpus[thread],
                      int(fresh.stalled_on[thread])))
    assert planned <= seen
    first_fault = {folio: when for when, _, folio in sorted(planned, reverse=True)}
    for when, cpu, folio in seen - planned:  # a tie: two threads met it in the same nanosecond
        assert folio in first_fault and first_fault[folio] <= when
        assert (first_fault[folio], cpu, folio) not in planned
    assert fresh.faults == engine.workload.faults


@pytest.mark.parametrize("look", [1_000, 30_000])
def test_the_plan_does_not_depend_on_how_far_it_looks(monkeypatch: pytest.MonkeyPatch,
                                                      look: int) -> None:
    reference = [(e.time_ns, e.kind, e.cpu, e.folio, e.pages) for e in run(Mode.BATCHED)[1]]
    monkeypatch.setattr(core.numa, "LOOK_AHEAD_NS", look)
    again = [(e.time_ns, e.kind, e.cpu, e.folio, e.pages) for e in run(Mode.BATCHED)[1]]
    assert again == reference


def test_stepping_back_and_forth_gives_the_same_run() -> None:
    """Checkpoints copy the plan of the period in flight; restoring one and replaying gives the
    events a headless run gives."""
    scenario = load_scenario("numa-balancing", SMALL)
    headless = Engine(scenario, checkpoints=False)
    reference = [(e.time_ns, e.kind, e.cpu, e.folio, e.pages) for e in headless.iter_events()]
    stepped = Engine(scenario)
    made = []
    turns = [len(reference) // 2, len(reference) // 3]  # go back once at each
    while not stepped.done:
        made += stepped.step()
        if turns and len(made) >= turns[-1]:
            turns.pop()
            stepped.back(len(made) // 4)
            made = made[: stepped.events]
            stepped.view()
    assert not turns
    assert [(e.time_ns, e.kind, e.cpu, e.folio, e.pages) for e in made] == reference
    assert stepped.summary() == headless.summary()


def test_the_trace_shows_the_threads_and_their_local_flushes() -> None:
    scenario = load_scenario("numa-balancing", SMALL)
    engine = Engine(scenario, checkpoints=False)
    lines = list(write_trace(engine.iter_events(), TraceFormatter(scenario)))
    assert not any("migratepages-" in line for line in lines), "no migrating task of its own"
    starts = [line for line in lines if "mm_migrate_pages_start" in line]
    assert starts and all("mode=MIGRATE_ASYNC reason=numa_misplaced" in s for s in starts)
    local = [line for line in lines if "local mm shootdown (3)" in line]
    assert local and all(line.lstrip().startswith("pmbench-") and " d..1. " in line
                         for line in local)


def test_untouched_prot_none_ptes_do_not_keep_the_run_going() -> None:
    """With no access ever reaching some pages, the run still ends (DRAIN_PERIODS)."""
    engine, events = run(Mode.BATCHED, SMALL + ["workload.access_interval_ns=50000000",
                                                "numa.passes=1"])
    assert engine.done
    open_intervals = engine.timeline.iv_end.view() == OPEN
    assert open_intervals.any(), "some PTEs are still PROT_NONE at the end"
    assert events[-1].kind in (EventKind.MIGRATE_END, EventKind.NUMA_FAULT, EventKind.NUMA_SCAN,
                               EventKind.FLUSH_DONE, EventKind.LOCAL_FLUSH)


@pytest.mark.parametrize("override, field", [
    ("migration.contention=0.1", "migration.contention"),
    ("migration.skip_flush=true", "migration.skip_flush"),
    ("workload.lazy_cpus=[4, 5, 6, 7]", "migration.caller"),
])
def test_what_numa_balancing_does_not_model_is_refused(override: str, field: str) -> None:
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        load_scenario("numa-balancing", [override])
