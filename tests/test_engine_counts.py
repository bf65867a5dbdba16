"""Exact counters that follow from the kernel rules, worked out from the scenario parameters.

The rules (docs/kernel.md §3, §4.1, §4.6, §5.3, §6):

* 6.2 (serial): every PTE is cleared with ptep_clear_flush(), one shootdown round per PTE; a
  PMD-mapped THP has one PMD and pmdp_invalidate() flushes it at once: one round.
* 6.3 (batched): the `from` list is cut into batches (accumulate folio_nr_pages(), cut once the
  running total reaches NR_MAX_BATCHED_MIGRATION, the crossing folio included); every PTE-mapped
  folio of a batch is unmapped with TTU_BATCH_FLUSH and ONE try_to_unmap_flush() round follows;
  a PMD-mapped THP is still flushed at once (never deferred).
* native_flush_tlb_multi() counts NR_TLB_REMOTE_FLUSH once per round as soon as mm_cpumask holds
  a CPU other than the sender, and sends IPIs only to the non-lazy ones; each target counts
  NR_TLB_REMOTE_FLUSH_RECEIVED and its /proc/interrupts "TLB" cell.
* The migrating task runs its own mm on the initiator CPU, so that CPU is never in the
  workload's mm_cpumask (core/tlb.py).

Nothing below is copied from program output: every expected value is computed from the rules.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build_scenario, headless_run

from core.engine import Engine
from core.events import Event, EventKind
from core.scenario import Mode, Scenario, ScenarioError, load_scenario, scenario_from_dict

PMD_ORDER = 9


def make_scenario(orders: list[int], *, cpus: int = 8, threads: int = 6,
                  lazy: tuple[int, ...] = (), initiator: int = 7, moves: int = 1,
                  batch_pages: int = 512, seed: int = 1) -> Scenario:
    """A contention-free scenario whose folios have the given orders, in list order."""
    return build_scenario(name="counts", orders=orders, cpus=cpus, threads=threads, lazy=lazy,
                          initiator=initiator, moves=moves, batch_pages=batch_pages, seed=seed,
                          contention=0.0, move_contention=0.0, writeback=0.0, enomem=0.0)


def run(scenario: Scenario, mode: str) -> tuple[Engine, list[Event]]:
    return headless_run(scenario, mode)


def mask_of(threads: int, initiator: int) -> list[int]:
    """mm_cpumask of the workload: its thread CPUs, minus the CPU running the migrating task."""
    return [cpu for cpu in range(threads) if cpu != initiator]


def targets_of(threads: int, initiator: int, lazy: tuple[int, ...]) -> list[int]:
    """The CPUs a round actually interrupts: non-lazy CPUs of the mask."""
    return [cpu for cpu in mask_of(threads, initiator) if cpu not in lazy]


def cut_batches(orders: list[int], limit: int) -> list[list[int]]:
    """migrate_pages() `again:` — cut when the running page total reaches the limit."""
    batches: list[list[int]] = []
    current: list[int] = []
    pages = 0
    for order in orders:
        current.append(order)
        pages += 1 << order
        if pages >= limit:
            batches.append(current)
            current, pages = [], 0
    if current:
        batches.append(current)
    return batches


def serial_rounds_per_move(orders: list[int]) -> int:
    """One round per PTE: 1 for a PMD-mapped THP, 2**order for a PTE-mapped folio."""
    return sum(1 if order == PMD_ORDER else 1 << order for order in orders)


def batched_rounds_per_move(orders: list[int], limit: int) -> int:
    """Per batch: one deferred full-flush round if it holds a PTE-mapped folio, plus one
    immediate round per PMD-mapped THP."""
    total = 0
    for batch in cut_batches(orders, limit):
        thps = sum(order == PMD_ORDER for order in batch)
        total += thps + (1 if len(batch) > thps else 0)
    return total


# ---------------------------------------------------------------------------------------------
# Hand-worked examples (the arithmetic is in the comments)


def test_serial_base_pages_hand_worked() -> None:
    # 24 base pages, 2 moves: 48 folio migrations, one round each.
    # CPUs 0..5 run threads, the initiator is CPU 7, nobody lazy: 6 targets per round.
    engine, _ = run(make_scenario([0] * 24, moves=2), "serial")
    c = engine.counters
    assert c.nr_tlb_remote_flush == 48
    assert c.nr_tlb_remote_flush_received == 48 * 6
    assert c.pgmigrate_success == 48
    assert c.pgmigrate_fail == 0
    assert c.batches == 0


def test_batched_base_pages_hand_worked() -> None:
    # 10 base pages, batch limit 4: batches of 4, 4, 2 -> 3 rounds per move, 2 moves -> 6 rounds.
    # Threads on CPUs 0,1,3,4,5 (CPU 2 idle), the initiator on CPU 2: 5 targets.
    scenario = scenario_from_dict({
        "name": "counts", "topology": {"nodes": 2, "cpus": 8},
        "memory": {"folios": [{"order": 0, "count": 10}]},
        "workload": {"threads": 5, "cpus": [0, 1, 3, 4, 5]},
        "migration": {"initiator_cpu": 2, "moves": 2, "batch_pages": 4},
    })
    engine, _ = run(scenario, "batched")
    c = engine.counters
    assert c.batches == 6
    assert c.nr_tlb_remote_flush == 6
    assert c.batch_flush_rounds == 6
    assert c.nr_tlb_remote_flush_received == 6 * 5
    assert c.pgmigrate_success == 20
    assert c.tlb_shootdowns.tolist() == [6, 6, 0, 6, 6, 6, 0, 0]


def test_the_migrating_task_never_shares_a_cpu_with_a_thread() -> None:
    # The model runs it like migratepages, on a CPU of its own outside mm_cpumask: a scenario
    # that puts it on a thread's CPU is refused, not silently treated as something else.
    with pytest.raises(ScenarioError, match=r"migration.initiator_cpu: CPU 2 runs a workload "):
        make_scenario([0] * 10, initiator=2)


def test_thp_between_base_pages_hand_worked() -> None:
    # [3 base, THP, 2 base], limit 4, 1 move:
    #   serial: 5 base rounds + 1 PMD round = 6.
    #   batched: batch 1 = 3 base + THP (3 + 512 >= 4) -> 1 full flush + 1 PMD round;
    #            batch 2 = 2 base -> 1 full flush. Total 3.
    orders = [0, 0, 0, PMD_ORDER, 0, 0]
    serial, _ = run(make_scenario(orders, batch_pages=4), "serial")
    batched, _ = run(make_scenario(orders, batch_pages=4), "batched")
    assert serial.counters.nr_tlb_remote_flush == 6
    assert serial.counters.pmd_flush_rounds == 1
    assert batched.counters.nr_tlb_remote_flush == 3
    assert batched.counters.pmd_flush_rounds == 1
    assert batched.counters.batch_flush_rounds == 2
    for engine in (serial, batched):
        assert engine.counters.pgmigrate_success == 5 + 512
        assert engine.counters.thp_migration_success == 1
        assert engine.counters.nr_tlb_remote_flush_received == 6 * engine.counters.nr_tlb_remote_flush


# ---------------------------------------------------------------------------------------------
# The rules over a range of topologies


TOPOLOGIES = [
    # cpus, threads, lazy, initiator
    pytest.param(8, 6, (), 7, id="6-threads-initiator-outside"),
    pytest.param(8, 6, (), 6, id="initiator-beside-the-threads"),
    pytest.param(9, 8, (1, 4), 8, id="two-lazy"),
    pytest.param(5, 4, (0, 1, 2, 3), 4, id="all-lazy"),
    pytest.param(6, 1, (), 5, id="one-thread"),
    pytest.param(3, 2, (), 2, id="two-threads-three-cpus"),
]


@pytest.mark.parametrize(("cpus", "threads", "lazy", "initiator"), TOPOLOGIES)
@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_rounds_and_deliveries_follow_the_rules(cpus: int, threads: int, lazy: tuple[int, ...],
                                                initiator: int, mode: str) -> None:
    orders = [0] * 37
    moves, limit = 3, 8
    scenario = make_scenario(orders, cpus=cpus, threads=threads, lazy=lazy, initiator=initiator,
                             moves=moves, batch_pages=limit)
    engine, events = run(scenario, mode)
    c = engine.counters
    mask = mask_of(threads, initiator)
    targets = targets_of(threads, initiator, lazy)
    per_move = {
        "serial": len(orders),  # one round per folio
        "batched": -(-len(orders) // limit),  # one round per batch: ceil for base pages
    }[mode]
    rounds = moves * per_move if mask else 0  # no other CPU in mm_cpumask: nothing to shoot
    assert c.nr_tlb_remote_flush == rounds
    assert c.nr_tlb_remote_flush_received == rounds * len(targets)
    # Every round goes to exactly the non-lazy CPUs of the mask, each acknowledging once.
    sends = [e for e in events if e.kind is EventKind.FLUSH_SEND]
    assert len(sends) == rounds
    assert all(sorted(e.targets) == targets for e in sends)
    receivers = [e.cpu for e in events if e.kind is EventKind.IPI_RECV]
    assert sorted(receivers) == sorted(targets * rounds)
    # The /proc/interrupts row: every target got every round, nobody else got anything.
    row = c.tlb_shootdowns
    assert row.shape == (cpus,)
    assert int(row.sum()) == c.nr_tlb_remote_flush_received
    expected_row = np.zeros(cpus, dtype=np.int64)
    expected_row[targets] = rounds
    assert row.tolist() == expected_row.tolist()
    assert row[initiator] == 0
    for cpu in lazy:
        assert row[cpu] == 0
    assert c.pgmigrate_success == len(orders) * moves
    assert c.pgmigrate_fail == 0
    assert c.batches == (moves * -(-len(orders) // limit) if mode == "batched" else 0)


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_lazy_cpus_get_no_ipi_but_the_round_counts(mode: str) -> None:
    # Mask {0,1,2}, all lazy: should_defer_flush()/flush_tlb_mm_range() still see another CPU
    # in mm_cpumask and call native_flush_tlb_multi() (counted), which then skips every target.
    scenario = make_scenario([0] * 9, cpus=4, threads=3, lazy=(0, 1, 2), initiator=3,
                             batch_pages=4)
    engine, events = run(scenario, mode)
    c = engine.counters
    expected_rounds = 9 if mode == "serial" else 3
    assert c.nr_tlb_remote_flush == expected_rounds
    assert c.nr_tlb_remote_flush_received == 0
    assert not c.tlb_shootdowns.any()
    assert not any(e.kind is EventKind.IPI_RECV for e in events)


@pytest.mark.parametrize("mode", ["serial", "batched"])
@pytest.mark.parametrize(("threads", "initiator"), [(0, 3), (0, 0)])
def test_no_other_cpu_in_the_mask_means_no_rounds(mode: str, threads: int,
                                                  initiator: int) -> None:
    # threads=0: the mm runs nowhere, so no CPU is in mm_cpumask, wherever the task runs.
    orders = [0, 0, 1, 2, PMD_ORDER, 0]
    scenario = make_scenario(orders, cpus=4, threads=threads, initiator=initiator, moves=2,
                             batch_pages=3)
    engine, events = run(scenario, mode)
    c = engine.counters
    assert c.nr_tlb_remote_flush == 0
    assert c.nr_tlb_remote_flush_received == 0
    assert c.pmd_flush_rounds == 0
    assert c.batch_flush_rounds == 0
    assert not c.tlb_shootdowns.any()
    assert not any(e.kind in (EventKind.FLUSH_SEND, EventKind.IPI_RECV, EventKind.FLUSH_DONE)
                   for e in events)
    pages = sum(1 << order for order in orders)
    assert c.pgmigrate_success == pages * 2


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_a_thp_costs_one_immediate_round(mode: str) -> None:
    orders = [PMD_ORDER, 0, 0, PMD_ORDER, PMD_ORDER, 0]
    moves = 2
    scenario = make_scenario(orders, moves=moves, batch_pages=512)
    engine, events = run(scenario, mode)
    c = engine.counters
    thps = orders.count(PMD_ORDER)
    assert c.pmd_flush_rounds == thps * moves
    # Each THP's round is a single-folio round: pmdp_invalidate() clears and flushes the PMD,
    # then the migration entry goes in (its UNMAP event, not deferred: arg 0) right after the
    # round's FLUSH_DONE.
    for index, event in enumerate(events):
        if event.kind is EventKind.UNMAP and engine.folios.order[event.folio] == PMD_ORDER:
            assert event.arg == 0, "a PMD-mapped THP is never flushed in a batch"
            assert event.pages == 1  # one PMD
            done = events[index - 1]
            assert done.kind is EventKind.FLUSH_DONE and done.folio == event.folio
            send = max(e for e in events[:index] if e.kind is EventKind.FLUSH_SEND)
            assert send.folio == event.folio
            assert send.pages == 512
    thp_sends = [e for e in events if e.kind is EventKind.FLUSH_SEND and e.folio >= 0
                 and engine.folios.order[e.folio] == PMD_ORDER]
    assert len(thp_sends) == thps * moves
    assert c.thp_migration_success == thps * moves
    assert c.pgmigrate_success == sum(1 << o for o in orders) * moves


@pytest.mark.parametrize(
    ("orders", "limit"),
    [
        pytest.param([0] * 40, 512, id="base-one-batch"),
        pytest.param([0] * 7 + [PMD_ORDER] + [0] * 9, 4, id="thp-in-the-middle"),
        pytest.param([1, 2, 0, 2, PMD_ORDER, 1, 0, 0, 2], 5, id="pte-mapped-large-folios"),
        pytest.param([PMD_ORDER] * 3 + [0] * 5, 512, id="thps-first"),
    ],
)
@pytest.mark.parametrize(("threads", "lazy", "initiator"),
                         [(6, (), 7), (7, (2, 5), 7), (5, (4,), 6)])
def test_rounds_for_mixed_folio_lists(orders: list[int], limit: int, threads: int,
                                      lazy: tuple[int, ...], initiator: int) -> None:
    moves = 2
    targets = targets_of(threads, initiator, lazy)
    for mode, per_move in (("serial", serial_rounds_per_move(orders)),
                           ("batched", batched_rounds_per_move(orders, limit))):
        scenario = make_scenario(orders, threads=threads, lazy=lazy, initiator=initiator,
                                 moves=moves, batch_pages=limit)
        engine, _ = run(scenario, mode)
        c = engine.counters
        assert c.nr_tlb_remote_flush == per_move * moves, mode
        assert c.nr_tlb_remote_flush_received == per_move * moves * len(targets), mode
        assert c.pmd_flush_rounds == orders.count(PMD_ORDER) * moves, mode
        assert c.pgmigrate_success == sum(1 << o for o in orders) * moves, mode
        assert c.thp_migration_success == orders.count(PMD_ORDER) * moves, mode
        if mode == "batched":
            assert c.batches == len(cut_batches(orders, limit)) * moves
            assert c.batch_flush_rounds == (per_move - orders.count(PMD_ORDER)) * moves


@pytest.mark.parametrize(
    "orders",
    [
        pytest.param([0] * 30, id="base"),
        pytest.param([0] * 5 + [PMD_ORDER] + [0] * 6 + [PMD_ORDER], id="base-and-thps"),
    ],
)
@pytest.mark.parametrize(("threads", "lazy", "initiator"), [(6, (), 7), (7, (3,), 7)])
def test_batch_of_one_page_behaves_like_serial(orders: list[int], threads: int,
                                               lazy: tuple[int, ...], initiator: int) -> None:
    # The batched engine with a batch limit of one page behaves like serial: every
    # batch holds one folio, so one round per folio, to the same targets.
    results = {}
    for mode in ("serial", "batched"):
        scenario = make_scenario(orders, threads=threads, lazy=lazy, initiator=initiator,
                                 moves=3, batch_pages=1)
        engine, _ = run(scenario, mode)
        results[mode] = engine.counters
    serial, batched = results["serial"], results["batched"]
    assert batched.batches == len(orders) * 3
    assert batched.nr_tlb_remote_flush == serial.nr_tlb_remote_flush == len(orders) * 3
    assert batched.nr_tlb_remote_flush_received == serial.nr_tlb_remote_flush_received
    assert batched.tlb_shootdowns.tolist() == serial.tlb_shootdowns.tolist()
    assert batched.pgmigrate_success == serial.pgmigrate_success
    assert batched.pmd_flush_rounds == serial.pmd_flush_rounds


@pytest.mark.parametrize("name", ["tiny", "default", "thp", "large"])
@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_builtin_scenarios_migrate_every_page(name: str, mode: str) -> None:
    overrides = ["migration.moves=1", "memory.folios=[{order = 0, count = 700}]"] \
        if name == "large" else []
    scenario = load_scenario(name, overrides)
    engine = Engine(scenario, Mode(mode), checkpoints=False)
    engine.run_to_end()
    summary = engine.summary()
    m = scenario.migration
    pages = scenario.memory.total_pages
    assert summary.pgmigrate_success == pages * m.moves
    assert summary.pgmigrate_fail == 0
    orders = [g.order for g in scenario.memory.folios for _ in range(g.count)]
    per_move = (serial_rounds_per_move(orders) if mode == "serial"
                else batched_rounds_per_move(orders, m.batch_pages))
    w = scenario.workload
    mask = mask_of(w.threads, m.initiator_cpu)
    targets = targets_of(w.threads, m.initiator_cpu, w.lazy_cpus)
    rounds = per_move * m.moves if mask else 0
    assert summary.nr_tlb_remote_flush == rounds
    assert summary.nr_tlb_remote_flush_received == rounds * len(targets)
    assert sum(summary.tlb_shootdowns) == summary.nr_tlb_remote_flush_received


@pytest.mark.parametrize(
    ("orders", "limit", "expected"),
    [
        # A THP after deferred base pages: its PMD round finds the targets three generations
        # behind and flushes everything; the batch's round then finds them current.
        # Batch 2 (two base pages) is two behind: a full flush.
        pytest.param([0, 0, 0, PMD_ORDER, 0, 0], 4, [(512, -1), (-1, 0), (-1, -1)],
                     id="thp-after-base-pages"),
        # A THP first: its round is exactly the next generation, one INVLPG of the PMD; the
        # base pages after it leave the targets behind for the batch's full flush.
        pytest.param([PMD_ORDER, 0, 0], 512, [(512, 1), (-1, -1)], id="thp-first"),
        # Base pages only: one full flush per batch.
        pytest.param([0] * 6, 4, [(-1, -1), (-1, -1)], id="base-pages"),
    ],
)
def test_targets_flush_by_tlb_generation(orders: list[int], limit: int,
                                         expected: list[tuple[int, int]]) -> None:
    # (pages asked by the sender, pages each target traces) per round of the first move.
    for mode in ("batched", "serial"):
        _, events = run(make_scenario(orders, batch_pages=limit, lazy=(2,)), mode)
        rounds = []
        for index, event in enumerate(events):
            if event.kind is EventKind.MIGRATE_END:
                break
            if event.kind is EventKind.FLUSH_SEND:
                handled = {e.pages for e in events[index + 1:]
                           if e.kind is EventKind.IPI_RECV and e.seq < index + 1 + len(
                               event.targets)}
                assert len(handled) == 1, handled  # every target was at the same generation
                rounds.append((event.pages, handled.pop()))
                # Lazy CPU 2 is in the mask but never interrupted.
                assert 2 not in event.targets
        if mode == "batched":
            assert rounds == expected
        else:  # 6.2: every round is the next generation, one INVLPG (the THP: of its PMD)
            assert rounds == [(1 << order, 1) for order in orders]


@pytest.mark.parametrize("name", ["tiny", "default", "contended", "thp", "numa-balancing"])
@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_a_run_nobody_watches_folds_receipts_and_counts_the_same(name: str, mode: str) -> None:
    """run_to_end() with no callback does not make a round's IPI_RECV events one by one, nor
    the events of units it makes in bulk (tests/test_bulk.py); the summary (every counter, the
    event count, the clock, the workload) is the same as a run whose every event is looked at,
    and each event it does make is the one that run makes."""
    overrides = ["migration.moves=1"] if name == "numa-balancing" else []
    watched = Engine(load_scenario(name, overrides), Mode(mode), checkpoints=False)
    seen: list[Event] = []
    watched.run_to_end(seen.append)
    folded = Engine(load_scenario(name, overrides), Mode(mode), checkpoints=False)
    made: list[Event] = []
    apply = folded._apply

    def counting(event: Event) -> None:
        made.append(event)
        apply(event)

    folded._apply = counting  # type: ignore[method-assign]
    assert folded.run_to_end() == len(seen) == folded.events
    assert folded.summary() == watched.summary()
    assert folded.task.folded == 0 and not folded.task.fold_receipts
    # Only the migrating task's rounds fold (NUMA balancing's scans make their receipts).
    folds = name != "numa-balancing"
    assert any(e.kind is EventKind.IPI_RECV for e in made) is not folds
    made_seqs = {e.seq for e in made}
    assert [e for e in seen if e.seq in made_seqs] == made
    assert made[-1] == seen[-1] == folded.last_event
    if name in ("contended", "numa-balancing"):  # nothing made in bulk: no plain unit
        assert made == [e for e in seen if not folds or e.kind is not EventKind.IPI_RECV]
