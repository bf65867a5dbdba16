"""Flush mechanisms (core/flush.py): what each one sends, what it costs whom, and that every one
keeps the ordering rule (no copy while a CPU can still write the old page)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.engine import Engine
from core.events import IPIS, EventKind, RoundKind, explain, kernel_function
from core.scenario import Mode, load_scenario
from core.trace import TraceFormatter, write_trace

ARCHES = ["x86-ipi", "x86-invlpgb", "arm64-tlbi"]


def run(name: str, mode: Mode, *overrides: str) -> tuple[Engine, list]:  # type: ignore[type-arg]
    engine = Engine(load_scenario(name, list(overrides)), mode, checkpoints=False)
    events = list(engine.iter_events())
    return engine, events


def unmapped_ptes(events: list) -> int:  # type: ignore[type-arg]
    return sum(e.pages for e in events if e.kind is EventKind.UNMAP)


@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_invlpgb_broadcasts_for_three_cpus_and_sends_ipis_below(mode: Mode) -> None:
    """A process on 4 CPUs gets a global ASID: no IPI, one INVLPGB per PTE (per PMD for a THP).
    On 2 CPUs it keeps IPIs: exactly what x86-ipi does."""
    engine, events = run("default", mode, "topology.arch=x86-invlpgb", "workload.threads=4")
    summary = engine.summary()
    assert not [e for e in events if e.kind is EventKind.IPI_RECV]
    assert summary.nr_tlb_remote_flush == summary.nr_tlb_remote_flush_received == 0
    assert summary.tlb_shootdowns == (0,) * 8
    assert summary.tlbi_broadcasts == unmapped_ptes(events)
    two, _ = run("default", mode, "topology.arch=x86-invlpgb", "workload.threads=2")
    ipi, _ = run("default", mode, "topology.arch=x86-ipi", "workload.threads=2")
    assert replace(two.summary(), arch="") == replace(ipi.summary(), arch="")
    assert two.summary().nr_tlb_remote_flush_received > 0


def test_arm64_batched_waits_once_per_batch() -> None:
    """6.5's batched arm64: a TLBI per deferred PTE without waiting, one DSB per batch (plus the
    THP's PMD, invalidated at once); serially a TLBI and a DSB per PTE."""
    engine, events = run("default", Mode.BATCHED, "topology.arch=arm64-tlbi")
    counters = engine.counters
    assert counters.sync_waits == counters.batch_flush_rounds + counters.pmd_flush_rounds
    assert counters.batch_flush_rounds == counters.batches
    assert counters.tlbi_broadcasts == unmapped_ptes(events)
    sends = [e for e in events if e.kind is EventKind.FLUSH_SEND]
    assert all(e.targets == () for e in sends) and len(sends) == counters.sync_waits
    assert not [e for e in events if e.kind is EventKind.IPI_RECV]
    assert engine.summary().nr_tlb_remote_flush == 0
    serial, serial_events = run("default", Mode.SERIAL, "topology.arch=arm64-tlbi")
    assert serial.counters.sync_waits == serial.counters.tlbi_broadcasts \
        == unmapped_ptes(serial_events)
    # The DSB is what a flush costs here; x86's serial round is dearer than a TLBI + DSB.
    x86, _ = run("default", Mode.SERIAL)
    assert serial.summary().sim_time_ns < x86.summary().sim_time_ns


@pytest.mark.parametrize(("arch", "issue", "sync"), [("arm64-tlbi", "tlbi_ns", "dsb_ns"),
                                                     ("x86-invlpgb", "invlpgb_ns", "tlbsync_ns")])
@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_a_broadcast_flush_costs_its_invalidations_and_its_waits(
        arch: str, issue: str, sync: str, mode: Mode) -> None:
    """Flushing is the invalidations issued plus the waits; each wait also pays
    broadcast_remote_ns (the completion comes back from the other node)."""
    for remote in (0, 900, 5000):
        engine, _ = run("default", mode, f"topology.arch={arch}", "workload.threads=4",
                        f"costs.broadcast_remote_ns={remote}")
        costs, counters, summary = engine.scenario.costs, engine.counters, engine.summary()
        assert counters.sync_waits > 0 and counters.tlbi_broadcasts > 0
        assert summary.time_flush_ns == counters.tlbi_broadcasts * getattr(costs, issue) \
            + counters.sync_waits * (getattr(costs, sync) + remote)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
@pytest.mark.parametrize("name", ["tiny", "default", "contended", "thp"])
def test_every_mechanism_keeps_the_ordering_rule(arch: str, mode: Mode, name: str) -> None:
    """Each folio is copied only after a completed flush that covers its unmap: a deferred
    unmap (arg 1) by the batch's flush after it, an immediate one (arg 0) by the round just
    before its migration entry (clear and flush, then set_migration_pte). No write is lost."""
    engine, events = run(name, mode, f"topology.arch={arch}")
    summary = engine.summary()
    assert summary.ordering_violations == 0 and summary.lost_writes == 0
    waiting: set[int] = set()  # deferred unmaps not yet covered by a completed flush
    covered: set[int] = set()
    previous = None
    for event in events:
        if event.kind is EventKind.UNMAP:
            if event.arg == 1:
                waiting.add(event.folio)
                covered.discard(event.folio)
            else:
                assert previous is not None and previous.kind is EventKind.FLUSH_DONE \
                    and previous.folio == event.folio, (arch, mode, event)
                covered.add(event.folio)
        elif event.kind is EventKind.FLUSH_DONE:
            covered |= waiting
            waiting.clear()
        elif event.kind is EventKind.COPY:
            assert event.folio in covered, (arch, mode, event)
            covered.discard(event.folio)
        previous = event


