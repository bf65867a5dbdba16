"""The workload: pmbench-like threads touching the folios while they migrate.

The rules checked here come from docs/kernel.md §4.7: a thread accesses one page
every access_interval_ns; through a TLB entry it reaches the page (a stale entry still reaches the
old page until the flush); without one, a migration entry makes it fault and sleep in
migration_entry_wait() until the folio is remapped and unlocked. A fault costs at least fault_ns.
Only CPUs that run a non-lazy workload thread access memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import build_scenario, headless_run

from core.engine import CpuActivity, Engine
from core.events import Event, EventKind
from core.scenario import Scenario, scenario_from_dict

FULL = -1


def make_scenario(*, count: int = 24, orders: list[int] | None = None, threads: int = 6,
                  lazy: tuple[int, ...] = (), interval: int = 100, write_ratio: float = 0.5,
                  mode: str = "batched", batch_pages: int = 8, moves: int = 2, seed: int = 5,
                  contention: float = 0.0, move_contention: float = 0.0,
                  costs: dict[str, int] | None = None) -> Scenario:
    return build_scenario(name="workload", count=count, orders=orders, threads=threads,
                          lazy=lazy, interval=interval, write_ratio=write_ratio, mode=mode,
                          batch_pages=batch_pages, moves=moves, seed=seed,
                          contention=contention, move_contention=move_contention, costs=costs)


def headless(scenario: Scenario) -> tuple[Engine, list[Event]]:
    return headless_run(scenario)


def unmapped_intervals(events: list[Event]) -> list[tuple[int, int, int]]:
    """(folio, unmap time, remap-or-restore time) of every migration-entry window, from events."""
    opened: dict[int, int] = {}
    windows = []
    for e in events:
        if e.kind is EventKind.FLUSH_SEND and e.folio >= 0:
            # ptep_clear_flush(): the PTE is cleared when its round is sent; the migration entry
            # (the UNMAP event) goes in after the round.
            opened.setdefault(e.folio, e.time_ns)
        elif e.kind is EventKind.UNMAP:
            opened.setdefault(e.folio, e.time_ns)  # a PTE-mapped large folio: the first PTE
        elif e.kind in (EventKind.REMAP, EventKind.RESTORE) and e.folio in opened:
            windows.append((e.folio, opened.pop(e.folio), e.time_ns))
    assert not opened, "every unmapped folio is remapped or restored by the end"
    return windows


SCENARIOS = [
    pytest.param({"mode": "batched"}, id="batched"),
    pytest.param({"mode": "serial"}, id="serial"),
    pytest.param({"mode": "batched", "orders": [0] * 6 + [9] + [1, 2] * 4, "interval": 300},
                 id="batched-thp"),
    pytest.param({"mode": "batched", "contention": 0.3, "move_contention": 0.2},
                 id="batched-contended"),
    pytest.param({"mode": "serial", "lazy": (2, 3), "interval": 40}, id="serial-lazy"),
]


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_no_threads_no_accesses(mode: str) -> None:
    engine, _ = headless(make_scenario(threads=0, mode=mode))
    work = engine.workload.stats()
    assert work.accesses == work.tlb_hits == work.tlb_misses == work.faults == 0
    assert work.stall_ns.size == 0
    view = engine.view()
    assert not any(view.tlb_valid) and not any(view.tlb_stale)
    assert CpuActivity.STALLED not in view.cpu_activity
    assert engine.summary().accesses == 0


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_huge_interval_means_no_accesses_after_the_first_slot(mode: str) -> None:
    # One access per thread per interval, the threads' first slots staggered evenly over the
    # first interval (thread i at i * interval / threads). With an interval far longer than the
    # whole run only thread 0's first slot, at t = 0, falls inside it; nothing is unmapped then,
    # so it cannot fault.
    threads = 6
    interval = 10**13
    engine, _ = headless(make_scenario(threads=threads, interval=interval, mode=mode))
    work = engine.workload.stats()
    assert engine.workload.horizon < interval // threads
    assert work.accesses == 1
    assert work.faults == 0 and work.stall_ns.size == 0 and work.stale_hits == 0
    assert engine.summary().stalls == 0


@pytest.mark.parametrize("overrides", SCENARIOS)
def test_access_accounting(overrides: dict[str, Any]) -> None:
    scenario = make_scenario(**overrides)
    engine, _ = headless(scenario)
    work = engine.workload.stats()
    threads = len([c for c in range(scenario.workload.threads)
                   if c not in scenario.workload.lazy_cpus and c != 7])
    horizon = engine.workload.horizon
    assert work.accesses > 0
    # Each thread accesses at most once per interval.
    assert work.accesses <= threads * (horizon // scenario.workload.access_interval_ns + 1)
    assert work.tlb_hits + work.tlb_misses == work.accesses
    assert 0 <= work.stale_hits <= work.tlb_hits
    assert 0 <= engine.workload.stale_writes <= work.stale_hits
    # After the run every wait has ended: one stall per fault.
    assert work.stall_ns.size == work.faults


@pytest.mark.parametrize("overrides", SCENARIOS)
def test_every_stall_lasts_at_least_a_fault_and_at_most_a_migration_window(
        overrides: dict[str, Any]) -> None:
    fault_ns = 1_700
    scenario = make_scenario(**overrides, costs={"fault_ns": fault_ns})
    engine, events = headless(scenario)
    stalls = engine.workload.stats().stall_ns
    assert stalls.size > 0
    assert int(stalls.min()) >= fault_ns
    # A thread faults inside a folio's unmapped window and wakes at max(fault end, remap), so no
    # wait is longer than max(fault_ns, the longest window).
    longest = max(end - start for _, start, end in unmapped_intervals(events))
    assert int(stalls.max()) <= max(fault_ns, longest)


@pytest.mark.parametrize("overrides", SCENARIOS)
def test_threads_stall_only_on_unmapped_folios(overrides: dict[str, Any]) -> None:
    scenario = make_scenario(**overrides)
    fault_ns = scenario.costs.fault_ns
    runners = {c for c in range(scenario.workload.threads)
               if c not in scenario.workload.lazy_cpus and c != 7}
    engine = Engine(scenario)
    unmapped: dict[int, int] = {}  # folio -> unmap time, from the events
    remapped_at: dict[int, int] = {}
    stalled_views = 0
    while step := engine.step():
        (event,) = step
        if event.kind is EventKind.UNMAP or (event.kind is EventKind.FLUSH_SEND
                                             and event.folio >= 0):
            unmapped.setdefault(event.folio, event.time_ns)
        elif event.kind in (EventKind.REMAP, EventKind.RESTORE):
            unmapped.pop(event.folio, None)
            remapped_at[event.folio] = event.time_ns
        if event.seq % 3:
            continue
        view = engine.view()
        for cpu, folio in enumerate(view.cpu_stalled_on):
            if folio < 0:
                continue
            stalled_views += 1
            assert cpu in runners
            # (The CPU shows IPI instead while it handles a shootdown interrupt.)
            assert view.cpu_activity[cpu] in (CpuActivity.STALLED, CpuActivity.IPI)
            # Waiting on a migration entry, or still paying the fault after the remap woke it.
            assert folio in unmapped or remapped_at[folio] >= view.clock_ns - fault_ns, \
                (cpu, folio, view.clock_ns)
        if not unmapped and not any(remapped_at[f] >= view.clock_ns - fault_ns
                                    for f in remapped_at):
            assert all(f < 0 for f in view.cpu_stalled_on)
    assert stalled_views > 0, "the scenario should make some thread wait"


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_only_running_threads_hold_tlb_entries(mode: str) -> None:
    # Threads on CPUs 0..5, CPUs 1 and 4 lazy, initiator 7, CPU 6 idle.
    scenario = make_scenario(lazy=(1, 4), mode=mode)
    engine = Engine(scenario)
    engine.seek(60)
    warm = 0
    for _ in range(4):
        view = engine.view()
        for cpu in (1, 4, 6, 7):
            assert view.tlb_valid[cpu] == view.tlb_stale[cpu] == 0
            assert view.cpu_stalled_on[cpu] == -1
        assert view.cpu_in_mask == tuple(c < 6 for c in range(8))
        warm += sum(view.tlb_valid) > 0  # (right after a full flush every TLB is empty)
        engine.seek(engine.events + 50)
    assert warm, "the running threads do fill their TLBs"


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_no_stale_entries_once_a_flush_has_completed(mode: str) -> None:
    # Few pages, many fast threads: every TLB is warm, so unmapping leaves stale entries until
    # the shootdown. Batched: after each full flush (try_to_unmap_flush) no CPU holds a stale
    # entry. Serial: one folio is unmapped at a time, so after its round none is stale either.
    scenario = make_scenario(count=16, threads=6, interval=30, batch_pages=16, moves=3,
                             mode=mode)
    engine = Engine(scenario)
    stale_before_flush = 0
    flushes = 0
    while step := engine.step():
        (event,) = step
        if event.kind is EventKind.FLUSH_SEND:
            stale_before_flush += sum(engine.view().tlb_stale)
        if event.kind is EventKind.FLUSH_DONE:
            if mode == "batched":
                assert event.folio == FULL
            flushes += 1
            view = engine.view()
            assert sum(view.tlb_stale) == 0, view.tlb_stale
        if event.kind is EventKind.COPY:
            assert sum(engine.view().tlb_stale) == 0
    assert flushes == (3 if mode == "batched" else 16 * 3)
    assert stale_before_flush > 0, "deferred or not, a warm TLB holds stale entries until flushed"
    assert engine.summary().stale_hits > 0


def test_stale_entries_only_for_unmapped_folios() -> None:
    engine = Engine(make_scenario(count=16, interval=30, batch_pages=16, moves=2))
    while step := engine.step():
        view = engine.view()
        if sum(view.tlb_stale):
            assert engine.folios.unmapped[: engine.folios.count].any()
        if step[0].kind is EventKind.MIGRATE_END:
            assert sum(view.tlb_stale) == 0


@pytest.mark.parametrize(("write_ratio", "all_writes"), [(0.0, False), (1.0, True)])
def test_write_ratio_decides_stale_writes(write_ratio: float, all_writes: bool) -> None:
    engine, _ = headless(make_scenario(count=16, interval=30, write_ratio=write_ratio))
    stale_hits = engine.workload.stats().stale_hits
    assert stale_hits > 0
    assert engine.workload.stale_writes == (stale_hits if all_writes else 0)


def test_batched_waits_can_be_longer_than_serial_ones() -> None:
    # Not a benchmark: a shape check of the model. In serial mode a folio is unmapped only for
    # its own unmap+flush+copy; in batched mode it stays unmapped for about a whole batch
    # (docs/kernel.md §4.7), so the longest wait is longer batched.
    serial, _ = headless(make_scenario(count=64, batch_pages=64, mode="serial"))
    batched, _ = headless(make_scenario(count=64, batch_pages=64, mode="batched"))
    assert batched.workload.stats().stall_ns.max() > serial.workload.stats().stall_ns.max()


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_a_thp_split_does_not_depend_on_how_time_is_windowed(mode: str) -> None:
    # -ENOMEM splits a THP and rewrites the page -> folio map. Accesses made before the split
    # must count against the THP whether the lazy workload simulated them before the split
    # (a stepped run drawing a view after every event) or after it (a headless run).
    checked = 0
    for seed in range(1, 200):
        scenario = scenario_from_dict({
            "name": "split", "seed": seed, "topology": {"nodes": 2, "cpus": 4},
            "memory": {"folios": [{"order": 9, "count": 1}, {"order": 0, "count": 6}]},
            "workload": {"threads": 3, "access_interval_ns": 60},
            "migration": {"mode": mode, "initiator_cpu": 3, "moves": 3, "batch_pages": 8,
                          "enomem": 0.3},
        })
        engine, events = headless(scenario)
        splits = [e for e in events if e.kind is EventKind.SPLIT]
        if not splits or splits[0].time_ns < 10_000:
            continue  # want a split after the threads have been running for a while
        stepped = Engine(scenario)
        while stepped.step():
            stepped.view()
        assert stepped.summary() == engine.summary()
        checked += 1
        if checked == 3:
            break
    assert checked == 3, "expected some seeds to split the THP late in the run"


def test_shootdown_ipis_steal_time_from_the_threads_they_interrupt() -> None:
    """Serial migration interrupts every workload CPU once per page; each handler costs its
    thread ipi_handler_ns, so the threads get fewer accesses done in the same simulated time.
    The initiator waits for the slowest target's handler, so each round also takes that much
    longer (x86 waits for every acknowledgement)."""
    from core.engine import Engine
    from core.scenario import Mode, load_scenario

    def scenario(handler_ns: int) -> Scenario:
        return load_scenario("tiny", [f"costs.ipi_handler_ns={handler_ns}",
                                      "memory.folios=[{order = 0, count = 64}]"])

    free = Engine(scenario(0), Mode.SERIAL, checkpoints=False)
    free.run_to_end()
    end = free.clock
    taxed = Engine(scenario(400), Mode.SERIAL, checkpoints=False)
    taxed.run_to_end()
    assert taxed.clock - end == 400 * taxed.counters.nr_tlb_remote_flush
    # Over the same stretch of simulated time, each thread loses about one access per
    # access_interval_ns (tiny: 500 ns) of handlers it ran.
    taxed = Engine(scenario(400), Mode.SERIAL, checkpoints=False)
    taxed.run_until(end)
    for engine in (free, taxed):
        engine.workload.advance_to(end)
    lost = free.workload.accesses - taxed.workload.accesses
    expected = taxed.counters.nr_tlb_remote_flush_received * 400 / 500
    assert 0.5 * expected <= lost <= 1.5 * expected + 4


def test_a_tlb_holds_at_most_its_capacity() -> None:
    # Four entries per CPU: whatever the threads touch, no view shows more held.
    scenario = make_scenario(count=40, threads=4, interval=40, moves=2, mode="batched")
    scenario = scenario.model_copy(update={
        "topology": scenario.topology.model_copy(update={"tlb_entries": 4})})
    engine = Engine(scenario)
    seen = 0
    while engine.step():
        if engine.events % 7:
            continue
        view = engine.view()
        for valid, stale in zip(view.tlb_valid, view.tlb_stale, strict=True):
            assert valid + stale <= 4
            seen += valid + stale
    assert seen > 0
    # A TLB as large as the map misses only on first touches and after flushes: far fewer.
    big = make_scenario(count=40, threads=4, interval=40, moves=2, mode="batched")
    assert headless(big)[0].summary().tlb_misses < engine.summary().tlb_misses


def test_every_miss_delays_the_next_access_by_a_refill() -> None:
    # Over the same simulated time, a thread whose misses each cost tlb_refill_ns gets about
    # misses * refill / interval fewer accesses done.
    def run(refill_ns: int, until: int | None = None) -> Engine:
        scenario = make_scenario(count=64, threads=2, interval=200, moves=2, mode="serial")
        scenario = scenario.model_copy(update={"costs": scenario.costs.model_copy(
            update={"tlb_refill_ns": refill_ns})})
        engine = Engine(scenario, checkpoints=False)
        if until is None:
            engine.run_to_end()
        else:
            engine.run_until(until)
        return engine

    free = run(0)
    end = free.clock
    taxed = run(300, end)
    for engine in (free, taxed):
        engine.workload.advance_to(end)
    lost = free.workload.accesses - taxed.workload.accesses
    expected = taxed.workload.tlb_misses * 300 / 200
    assert 0.7 * expected <= lost <= 1.3 * expected + 4
    summary = free.summary()
    assert summary.workload_accesses_per_sec == round(
        summary.accesses / (summary.sim_time_ns / 1e9), 1)


@pytest.mark.parametrize(("name", "mode", "overrides", "shows"), [
    ("contended", "serial", [], "stalls"),  # stalls, retries, stale hits and writes
    ("thp", "batched", ["topology.tlb_entries=16"], "stalls"),  # THPs, splits, evictions
    ("no-flush", "batched", ["topology.tlb_entries=8"], "lost_writes"),  # fill times
    ("numa-balancing", "batched", ["numa.passes=1"], "stalls"),  # PROT_NONE, threads' rounds
])
def test_the_compiled_access_loop_gives_what_the_plain_one_gives(
        monkeypatch: pytest.MonkeyPatch, name: str, mode: str, overrides: list[str],
        shows: str) -> None:
    """core/accesses.run_window runs in Python for short runs and compiled (numba) for long
    ones: one source, and the same figures either way."""
    from core import accesses
    from core.scenario import Mode, load_scenario

    summaries = []
    for runner in (lambda _: accesses.run_window, lambda _: accesses.compiled()):
        monkeypatch.setattr(accesses, "runner", runner)
        engine = Engine(load_scenario(name, overrides), Mode(mode), checkpoints=False)
        engine.run_to_end()
        summaries.append(engine.summary())
    plain, compiled = summaries
    assert plain.accesses > 1000 and getattr(plain, shows) > 0
    assert plain == compiled


@pytest.mark.parametrize("apart", [False, True])
@pytest.mark.parametrize("compiled", [False, True])
def test_the_recency_count_moves_on_without_changing_a_figure(
        monkeypatch: pytest.MonkeyPatch, apart: bool, compiled: bool) -> None:
    """A TLB that evicts by recency keeps each entry's last use as int32, counted from a base
    that moves on before a thread's count could outgrow it (here every 64 accesses). Threads
    too far apart to share one base (forced halfway through the run) count in int64 from then
    on."""
    import core.workload
    from core import accesses
    from core.scenario import Mode, load_scenario

    def run(span: int | None = None, force: bool = False) -> tuple[Engine, Any]:
        engine = Engine(load_scenario("thp", ["topology.tlb_entries=16"]), Mode.BATCHED,
                        checkpoints=False)
        with monkeypatch.context() as constants:
            if span is not None:
                constants.setattr(core.workload, "RECENCY_SPAN", span)
            if force:
                engine.run_until(HALFWAY)
                engine.catch_up()
                assert engine.workload.accesses > 1000
                constants.setattr(core.workload, "RECENCY_SPAN", 0)
                constants.setattr(core.workload, "RECENCY_LIMIT", 0)
            engine.run_to_end()
        return engine, engine.summary()

    if compiled:
        monkeypatch.setattr(accesses, "runner", lambda _: accesses.compiled())
    _, expected = run()
    engine, summary = run(None if apart else 64, force=apart)
    workload = engine.workload
    assert workload.last_k is not None
    if apart:
        assert workload.k_base == 0 and workload.last_k.dtype == np.int64
    else:
        assert workload.k_base > 0 and workload.last_k.dtype == np.int32
    assert summary == expected and summary.tlb_misses > 1000


HALFWAY = 1_000_000  # ns: a third of the thp scenario's run
