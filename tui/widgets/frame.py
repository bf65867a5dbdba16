"""What the app pushes into widgets once per frame, and the event history it derives it from.

The engine's :class:`~core.engine.EngineView` says where everything *is*; a few things on screen
also need the past: IPI deliveries over time (the sparkline), how far the current batch has got
(the phase strip) and one folio's lifecycle (the inspect screen). :class:`EventHistory` keeps
those events as numpy columns. It is keyed by event sequence number, so after the engine steps
back the app truncates it and every derived figure is exactly what it was before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.engine import EngineView
from core.events import Event, EventKind, Phase
from core.folios import FolioState
from core.scenario import Mode, Scenario
from core.tlb import CpuRole

_COLUMNS: dict[str, type[np.generic]] = {
    "seq": np.int64,
    "time": np.int64,
    "kind": np.int8,
    "cpu": np.int16,
    "folio": np.int32,
    "pages": np.int32,
    "arg": np.int32,
    "pass_": np.int16,
    "batch": np.int32,
    "sync": np.bool_,
    "move": np.int16,
    "phase_id": np.int32,
}


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One remembered event (IPI receipts are kept apart, as times only)."""

    seq: int
    time_ns: int
    kind: EventKind
    cpu: int
    folio: int
    pages: int
    arg: int
    pass_: int
    batch: int
    sync: bool
    move: int


@dataclass(frozen=True, slots=True)
class PhaseProgress:
    """How far the current unit (a batch; in serial mode, one folio) has got."""

    unit: str  # "batch", "folio" or "" when no unit is in flight
    index: int  # batch k (serial: folio k) ...
    total: int  # ... of n
    folios: int  # folios in the unit
    pages: int
    unmapped: int  # UNMAP events in the current pass
    unmap_failed: int
    flush_acked: int
    flush_targets: int
    flush_done: bool
    flush_full: bool  # a full flush (batched) rather than one INVLPG per page
    moved: int  # folios remapped on the destination
    phase: Phase
    pass_: int
    sync: bool
    fallback_folio: int = -1  # batched: the folio the one-by-one sync fallback works on


NO_PROGRESS = PhaseProgress("", 0, 0, 0, 0, 0, 0, 0, 0, False, False, 0, Phase.IDLE, 0, False)