@pytest.mark.parametrize("arch", ["x86-invlpgb", "arm64-tlbi"])
def test_stepping_a_broadcast_run_gives_the_headless_figures(arch: str) -> None:
    scenario = load_scenario("contended", [f"topology.arch={arch}"])
    headless = Engine(scenario, checkpoints=False)
    headless.run_to_end()
    stepped = Engine(scenario)
    steps = 0
    while not stepped.done:
        stepped.step()
        steps += 1
        if steps % 97 == 0:
            view = stepped.view()
            assert not view.interrupts
            stepped.back(5)
    assert stepped.summary() == headless.summary()


@pytest.mark.parametrize("arch", ["x86-invlpgb", "arm64-tlbi"])
def test_a_broadcast_has_no_tlb_flush_tracepoint(arch: str) -> None:
    # Three threads: enough for INVLPGB's global ASID.
    scenario = load_scenario("tiny", [f"topology.arch={arch}", "workload.threads=3"])
    engine = Engine(scenario, checkpoints=False)
    lines = list(write_trace(engine.iter_events(), TraceFormatter(scenario)))
    assert not [line for line in lines if "tlb_flush" in line or "call_function" in line]
    assert sum("set_migration_pte" in line for line in lines) == 16
    printk = list(write_trace(Engine(scenario, checkpoints=False).iter_events(),
                              TraceFormatter(scenario, printk=True)))
    wait = "dsb ish" if arch == "arm64-tlbi" else "tlbsync"
    assert sum(wait in line for line in printk) == engine.counters.sync_waits


def test_the_view_shows_a_broadcast_wait_in_flight() -> None:
    engine = Engine(load_scenario("tiny", ["topology.arch=arm64-tlbi"]), Mode.BATCHED)
    while True:
        events = engine.step()
        if events and events[-1].kind is EventKind.FLUSH_SEND:
            break
    view = engine.view()
    assert view.ipi_round is not None and view.ipi_round.targets == ()
    assert view.ipi_round.kind is RoundKind.BATCH and not view.ipi_round.done
    assert view.arch == "arm64-tlbi" and not view.interrupts


@pytest.mark.parametrize(("arch", "wait"), [("arm64-tlbi", "DSB ISH"), ("x86-invlpgb", "TLBSYNC")])
def test_a_broadcast_round_is_told_in_its_mechanism_words(arch: str, wait: str) -> None:
    """The view carries the mechanism; its rounds are explained as waits, never as IPIs, and
    INVLPGB on 2 CPUs (no global ASID) is told as the IPIs it sends."""
    engine, events = run("default", Mode.BATCHED, f"topology.arch={arch}", "workload.threads=4")
    mechanism = engine.view().mechanism
    assert not mechanism.interrupts and mechanism.wait == wait
    told = [e for e in events if e.kind in (EventKind.UNMAP, EventKind.FLUSH_SEND,
                                            EventKind.FLUSH_DONE)]
    assert {e.kind for e in told} == {EventKind.UNMAP, EventKind.FLUSH_SEND, EventKind.FLUSH_DONE}
    for event in told:
        text = explain(event, mechanism)
        assert "IPI(s)" not in text and "acknowledge" not in text, text
        assert wait in text or event.pages == 0, text
    batch = next(e for e in told if e.kind is EventKind.FLUSH_SEND
                 and e.round_kind is RoundKind.BATCH)
    assert kernel_function(batch, mechanism) == "arch_tlbbatch_flush"
    two, _ = run("default", Mode.BATCHED, "topology.arch=x86-invlpgb", "workload.threads=2")
    assert two.view().mechanism is IPIS


def test_the_stats_line_counts_a_broadcast_mechanisms_waits() -> None:
    """No IPI rounds on arm64: the stats line shows the DSB waits and the TLBIs where an x86 run
    shows rounds and IPIs per page, phase after phase, as the engine counts them; the panel
    draws no sparkline of IPIs that never come."""
    from tui.lane import Lane
    from tui.widgets.ipi_panel import IpiPanel
    from tui.widgets.stats_line import stats_content

    lane = Lane(load_scenario("default", ["topology.arch=arm64-tlbi", "workload.threads=4"]),
                Mode.BATCHED)
    checked = 0
    while not lane.engine.done:
        lane.record(lane.engine.step_phase(), 0)
        frame = lane.frame(clock_ns=None, playing=False, speed=1.0, rate_ns=1.0,
                           now_ns=lane.engine.clock, bucket_ns=1_000, selected=0, frame_no=0)
        stats = stats_content(frame, 400).plain
        counters = frame.view.counters
        assert f"DSB ISH waits {counters.sync_waits}" in stats, stats
        assert f"TLBI VALE1IS {counters.tlbi_broadcasts}" in stats, stats
        assert "IPIs 0" in stats and "rounds " not in stats
        panel = [line.plain for line, _ in IpiPanel().build(frame, 120)]
        assert not [line for line in panel if line.startswith("IPIs")], panel  # no sparkline
        checked += 1
    assert checked > 3 and lane.engine.counters.sync_waits > 0
