"""A headless run makes units on the plain path at once, as arrays (MigrationTask.skip_ahead):
it must leave the engine exactly as a run that makes every event one by one — the folio table,
the timeline the workload reads, the task's state, every counter, the event count, the clock
and the last event — over random scenarios, named ones, and runs cut at a time (bench)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_properties import SETTINGS, scenarios

import core.timeline
from core.bench import run_for
from core.engine import Engine
from core.events import Event
from core.scenario import Mode, Scenario, load_scenario
from core.timeline import Timeline

LOGS = ("iv_folio", "iv_start", "iv_end", "iv_copy", "iv_moved", "fl_cpu", "fl_folio", "fl_time")
TABLE = ("order", "node", "state", "alive", "unmapped", "flush_pending", "first_page")


def one_by_one(scenario: Scenario, mode: Mode | None = None, until: int | None = None) -> Engine:
    """Every event made and applied one by one (iter_events never makes units at once)."""
    engine = Engine(scenario, mode, checkpoints=False)
    for event in engine.iter_events():
        if until is not None and event.time_ns > until:
            break
    return engine


def in_bulk(scenario: Scenario, mode: Mode | None = None, until: int | None = None
            ) -> tuple[Engine, list[int]]:
    """A headless run; and the events each bulk step made."""
    engine = Engine(scenario, mode, checkpoints=False)
    made: list[int] = []
    skip_ahead = engine.task.skip_ahead  # type: ignore[union-attr]

    def spy(until_ns: int) -> tuple[int, Event] | None:
        result = skip_ahead(until_ns)
        if result is not None:
            made.append(result[0])
        return result

    engine.task.skip_ahead = spy  # type: ignore[union-attr, method-assign]
    if until is None:
        engine.run_to_end()
    else:
        engine.run_headless(until)
    return engine, made


def state(engine: Engine, forgotten: int) -> dict[str, Any]:
    """Everything the two runs must agree on, but the workload (see assert_same); the flush
    records from ``forgotten`` on (a headless run forgets those its workload has read)."""
    table = engine.folios
    timeline: Timeline = engine.timeline
    counters = {f.name: getattr(engine.counters, f.name) for f in fields(engine.counters)}
    return {
        "events": engine.events, "clock": engine.clock, "last_event": engine.last_event,
        "task": engine.task.s, "done": engine.done,
        "counters": {k: v.tolist() if isinstance(v, np.ndarray) else v
                     for k, v in counters.items()},
        **{f"table.{name}": getattr(table, name)[: table.count].tolist() for name in TABLE},
        "table.orders": table.orders, "table.count": table.count,
        **{f"timeline.{name}": getattr(timeline, name).view(
            forgotten if name.startswith("fl_") else 0).tolist() for name in LOGS},
        "timeline.open": timeline.open_interval.tolist(),
    }


def assert_same(bulk: Engine, single: Engine, *, workload: bool = True) -> None:
    forgotten = bulk.timeline.fl_time.base
    expected, got = state(single, forgotten), state(bulk, forgotten)
    for key in expected:
        assert got[key] == expected[key], key
    if workload:
        assert bulk.summary() == single.summary()
        assert np.array_equal(bulk.workload.threads, single.workload.threads)
        assert np.array_equal(bulk.workload.tlb, single.workload.tlb)


@settings(SETTINGS, max_examples=60)
@given(scenarios(failures=False))
def test_bulk_steps_leave_the_engine_as_one_by_one(scenario: Scenario) -> None:
    bulk, _ = in_bulk(scenario)
    assert_same(bulk, one_by_one(scenario))


@settings(SETTINGS, max_examples=30)
@given(scenarios(failures=False), st.integers(1, 400_000))
def test_a_run_cut_at_a_time_stops_where_one_by_one_does(scenario: Scenario, until: int) -> None:
    """bench's run_for: every event up to the cut and the first after it."""
    bulk, _ = in_bulk(scenario, until=until)
    single = one_by_one(scenario, until=until)
    # (The workload differs on purpose: one by one it may have been simulated past the cut.)
    assert_same(bulk, single, workload=False)


@pytest.mark.parametrize(("name", "mode", "overrides"), [
    ("default", Mode.SERIAL, []),
    ("default", Mode.BATCHED, ["migration.batch_pages=32"]),  # the THP's batch: one by one
    ("default", Mode.BATCHED, ["migration.batch_pages=1"]),
    ("default", Mode.BATCHED, ["migration.batch_pages=5", "migration.moves=3"]),
    ("thp", Mode.SERIAL, []),
    ("thp", Mode.BATCHED, []),
    ("pmbench-2s", Mode.SERIAL, ["memory.folios=[{order=0, count=3000}]"]),
    ("pmbench-2s", Mode.BATCHED, ["memory.folios=[{order=0, count=3000}]"]),
])
def test_plain_units_are_made_in_bulk_and_agree(name: str, mode: Mode,
                                                overrides: list[str]) -> None:
    scenario = load_scenario(name, overrides)
    bulk, made = in_bulk(scenario, mode)
    assert made, "no unit was made in bulk"
    if name == "pmbench-2s":  # every folio a base page: nearly every event made in bulk
        assert sum(made) > 0.9 * bulk.events
    assert_same(bulk, one_by_one(scenario, mode))


@pytest.mark.parametrize("name", ["contended", "copy-offload", "arm64-128", "no-flush"])
def test_what_is_not_plain_is_made_one_by_one(name: str) -> None:
    """Coins that may fire, a batched copy, broadcast flushes, skipped flushes: no bulk."""
    scenario = load_scenario(name)
    for mode in Mode:
        bulk, made = in_bulk(scenario, mode)
        assert not made
        assert_same(bulk, one_by_one(scenario, mode))


@pytest.mark.parametrize("mode", list(Mode))
def test_a_headless_run_forgets_the_flush_records_its_workload_has_read(
        monkeypatch: pytest.MonkeyPatch, mode: Mode) -> None:
    """Memory does not grow with every IPI of the run: the records the workload has read are
    forgotten (here every 64), and everything else is as if they were kept."""
    monkeypatch.setattr(core.timeline, "FORGET_FLUSHES", 64)
    scenario = load_scenario("pmbench-2s", ["memory.folios=[{order=0, count=3000}]",
                                            "migration.batch_pages=4"])  # 1,500 rounds
    bulk, _ = in_bulk(scenario, mode)
    single = one_by_one(scenario, mode)
    kept, every = bulk.timeline, single.timeline
    assert kept.fl_time.base > 0 and kept.fl_time.data.size < every.fl_time.size // 2
    for name in ("fl_cpu", "fl_folio", "fl_time"):
        assert np.array_equal(getattr(kept, name).view(),
                              getattr(every, name).view(getattr(kept, name).base))
    for until in (kept.forgotten_until, kept.forgotten_until + 5_000, bulk.clock):
        assert kept.deliveries(until) == every.deliveries(until)
    with pytest.raises(ValueError, match="forgotten"):
        kept.deliveries(kept.forgotten_until - 1)
    assert bulk.summary() == single.summary()


def test_bench_counts_the_same_when_records_are_forgotten(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    scenario = load_scenario("pmbench-2s", ["memory.folios=[{order=0, count=2000}]"])
    kept = [run_for(scenario, mode, 30_000_000).as_json() for mode in Mode]
    monkeypatch.setattr(core.timeline, "FORGET_FLUSHES", 64)
    assert [run_for(scenario, mode, 30_000_000).as_json() for mode in Mode] == kept
