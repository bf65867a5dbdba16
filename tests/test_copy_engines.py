"""Copy engines (core/copy.py): the copy-offload series' batch copy, and the shapes it published."""

from __future__ import annotations

import pytest

from core.copy import DATA, speed_factors
from core.engine import Engine
from core.events import Event, EventKind
from core.scenario import Mode, ScenarioError, load_scenario
from core.summary import RunSummary

THP = "memory.folios=[{order=9,count=32}]"
BASE = "memory.folios=[{order=0,count=2048}]"


def run(mode: Mode, *overrides: str) -> tuple[RunSummary, list[Event]]:
    engine = Engine(load_scenario("default", ["migration.moves=1", *overrides]), mode,
                    checkpoints=False)
    events = list(engine.iter_events())
    return engine.summary(), events


def test_dma_shortens_2mib_batches_and_hardly_4kib() -> None:
    """The paper's shape: 16 DMA channels ~6x at 2 MiB, little at 4 KiB (Amdahl: the copy is
    ~35% of a 4 KiB migration)."""
    cpu_thp = run(Mode.BATCHED, THP)[0].sim_time_ns
    dma_thp = run(Mode.BATCHED, THP, "migration.copy=dma:16")[0].sim_time_ns
    cpu_base = run(Mode.BATCHED, BASE)[0].sim_time_ns
    dma_base = run(Mode.BATCHED, BASE, "migration.copy=dma:16")[0].sim_time_ns
    assert cpu_thp / dma_thp > 3.5
    assert 1.0 < cpu_base / dma_base < 1.5
    mt_thp = run(Mode.BATCHED, THP, "migration.copy=mtcopy:16")[0].sim_time_ns
    assert dma_thp < mt_thp < cpu_thp  # DMA beats 16 threads at 2 MiB, as published


def test_serial_mode_keeps_the_cpu_copy() -> None:
    cpu = run(Mode.SERIAL, THP)[0]
    dma = run(Mode.SERIAL, THP, "migration.copy=dma:16")[0]
    assert cpu == dma


def test_a_batch_is_copied_at_once_after_its_metadata() -> None:
    """Metadata of every folio first (no event), one batched copy (every COPY at one instant),
    then the remaps; every copy still after the batch's flush."""
    summary, events = run(Mode.BATCHED, "memory.folios=[{order=0,count=64}]",
                          "migration.copy=dma:4", "migration.batch_pages=16")
    batches: dict[int, list] = {}  # type: ignore[type-arg]
    for event in events:
        if event.kind in (EventKind.COPY, EventKind.REMAP, EventKind.FLUSH_DONE):
            batches.setdefault(event.batch, []).append(event)
    assert len(batches) == 4
    for steps in batches.values():
        kinds = [e.kind for e in steps]
        assert kinds == [EventKind.FLUSH_DONE] + [EventKind.COPY] * 16 + [EventKind.REMAP] * 16
        copies = [e for e in steps if e.kind is EventKind.COPY]
        assert len({e.time_ns for e in copies}) == 1
    assert summary.ordering_violations == 0 and summary.lost_writes == 0
    assert summary.pgmigrate_success == 64


def test_the_factors_come_from_the_published_table() -> None:
    """At 2 MiB with 16 channels: 63.69 GB/s end to end against 10.67, with the copy being what
    380 ns per page makes of the baseline."""
    base_ns = 2 * 1024 * 1024 / 10.67
    copy_ns = 380 * 512
    dma_ns = 2 * 1024 * 1024 / 63.69
    expected = (dma_ns - (base_ns - copy_ns)) / copy_ns
    assert speed_factors("dma:16")[9] == pytest.approx(expected)
    assert "20250923174752.35701-1-shivankg@amd.com" in DATA.read_text()
    # 8 KiB is not in the table: between 4 and 16 KiB.
    low, mid, high = speed_factors("mtcopy:4")[:3]
    assert min(low, high) <= mid <= max(low, high)


@pytest.mark.parametrize("value", ["dma:8", "gpu:1", "mtcopy", "cpu:2"])
def test_unknown_engines_are_refused(value: str) -> None:
    with pytest.raises(ScenarioError, match="migration.copy"):
        load_scenario("tiny", [f"migration.copy={value}"])
