"""The ordering rule: no copy starts while a CPU may still hold a TLB entry for the folio. The
teaching scenario without flushes breaks it and loses writes; every correct mode never does."""

from __future__ import annotations

import pytest

from core.engine import Engine
from core.scenario import Mode, builtin_names, load_scenario

SMALL = {"large": ["memory.folios=[{order = 0, count = 1024}]"],
         "pmbench-2s": ["memory.folios=[{order = 0, count = 1024}]"]}


@pytest.mark.parametrize("name", [n for n in builtin_names() if n != "no-flush"])
@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_correct_modes_never_lose_a_write(name: str, mode: Mode) -> None:
    engine = Engine(load_scenario(name, SMALL.get(name, [])), mode, checkpoints=False)
    engine.run_to_end()
    summary = engine.summary()
    assert summary.ordering_violations == 0
    assert summary.lost_writes == 0


@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_without_the_flush_copies_race_stale_writes(mode: Mode) -> None:
    scenario = load_scenario("no-flush")
    engine = Engine(scenario, mode, checkpoints=False)
    engine.run_to_end()
    summary = engine.summary()
    # Every folio is copied while its flush is still pending, and nothing is ever flushed.
    assert summary.ordering_violations == summary.pgmigrate_success
    assert summary.nr_tlb_remote_flush == 0
    assert 0 < summary.lost_writes <= summary.stale_writes


def test_the_same_run_with_flushes_loses_nothing() -> None:
    scenario = load_scenario("no-flush", ["migration.skip_flush=false"])
    engine = Engine(scenario, checkpoints=False)
    engine.run_to_end()
    assert engine.summary().lost_writes == 0
    assert engine.summary().nr_tlb_remote_flush > 0
