"""Stepping the engine: by event, phase, batch and time; going back; seeking; toggling the mode.

The reference for every stepped run is the event stream of a headless run of the same scenario
(the engine is deterministic), so each test checks that a way of stepping lands on the right
event of that stream and leaves the engine in the right state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from helpers import build_scenario, headless_run

from core.engine import CHECKPOINT_EVERY, Engine, EngineView
from core.events import Event, EventKind, Phase, RoundKind
from core.scenario import Mode, Scenario
from core.stats import Counters, WorkloadStats

FULL = -1


def make_scenario(count: int = 12, *, batch_pages: int = 4, moves: int = 1, threads: int = 4,
                  mode: str = "batched", contention: float = 0.0, orders: list[int] | None = None,
                  seed: int = 1) -> Scenario:
    return build_scenario(name="stepping", count=count, orders=orders, threads=threads,
                          interval=150, mode=mode, batch_pages=batch_pages, moves=moves,
                          seed=seed, contention=contention)


def reference(scenario: Scenario, mode: str | None = None) -> list[Event]:
    return headless_run(scenario, mode or None)[1]


# ---------------------------------------------------------------------------------------------
# Comparing views


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and np.array_equal(a, b))
    if isinstance(a, WorkloadStats) and isinstance(b, WorkloadStats):
        # stall_ns is a distribution: the lazy workload appends each window's stalls thread by
        # thread, so its order depends on how time was cut into windows. Compare it sorted.
        return all(
            _same(np.sort(a.stall_ns), np.sort(b.stall_ns)) if f.name == "stall_ns"
            else _same(getattr(a, f.name), getattr(b, f.name))
            for f in dataclasses.fields(a)
        )
    if isinstance(a, Counters):
        return type(a) is type(b) and all(
            _same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    return bool(a == b)


def assert_same_view(actual: EngineView, expected: EngineView) -> None:
    different = [f.name for f in dataclasses.fields(EngineView)
                 if not _same(getattr(actual, f.name), getattr(expected, f.name))]
    assert not different, f"views differ in {different}"


# ---------------------------------------------------------------------------------------------
# step


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_step_applies_the_events_one_by_one(mode: str) -> None:
    scenario = make_scenario(moves=2, contention=0.2)
    expected = reference(scenario, mode)
    engine = Engine(scenario, Mode(mode))
    seen: list[Event] = []
    clock = 0
    while True:
        step = engine.step()
        if not step:
            break
        assert len(step) == 1
        (event,) = step
        seen.append(event)
        clock = max(clock, event.time_ns)
        assert engine.events == len(seen)
        assert engine.last_event == event
        assert engine.clock == clock
        assert engine.done is False or len(seen) == len(expected)
    assert seen == expected
    assert engine.done
    assert engine.step() == []
    assert engine.events == len(expected)


# ---------------------------------------------------------------------------------------------
# step_phase


def test_step_phase_walks_unmap_flush_move_per_batch() -> None:
    # 8 base pages, batches of 4, no contention: each batch is one unmap pass, one full flush,
    # one move pass. step_phase() lands on the first event of each phase in turn.
    scenario = make_scenario(8, batch_pages=4)
    expected = reference(scenario)
    engine = Engine(scenario)
    landings: list[tuple[EventKind, Phase]] = []
    joined: list[Event] = []
    while True:
        before = engine.last_event.phase_id if engine.last_event else None
        applied = engine.step_phase()
        if not applied:
            break
        joined.extend(applied)
        *inside, landing = applied
        assert all(e.phase_id == before for e in inside)
        assert landing.phase_id != before
        landings.append((landing.kind, landing.phase))
    assert joined == expected
    batch = [(EventKind.BATCH_START, Phase.IDLE), (EventKind.UNMAP, Phase.UNMAP),
             (EventKind.FLUSH_SEND, Phase.FLUSH), (EventKind.COPY, Phase.MOVE)]
    assert landings == [(EventKind.MIGRATE_START, Phase.IDLE), *batch, *batch,
                        (EventKind.MIGRATE_END, Phase.DONE)]


def test_step_phase_in_serial_mode_is_one_folio() -> None:
    scenario = make_scenario(6, mode="serial", moves=2, orders=[0, 1, 0, 2, 0, 0])
    expected = reference(scenario)
    engine = Engine(scenario)
    # Segments: each landing event and the events applied after it up to the next landing.
    segments: list[list[Event]] = []
    current: list[Event] = []
    while True:
        applied = engine.step_phase()
        if not applied:
            break
        current.extend(applied[:-1])
        segments.append(current)
        current = [applied[-1]]
    segments.append(current)
    assert engine.done
    assert [e for segment in segments for e in segment] == expected
    folio_segments = [s for s in segments if any(e.folio >= 0 for e in s)]
    for segment in folio_segments:
        assert len({e.folio for e in segment if e.folio >= 0}) == 1, segment
        # A folio's phase starts with its first PTE: cleared and flushed (the round is sent),
        # then its migration entry goes in.
        assert segment[0].kind in (EventKind.FLUSH_SEND, EventKind.UNMAP)
    # One segment per folio per move: 6 folios, 2 moves.
    assert len(folio_segments) == 6 * 2


# ---------------------------------------------------------------------------------------------
# step_batch


def test_step_batch_lands_on_each_unit() -> None:
    # 12 base pages, batches of 4, 2 moves: per move MIGRATE_START, 3 batches, MIGRATE_END.
    scenario = make_scenario(12, batch_pages=4, moves=2)
    expected = reference(scenario)
    engine = Engine(scenario)
    landings = []
    joined: list[Event] = []
    while True:
        applied = engine.step_batch()
        if not applied:
            break
        joined.extend(applied)
        landings.append((applied[-1].kind, applied[-1].move, applied[-1].batch))
    assert joined == expected
    per_move = [[(EventKind.MIGRATE_START, m, 0)]
                + [(EventKind.BATCH_START, m, b) for b in (1, 2, 3)]
                + [(EventKind.MIGRATE_END, m, 3)] for m in (0, 1)]
    assert landings == per_move[0] + per_move[1]


def test_step_batch_covers_a_whole_batch() -> None:
    scenario = make_scenario(12, batch_pages=4)
    engine = Engine(scenario)
    engine.step_batch()  # MIGRATE_START
    first = engine.step_batch()  # up to and including BATCH_START of batch 1
    assert first[-1].kind is EventKind.BATCH_START and first[-1].batch == 1
    whole = engine.step_batch()
    assert whole[-1].kind is EventKind.BATCH_START and whole[-1].batch == 2
    batch_one = whole[:-1]
    assert {e.batch for e in batch_one} == {1}
    assert sorted(e.folio for e in batch_one if e.kind is EventKind.REMAP) == [0, 1, 2, 3]
    assert sum(e.kind is EventKind.FLUSH_SEND for e in batch_one) == 1


def test_step_batch_after_going_back_to_a_checkpoint_matches_going_forward() -> None:
    # A restored checkpoint sits on a unit boundary; stepping by batch from there must land where
    # it lands from the same point reached by stepping forward.
    scenario = make_scenario(150, mode="serial", moves=2, threads=6)
    forward = Engine(scenario)
    while forward.step():
        pass
    boundaries = [c.events for c in forward._checkpoints if c.events > 0]
    assert len(boundaries) >= 3
    for position in boundaries[:3]:
        fresh = Engine(scenario)
        fresh.seek(position)
        back = Engine(scenario)
        back.seek(position + 37)
        back.back(37)
        assert back.events == fresh.events == position
        assert back.step_batch() == fresh.step_batch()
        assert back.step_phase() == fresh.step_phase()


# ---------------------------------------------------------------------------------------------
# run_until


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_run_until_reaches_the_time_and_never_passes_an_unapplied_event(mode: str) -> None:
    scenario = make_scenario(12, batch_pages=4, moves=2)
    expected = reference(scenario, mode)
    end = expected[-1].time_ns
    engine = Engine(scenario, Mode(mode))
    for target in range(0, end + 5_000, 1_777):
        before = engine.events
        applied = engine.run_until(target)
        assert applied == expected[before : engine.events]
        if engine.events < len(expected):
            assert engine.clock >= target
            # The clock is the last applied event's time, or the target itself when the task
            # is known to be busy past it (a copy, a wait); never past the next event.
            if engine.events and engine.clock != target:
                assert engine.clock == expected[engine.events - 1].time_ns
            assert expected[engine.events].time_ns >= engine.clock
        else:
            assert engine.done
            # A finished run's clock is its end, however far past it a caller asked to go: the
            # app's end-of-run time and pages/s must not depend on the playback speed.
            assert engine.clock == end
        if applied:
            # Everything before the target is applied; at most one event lands at or after it.
            assert all(e.time_ns < target for e in applied[:-1])
        assert all(e.time_ns >= target for e in expected[engine.events :])
    assert engine.done


def test_run_until_a_past_time_does_nothing() -> None:
    engine = Engine(make_scenario())
    engine.run_until(20_000)
    events, clock = engine.events, engine.clock
    assert engine.run_until(clock - 1) == []
    assert engine.run_until(clock) == []
    assert (engine.events, engine.clock) == (events, clock)


# ---------------------------------------------------------------------------------------------
# back and seek


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_back_returns_exactly_the_earlier_view(mode: str) -> None:
    # Big enough for several checkpoints (one per CHECKPOINT_EVERY events, at unit boundaries).
    count = 150 if mode == "serial" else 400  # a batched run has ~4x fewer events per folio
    scenario = make_scenario(count, batch_pages=16, moves=2, threads=6, contention=0.1)
    engine = Engine(scenario, Mode(mode))
    views: list[EngineView] = [engine.view()]
    while engine.step():
        views.append(engine.view())
    total = engine.events
    checkpoints = [c.events for c in engine._checkpoints]
    assert total > 3 * CHECKPOINT_EVERY
    assert len(checkpoints) >= 3
    # Positions on, just before and just after every checkpoint, and a few odd ones.
    positions = sorted({p for c in checkpoints for p in (c - 1, c, c + 1) if 0 <= p <= total}
                       | {0, 1, total // 3, total - 1})
    current = total
    for position in reversed(positions):
        engine.back(current - position)
        current = position
        assert engine.events == position
        assert_same_view(engine.view(), views[position])
    # And forward again from the beginning, then a few single steps back.
    engine.seek(total)
    assert_same_view(engine.view(), views[total])
    for position in range(total - 1, total - 25, -1):
        engine.back(1)
        assert_same_view(engine.view(), views[position])


def test_back_without_views_in_between() -> None:
    # The workload is lazy: going back must not depend on whether views were drawn on the way.
    scenario = make_scenario(150, batch_pages=16, moves=2, threads=6, mode="serial")
    reference_engine = Engine(scenario)
    reference_engine.seek(1500)
    expected = reference_engine.view()
    engine = Engine(scenario)
    engine.seek(2300)
    engine.back(800)
    assert_same_view(engine.view(), expected)


def test_back_past_the_start_stops_at_zero() -> None:
    engine = Engine(make_scenario())
    fresh = engine.view()
    engine.seek(10)
    engine.back(1000)
    assert engine.events == 0
    assert_same_view(engine.view(), fresh)


def test_seek_forward_and_back() -> None:
    scenario = make_scenario(40, batch_pages=8, moves=2)
    expected = reference(scenario)
    engine = Engine(scenario)
    for position in (17, 5, 60, 60, 0, len(expected), 33):
        engine.seek(position)
        assert engine.events == position
        assert engine.last_event == (expected[position - 1] if position else None)
        assert engine.clock == (max(e.time_ns for e in expected[:position]) if position else 0)
    engine.seek(len(expected) + 100)  # past the end: stops at the end
    assert engine.events == len(expected)
    assert engine.done


# ---------------------------------------------------------------------------------------------
# toggle_mode


def step_until(engine: Engine, predicate: Any) -> list[Event]:
    applied: list[Event] = []
    while True:
        step = engine.step()
        assert step, "ran out of events"
        applied.extend(step)
        if predicate(step[0]):
            return applied


def test_toggle_mid_batch_completes_the_batch_batched_then_goes_serial() -> None:
    # 12 base pages, batches of 4. Toggle while batch 1 is unmapping its second folio.
    scenario = make_scenario(12, batch_pages=4)
    engine = Engine(scenario, Mode.BATCHED)
    step_until(engine, lambda e: e.kind is EventKind.UNMAP and e.folio == 1)
    assert engine.toggle_mode() is Mode.SERIAL
    assert engine.mode is Mode.BATCHED
    assert engine.pending_mode is Mode.SERIAL
    assert engine.view().pending_mode is Mode.SERIAL
    # The in-flight batch completes in batched mode.
    rest_of_batch: list[Event] = []
    while engine.mode is Mode.BATCHED:
        (event,) = engine.step()
        rest_of_batch.append(event)
    first_serial = rest_of_batch.pop()  # the event that started the next unit, already serial
    assert engine.pending_mode is None
    assert {e.batch for e in rest_of_batch} == {1}
    assert [e.folio for e in rest_of_batch if e.kind is EventKind.UNMAP] == [2, 3]
    full = [e for e in rest_of_batch if e.kind is EventKind.FLUSH_SEND]
    assert len(full) == 1 and full[0].folio == FULL and full[0].pages == FULL
    assert sorted(e.folio for e in rest_of_batch if e.kind is EventKind.REMAP) == [0, 1, 2, 3]
    # Then 6.2 behaviour: folio 4 onwards one by one, one PTE round each, no batches.
    # The first serial folio starts with its PTE cleared and flushed (the round goes out first).
    assert first_serial.kind is EventKind.FLUSH_SEND and first_serial.folio == 4
    assert first_serial.round_kind is RoundKind.PTE and first_serial.pages == 1
    tail = [first_serial]
    while step := engine.step():
        tail.extend(step)
    assert not any(e.kind is EventKind.BATCH_START for e in tail)
    sends = [e for e in tail if e.kind is EventKind.FLUSH_SEND]
    assert [e.folio for e in sends] == list(range(4, 12))
    c = engine.counters
    # 1 batched round for folios 0-3, then 8 serial rounds.
    assert c.nr_tlb_remote_flush == 1 + 8
    assert c.batches == 1
    assert c.pgmigrate_success == 12


def test_toggle_mid_folio_completes_the_folio_serially_then_batches() -> None:
    # Serial, 12 base pages; toggle during folio 2's shootdown. Folios 0-2 go serially (3
    # rounds); the remaining 9 are cut into batches of 4, 4, 1 (3 rounds): 6 rounds in all.
    scenario = make_scenario(12, batch_pages=4)
    engine = Engine(scenario, Mode.SERIAL)
    step_until(engine, lambda e: e.kind is EventKind.IPI_RECV and e.folio == 2)
    assert engine.toggle_mode() is Mode.BATCHED
    assert engine.mode is Mode.SERIAL and engine.pending_mode is Mode.BATCHED
    finishing = step_until(engine, lambda e: e.kind is EventKind.REMAP and e.folio == 2)
    assert not any(e.kind is EventKind.BATCH_START for e in finishing)
    assert engine.mode is Mode.SERIAL
    (event,) = engine.step()
    assert engine.view().mode is Mode.BATCHED and engine.pending_mode is None
    assert event.kind is EventKind.BATCH_START
    assert (event.pages, event.arg) == (4, 4)
    while engine.step():
        pass
    c = engine.counters
    assert c.batches == 3
    assert c.nr_tlb_remote_flush == 3 + 3
    assert c.batch_flush_rounds == 3
    assert c.pgmigrate_success == 12


def test_toggle_twice_before_the_boundary_changes_nothing() -> None:
    scenario = make_scenario(12, batch_pages=4, moves=2)
    expected = reference(scenario, Mode.BATCHED)
    engine = Engine(scenario, Mode.BATCHED)
    engine.seek(9)
    assert engine.toggle_mode() is Mode.SERIAL
    assert engine.toggle_mode() is Mode.BATCHED
    assert engine.pending_mode is None
    while engine.step():
        pass
    assert engine.events == len(expected)
    assert engine.last_event == expected[-1]


def test_toggle_before_the_first_event_runs_the_other_mode() -> None:
    scenario = make_scenario(12, batch_pages=4, moves=2)
    engine = Engine(scenario, Mode.BATCHED)
    engine.toggle_mode()
    events: list[Event] = []
    while step := engine.step():
        events.extend(step)
    assert events == reference(scenario, "serial")


def test_going_back_before_a_toggle_forgets_it() -> None:
    scenario = make_scenario(12, batch_pages=4)
    batched = reference(scenario, Mode.BATCHED)
    engine = Engine(scenario, Mode.BATCHED)
    engine.seek(8)
    engine.toggle_mode()
    engine.seek(40)
    assert engine.mode is Mode.SERIAL
    engine.seek(8)  # back to the moment of the toggle: it was made after event 8, and is kept
    assert engine.pending_mode is Mode.SERIAL
    engine.back(1)  # before it: forgotten
    assert engine.view().mode is Mode.BATCHED and engine.view().pending_mode is None
    while engine.step():
        pass
    assert engine.last_event == batched[-1]
    assert engine.events == len(batched)


def test_a_checkpoint_copy_of_the_task_shares_no_mutable_state() -> None:
    """TaskState.copy() copies containers one level deep instead of deepcopy(): every mutable
    field must be a new object, and its contents equal, or a restored checkpoint would see
    later changes."""
    import dataclasses

    engine = Engine(make_scenario(12, batch_pages=4, moves=2))
    engine.run_until(engine.clock + 20_000)
    state = engine.task.s
    copied = state.copy()
    assert copied == state
    for field in dataclasses.fields(state):
        value = getattr(state, field.name)
        if isinstance(value, (list, dict, set)) or dataclasses.is_dataclass(value):
            assert getattr(copied, field.name) is not value, field.name
    state.from_list.append(-1)
    state.unit.moved += 1
    assert copied.from_list[-1:] != [-1] and copied.unit.moved != state.unit.moved
