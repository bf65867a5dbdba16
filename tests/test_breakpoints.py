"""Breakpoints: a run stops right after each event of the chosen kinds, and only there."""

from __future__ import annotations

import pytest

from core.breakpoints import Breakpoint, matches, stopper
from core.engine import Engine
from core.events import Errno, Event, EventKind
from core.scenario import Mode, load_scenario


def all_events(name: str, mode: Mode) -> list[Event]:
    engine = Engine(load_scenario(name), mode, checkpoints=False)
    return list(engine.iter_events())


def stops(name: str, mode: Mode, kinds: list[Breakpoint], folio: int | None = None) -> list[Event]:
    """Run to the end through run_until with a breakpoint; the events it stopped at."""
    engine = Engine(load_scenario(name), mode)
    stop = stopper(kinds, folio)
    assert stop is not None
    hits = []
    while not engine.done:
        applied = engine.run_until(10**12, stop)
        if applied and stop(applied[-1]):
            hits.append(applied[-1])
            assert engine.clock == applied[-1].time_ns
            assert all(not stop(e) for e in applied[:-1])
    return hits


@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_flush_breakpoints_stop_at_every_round(mode: Mode) -> None:
    hits = stops("tiny", mode, [Breakpoint.FLUSH])
    expected = [e for e in all_events("tiny", mode) if e.kind is EventKind.FLUSH_SEND]
    assert hits == expected and hits


def test_retry_breakpoints_match_the_retry_counter() -> None:
    hits = stops("contended", Mode.BATCHED, [Breakpoint.RETRY])
    engine = Engine(load_scenario("contended"), Mode.BATCHED, checkpoints=False)
    engine.run_to_end()
    assert len(hits) == engine.counters.retries > 0
    assert all(e.kind is EventKind.MOVE_FAIL or e.arg == Errno.EAGAIN for e in hits)


def test_failure_breakpoints_catch_ebusy() -> None:
    hits = stops("contended", Mode.BATCHED, [Breakpoint.FAILURE])
    assert any(e.kind is EventKind.UNMAP_FAIL and e.arg == Errno.EBUSY for e in hits)
    assert all(matches(Breakpoint.FAILURE, e) for e in hits)


def test_folio_breakpoint_stops_at_each_event_of_that_folio() -> None:
    hits = stops("tiny", Mode.SERIAL, [], folio=3)
    expected = [e for e in all_events("tiny", Mode.SERIAL) if e.folio == 3]
    assert hits == expected and len(hits) > 2


def test_step_phase_stops_at_a_breakpoint_inside_the_phase() -> None:
    engine = Engine(load_scenario("tiny"), Mode.BATCHED)
    for _ in range(3):  # MIGRATE_START, BATCH_START, the first unmap (folio 0)
        engine.step_phase()
    assert engine.last_event is not None and engine.last_event.folio == 0
    # Without a breakpoint the unmap phase runs on to the flush; folio 2's unmap stops it.
    applied = engine.step_phase(stopper([], folio=2))
    assert [e.folio for e in applied] == [1, 2]
    assert applied[-1].kind is EventKind.UNMAP


def test_no_breakpoints_means_no_stopper() -> None:
    assert stopper([]) is None
    assert stopper([], folio=None) is None