class EventHistory:
    """The events applied so far, as growable numpy columns, truncatable by sequence number."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything (after a reset)."""
        self._n = 0
        self._cols: dict[str, npt.NDArray[Any]] = {
            name: np.zeros(1024, dtype=dtype) for name, dtype in _COLUMNS.items()
        }
        self._ipi_n = 0
        self._ipi_seq = np.zeros(1024, dtype=np.int64)
        self._ipi_time = np.zeros(1024, dtype=np.int64)

    def __len__(self) -> int:
        return self._n

    def _col(self, name: str) -> npt.NDArray[Any]:
        return self._cols[name][: self._n]

    def extend(self, events: Iterable[Event]) -> None:
        """Remember newly applied events (in order)."""
        main = []
        ipis = []
        for event in events:
            if event.kind is EventKind.IPI_RECV:
                ipis.append(event)
            else:
                main.append(event)
        if main:
            self._grow(len(main))
            n, m = self._n, len(main)
            cols = self._cols
            cols["seq"][n : n + m] = [e.seq for e in main]
            cols["time"][n : n + m] = [e.time_ns for e in main]
            cols["kind"][n : n + m] = [int(e.kind) for e in main]
            cols["cpu"][n : n + m] = [e.cpu for e in main]
            cols["folio"][n : n + m] = [e.folio for e in main]
            cols["pages"][n : n + m] = [e.pages for e in main]
            cols["arg"][n : n + m] = [e.arg for e in main]
            cols["pass_"][n : n + m] = [e.pass_ for e in main]
            cols["batch"][n : n + m] = [e.batch for e in main]
            cols["sync"][n : n + m] = [e.sync for e in main]
            cols["move"][n : n + m] = [e.move for e in main]
            cols["phase_id"][n : n + m] = [e.phase_id for e in main]
            self._n += m
        if ipis:
            need = self._ipi_n + len(ipis)
            if need > self._ipi_seq.size:
                size = max(need, self._ipi_seq.size * 2)
                self._ipi_seq = np.resize(self._ipi_seq, size)
                self._ipi_time = np.resize(self._ipi_time, size)
            k = self._ipi_n
            self._ipi_seq[k:need] = [e.seq for e in ipis]
            self._ipi_time[k:need] = [e.time_ns for e in ipis]
            self._ipi_n = need

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        size = self._cols["seq"].size
        if need <= size:
            return
        size = max(need, size * 2)
        self._cols = {name: np.resize(col, size) for name, col in self._cols.items()}

    def truncate(self, events: int) -> None:
        """Keep only events with ``seq < events`` (after the engine stepped back)."""
        self._n = int(np.searchsorted(self._col("seq"), events, side="left"))
        self._ipi_n = int(np.searchsorted(self._ipi_seq[: self._ipi_n], events, side="left"))

    # ------------------------------------------------------------------------------------------

    def ipi_buckets(self, now_ns: int, bucket_ns: int, count: int) -> tuple[int, ...]:
        """IPI deliveries per ``bucket_ns`` of simulated time, the last ``count`` buckets to now."""
        if count <= 0 or bucket_ns <= 0:
            return ()
        last = now_ns // bucket_ns
        first = last - count + 1
        times = self._ipi_time[: self._ipi_n]
        start = int(np.searchsorted(times, first * bucket_ns, side="left"))
        recent = times[start:] // bucket_ns - first
        recent = recent[(recent >= 0) & (recent < count)]
        return tuple(int(v) for v in np.bincount(recent, minlength=count)[:count])

    def ipi_total(self) -> int:
        return self._ipi_n

    def folio_rows(self, folio: int, limit: int = 200) -> list[HistoryRow]:
        """The remembered events of one folio, oldest first (at most the last ``limit``)."""
        where = np.flatnonzero(self._col("folio") == folio)[-limit:]
        return [self._row(int(i)) for i in where]

    def flush_rows_since(self, time_ns: int, limit: int = 20) -> list[HistoryRow]:
        """Flush rounds (FLUSH_SEND) from ``time_ns`` on, for the inspect screen."""
        kinds = self._col("kind")
        times = self._col("time")
        where = np.flatnonzero((kinds == EventKind.FLUSH_SEND) & (times >= time_ns))[:limit]
        return [self._row(int(i)) for i in where]

    def _row(self, i: int) -> HistoryRow:
        c = self._cols
        return HistoryRow(
            int(c["seq"][i]), int(c["time"][i]), EventKind(int(c["kind"][i])), int(c["cpu"][i]),
            int(c["folio"][i]), int(c["pages"][i]), int(c["arg"][i]), int(c["pass_"][i]),
            int(c["batch"][i]), bool(c["sync"][i]), int(c["move"][i]),
        )

    def progress(self, view: EngineView) -> PhaseProgress:
        """Progress of the unit in flight, from the events since it started."""
        n = self._n
        if n == 0 or view.done:
            return NO_PROGRESS
        kinds = self._col("kind")
        starts = np.flatnonzero(kinds == EventKind.MIGRATE_START)
        call_start = int(starts[-1]) if starts.size else 0
        if view.mode is Mode.BATCHED:
            batch_starts = np.flatnonzero(kinds[call_start:] == EventKind.BATCH_START)
            if not batch_starts.size:
                return NO_PROGRESS
            first = call_start + int(batch_starts[-1])
            unit, folios, pages = "batch", int(self._cols["arg"][first]), int(
                self._cols["pages"][first])
        else:
            # Serial: a unit is one folio, and each folio is one phase (one phase_id).
            phase_ids = self._col("phase_id")
            first = int(np.searchsorted(phase_ids, phase_ids[-1], side="left"))
            folio_col = self._col("folio")[first:]
            if first < call_start or not (folio_col >= 0).any():
                return NO_PROGRESS
            unit, folios = "folio", 1
            folio = int(folio_col[folio_col >= 0][0])
            pages = 1 << int(view.folio_order[folio]) if folio < view.folio_order.size else 1
        seg_kinds = kinds[first:]
        seg_sync = self._col("sync")[first:]
        # A batch's own steps are the asynchronous ones; a sync pass is the one-by-one
        # fallback (migrate_pages_sync), shown apart.
        counted = np.ones(seg_kinds.size, dtype=bool) if unit == "folio" else ~seg_sync
        unmapped = int(np.count_nonzero((seg_kinds == EventKind.UNMAP) & counted))
        busy = (seg_kinds == EventKind.UNMAP_FAIL) & counted
        if not view.sync:
            busy &= self._col("pass_")[first:] == view.pass_
        unmap_failed = int(np.count_nonzero(busy)) if not (view.sync and unit == "batch") else 0
        moved = int(np.count_nonzero(seg_kinds == EventKind.REMAP))
        sends = np.flatnonzero((seg_kinds == EventKind.FLUSH_SEND) & counted)
        flush_done = bool(sends.size) and bool(np.count_nonzero(
            (seg_kinds[int(sends[-1]):] == EventKind.FLUSH_DONE)
            & counted[int(sends[-1]):]))
        flush_full = bool(sends.size) and int(self._cols["pages"][first + int(sends[-1])]) == -1
        live = view.ipi_round is not None and (unit == "folio" or not view.sync)
        if live and view.ipi_round is not None:
            acked, targets = view.ipi_round.acked, len(view.ipi_round.targets)
            flush_full = view.ipi_round.pages == -1
            flush_done = acked >= targets and view.phase is not Phase.FLUSH
        elif sends.size:
            targets = int(self._cols["arg"][first + int(sends[-1])])
            acked = targets if flush_done else 0
        else:
            # No round yet: the targets will be the non-lazy CPUs of mm_cpumask.
            acked = 0
            targets = sum(1 for role in view.cpu_role if role == CpuRole.WORKLOAD)
        fallback = -1
        if unit == "batch" and view.sync:
            sync_folios = self._col("folio")[first:][seg_sync]
            sync_folios = sync_folios[sync_folios >= 0]
            fallback = int(sync_folios[-1]) if sync_folios.size else -1
        return PhaseProgress(
            unit=unit, index=view.batch, total=view.batches, folios=folios, pages=pages,
            unmapped=unmapped, unmap_failed=unmap_failed, flush_acked=acked,
            flush_targets=targets, flush_done=flush_done, flush_full=flush_full, moved=moved,
            phase=view.phase, pass_=view.pass_, sync=view.sync, fallback_folio=fallback,
        )


