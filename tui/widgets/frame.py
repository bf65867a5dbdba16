"""What the app pushes into widgets once per frame, and the event history it keeps beside it.

The engine's :class:`~core.engine.EngineView` says where everything *is*, and every figure a
widget draws comes from it. Two things on screen also need the past: IPI deliveries over time
(the sparkline) and one folio's lifecycle (the inspect screen). :class:`EventHistory` keeps those
events as numpy columns. It is keyed by event sequence number, so after the engine steps back the
app truncates it and what it shows is exactly what it was before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.engine import EngineView
from core.events import Event, EventKind, RoundKind
from core.scenario import Scenario

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
    "serial": np.bool_,
    "round_kind": np.int8,
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
    serial: bool = False  # made in serial mode: ``batch`` is then the folio's unit number
    round_kind: RoundKind = RoundKind.NONE


class IpiHistogram:
    """IPI deliveries counted per bucket of simulated time, in bounded memory: the buckets start
    ``base_ns`` wide and double (merging pairs) whenever the run outgrows ``limit`` of them."""

    def __init__(self, base_ns: int, limit: int = 4096) -> None:
        self.width = max(int(base_ns), 1)
        self.limit = limit
        self.counts = np.zeros(limit, dtype=np.int64)
        self.total = 0

    def add(self, times: npt.NDArray[np.int64]) -> None:
        """Count deliveries at these times."""
        if not times.size:
            return
        while int(times.max()) // self.width >= self.limit:
            merged = self.counts.reshape(-1, 2).sum(axis=1)
            self.counts[: merged.size] = merged
            self.counts[merged.size :] = 0
            self.width *= 2
        np.add.at(self.counts, times // self.width, 1)
        self.total += int(times.size)

    def buckets(self, now_ns: int, bucket_ns: int, count: int) -> tuple[int, ...]:
        """Deliveries per ``bucket_ns`` (a multiple of the current width) for the last ``count``
        buckets up to now."""
        factor = max(bucket_ns // self.width, 1)
        last = now_ns // (self.width * factor)
        first = last - count + 1
        out = []
        for bucket in range(first, last + 1):
            lo, hi = bucket * factor, (bucket + 1) * factor
            out.append(int(self.counts[max(lo, 0): max(min(hi, self.limit), 0)].sum())
                       if hi > 0 else 0)
        return tuple(out)


class EventHistory:
    """The events applied so far, as growable numpy columns, truncatable by sequence number.

    ``rows=False`` (split view, where nothing is inspected or stepped back) keeps only a
    bounded histogram of IPI deliveries for the sparkline, so a long race holds no history.
    """

    def __init__(self, rows: bool = True, base_ns: int = 1000) -> None:
        self.rows = rows
        self.base_ns = base_ns
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
        self._histogram = None if self.rows else IpiHistogram(self.base_ns)

    def __len__(self) -> int:
        return self._n

    def _col(self, name: str) -> npt.NDArray[Any]:
        return self._cols[name][: self._n]

    def extend(self, events: Iterable[Event]) -> None:
        """Remember newly applied events (in order)."""
        if self._histogram is not None:
            self._histogram.add(np.fromiter(
                (e.time_ns for e in events if e.kind is EventKind.IPI_RECV), dtype=np.int64))
            return
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
            cols["serial"][n : n + m] = [e.serial for e in main]
            cols["round_kind"][n : n + m] = [int(e.round_kind) for e in main]
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

    def add_ipis(self, times: npt.NDArray[np.int64]) -> None:
        """Count IPI deliveries at these times (a history without rows: split view)."""
        if self._histogram is None:
            raise ValueError("a history with rows keeps IPIs from their events")
        self._histogram.add(times)

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        size = self._cols["seq"].size
        if need <= size:
            return
        size = max(need, size * 2)
        self._cols = {name: np.resize(col, size) for name, col in self._cols.items()}

    def truncate(self, events: int) -> None:
        """Keep only events with ``seq < events`` (after the engine stepped back)."""
        if self._histogram is not None:
            raise ValueError("a history without rows cannot step back")
        self._n = int(np.searchsorted(self._col("seq"), events, side="left"))
        self._ipi_n = int(np.searchsorted(self._ipi_seq[: self._ipi_n], events, side="left"))

    # ------------------------------------------------------------------------------------------

    def ipi_buckets(self, now_ns: int, bucket_ns: int, count: int) -> tuple[int, ...]:
        """IPI deliveries per ``bucket_ns`` of simulated time, the last ``count`` buckets to now."""
        if count <= 0 or bucket_ns <= 0:
            return ()
        if self._histogram is not None:
            return self._histogram.buckets(now_ns, bucket_ns, count)
        last = now_ns // bucket_ns
        first = last - count + 1
        times = self._ipi_time[: self._ipi_n]
        start = int(np.searchsorted(times, first * bucket_ns, side="left"))
        recent = times[start:] // bucket_ns - first
        recent = recent[(recent >= 0) & (recent < count)]
        return tuple(int(v) for v in np.bincount(recent, minlength=count)[:count])

    def ipi_total(self) -> int:
        return self._histogram.total if self._histogram is not None else self._ipi_n

    def folio_rows(self, folio: int, limit: int = 200) -> list[HistoryRow]:
        """The remembered events of one folio, oldest first (at most the last ``limit``)."""
        where = np.flatnonzero(self._col("folio") == folio)[-limit:]
        return [self._row(int(i)) for i in where]

    def flush_rows_for(self, folio: int, since_ns: int, until_ns: int | None,
                       limit: int = 20) -> list[HistoryRow]:
        """The shootdown rounds that flushed a folio's entries between its unmap (``since_ns``)
        and its remap or restore (``until_ns``; None: still unmapped): its own rounds (a PTE or
        PMD flush) and full flushes. Rounds of other folios' pages leave its entries alone."""
        kinds = self._col("kind")
        times = self._col("time")
        mine = (self._col("folio") == folio) | (self._col("pages") == -1)
        inside = times >= since_ns
        if until_ns is not None:
            inside &= times <= until_ns
        where = np.flatnonzero((kinds == EventKind.FLUSH_SEND) & mine & inside)[:limit]
        return [self._row(int(i)) for i in where]

    def _row(self, i: int) -> HistoryRow:
        c = self._cols
        return HistoryRow(
            int(c["seq"][i]), int(c["time"][i]), EventKind(int(c["kind"][i])), int(c["cpu"][i]),
            int(c["folio"][i]), int(c["pages"][i]), int(c["arg"][i]), int(c["pass_"][i]),
            int(c["batch"][i]), bool(c["sync"][i]), int(c["move"][i]), bool(c["serial"][i]),
            RoundKind(int(c["round_kind"][i])),
        )


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
    selected: int
    fast_forward: bool = False  # playing through a long wait for the next event, faster
    clock_ns: int = 0  # simulated time to show: runs on while playing, the view's when paused
    achieved_ns: float | None = None  # simulated ns per wall second actually played (None: n/a)
    behind: bool = False  # the engine cannot keep up with the asked speed
    marks: frozenset[str] = frozenset()  # what a tour highlights: "cpu:N", "counter:NAME"

    @property
    def done(self) -> bool:
        return self.view.done