def pages_migrated(view: EngineView) -> int:
    """Base pages migrated so far, including the current migrate_pages() call."""
    done = view.counters.pgmigrate_success
    last = view.last_event
    if view.done or last is None or last.kind in (EventKind.MIGRATE_END,
                                                  EventKind.MIGRATE_START):
        return done
    remapped = view.folio_state == FolioState.REMAPPED
    if not remapped.any():
        return done
    return done + int(np.left_shift(1, view.folio_order[remapped].astype(np.int64)).sum())


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one view needs to draw itself, immutable, built once per frame."""

    view: EngineView
    scenario: Scenario
    playing: bool
    speed: float
    rate_ns: float  # simulated ns per wall-clock second at ×1
    flash: frozenset[int]  # CPUs to draw as handling a shootdown IPI right now
    sparkline: tuple[int, ...]
    spark_bucket_ns: int
    progress: PhaseProgress
    pages_done: int
    pages_total: int
    selected: int
    src: int  # the node folios leave in the current move
    dst: int
    fast_forward: bool = False  # playing through a long wait for the next event, faster
    clock_ns: int = 0  # simulated time to show: runs on while playing, the view's when paused

    @property
    def done(self) -> bool:
        return self.view.done


def format_ns(ns: float) -> str:
    """A duration with a unit a human reads at a glance: 850 ns, 41.3 µs, 12.35 ms, 1.204 s."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.3f} s"


def format_speed(speed: float) -> str:
    """×1, ×16, ×1/4."""
    if speed >= 1:
        return f"×{speed:g}"
    return f"×1/{round(1 / speed)}"


def format_count(value: float) -> str:
    """Compact counts for rates: 950, 12.3k, 1.20M."""
    if value < 10_000:
        return f"{value:.0f}"
    if value < 1_000_000:
        return f"{value / 1e3:.1f}k"
    return f"{value / 1e6:.2f}M"
