"""What the migration did to page tables and TLBs over time, as the workload model needs it.

The migrating task appends to these logs in time order: an *interval* per migration entry (from
the unmap to the remap or restore that unlocks the folio) and a *flush* per target CPU of every
shootdown round. The workload reads the logs window by window. Logs only grow (intervals get their
end time filled in), so a checkpoint is a set of lengths and a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.tlb import RoundPlan

# A headless run forgets the flush records its workload has read, this many at a time.
FORGET_FLUSHES = 1 << 16
OPEN = np.iinfo(np.int64).max  # end time of an interval whose folio is still unmapped
FULL = -1  # folio column of a full flush
NOTHING = -2  # folio column of a delivery that flushed nothing (the CPU was already current)
# A partial flush of several folios (flush_tlb_func() invalidating a range page by page) is one
# delivery: its first folio is recorded as is, each further one as ALSO - folio, at the same
# time, so that readers count one IPI but invalidate every folio.
ALSO = -3


def flushed_folios(column: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The folio each record invalidated (FULL and NOTHING stay negative)."""
    return np.where(column <= ALSO, ALSO - column, column)


class GrowArray:
    """An append-only int64 array with amortised O(1) appends, whose first elements may be
    forgotten: element i lives at ``data[i - base]``, and indices never change."""

    __slots__ = ("data", "size", "base")

    def __init__(self, capacity: int = 1024) -> None:
        self.data = np.zeros(max(capacity, 16), dtype=np.int64)
        self.size = 0  # elements appended, forgotten ones included
        self.base = 0  # elements forgotten

    def append(self, value: int) -> int:
        self.reserve(self.size + 1)
        self.data[self.size - self.base] = value
        self.size += 1
        return self.size - 1

    def extend(self, values: int | npt.NDArray[np.int64], count: int = 0) -> None:
        """Append ``values``, or ``count`` copies of one int."""
        need = self.size + (values.size if isinstance(values, np.ndarray) else count)
        self.reserve(need)
        self.data[self.size - self.base : need - self.base] = values
        self.size = need

    def reserve(self, need: int) -> None:
        """Room for ``need`` values (at least doubling, for amortised O(1) appends)."""
        if need - self.base > self.data.size:
            grown = np.zeros(max(need - self.base, 2 * self.data.size), dtype=np.int64)
            grown[: self.size - self.base] = self.data[: self.size - self.base]
            self.data = grown

    def view(self, start: int | None = None, stop: int | None = None) -> npt.NDArray[np.int64]:
        """Elements ``start`` (the first not forgotten: None) to ``stop`` (the end: None)."""
        start = self.base if start is None else start
        if start < self.base:
            raise IndexError(f"elements before {self.base} are forgotten")
        return self.data[start - self.base : (self.size if stop is None else stop) - self.base]

    def truncate(self, size: int) -> None:
        if size < self.base:
            raise IndexError(f"elements before {self.base} are forgotten")
        self.size = size

    def forget(self, before: int) -> None:
        """Forget the elements before index ``before``: the rest move to the front of ``data``,
        which keeps its size (a log read as it grows then needs no more than its peak)."""
        kept = self.size - before
        self.data[:kept] = self.data[before - self.base : self.size - self.base]
        self.base = before


class Timeline:
    """Migration-entry intervals and per-CPU flushes, in time order. Intervals are never
    forgotten (the task and the workload index their logs' ``data`` directly); flush records
    may be, once read (forget_flushes)."""

    def __init__(self, folio_capacity: int) -> None:
        self.iv_folio = GrowArray()
        self.iv_start = GrowArray()
        self.iv_end = GrowArray()
        self.iv_copy = GrowArray()  # when folio_copy() started in that interval (OPEN: not yet)
        self.iv_moved = GrowArray()  # 1 if the interval ended with a remap to the new folio
        self._intervals = (self.iv_folio, self.iv_start, self.iv_end, self.iv_copy, self.iv_moved)
        self.open_interval = np.full(folio_capacity, -1, dtype=np.int64)
        self.fl_cpu = GrowArray()
        self.fl_folio = GrowArray()  # the folio flushed, FULL, or NOTHING
        self.fl_time = GrowArray()
        # Flush records forgotten (forget_flushes): the deliveries among them, and the time of
        # the last one.
        self.forgotten_deliveries = 0
        self.forgotten_until = -1

    def unmap(self, folio: int, time_ns: int) -> None:
        """A migration entry replaces the folio's mapping: accesses without a TLB entry fault."""
        if self.open_interval[folio] >= 0:
            return  # PTE-mapped large folio: later PTEs of the same folio
        # (The five interval logs always have one length: one check, then plain writes.)
        index = self.iv_end.size
        if index == self.iv_end.data.size:
            for log in self._intervals:
                log.reserve(index + 1)
        self.iv_folio.data[index] = folio
        self.iv_start.data[index] = time_ns
        self.iv_end.data[index] = OPEN
        self.iv_copy.data[index] = OPEN
        self.iv_moved.data[index] = 0
        for log in self._intervals:
            log.size = index + 1
        self.open_interval[folio] = index

    def copy(self, folio: int, time_ns: int) -> None:
        """folio_copy() starts: from now on a write through a stale TLB entry is lost."""
        index = int(self.open_interval[folio])
        if index >= 0:
            self.iv_copy.data[index] = time_ns

    def remap(self, folio: int, time_ns: int, *, moved: bool) -> None:
        """The mapping is back and the folio unlocked: waiters wake. ``moved``: it now maps the
        new folio (a TLB entry that survived the unmap still maps the old one)."""
        index = int(self.open_interval[folio])
        if index >= 0:
            self.iv_end.data[index] = time_ns
            self.iv_moved.data[index] = int(moved)
            self.open_interval[folio] = -1

    def add_moves(self, folios: npt.NDArray[np.int64], starts: npt.NDArray[np.int64],
                  copies: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> None:
        """The whole intervals of folios migrated one after another, made at once (a headless
        run's bulk steps): each unmapped at its start, copied from its copy time and remapped
        to its new folio at its end, as unmap(), copy() and remap() would log them."""
        self.iv_folio.extend(folios)
        self.iv_start.extend(starts)
        self.iv_end.extend(ends)
        self.iv_copy.extend(copies)
        self.iv_moved.extend(1, folios.size)

    def last_move(self, capacity: int, until: int) -> npt.NDArray[np.int64]:
        """Per folio: when the latest interval that ended with a move by ``until`` began (its
        unmap), or -1. A TLB entry filled before that still maps the old folio."""
        started = np.full(capacity, -1, dtype=np.int64)
        ended = self.iv_end.view()
        done = (self.iv_moved.view() == 1) & (ended <= until)
        np.maximum.at(started, self.iv_folio.view()[done], self.iv_start.view()[done])
        return started

    def flush_round(self, plan: RoundPlan, flushed: int | npt.NDArray[np.int64],
                    send_time: int) -> None:
        """Every target of a shootdown round handles its IPI: ``flushed`` says, per target, the
        folio whose entry it invalidated, FULL, or NOTHING (a delivery all the same); one int:
        every target the same."""
        count = plan.target_array.size
        if count:
            self.fl_cpu.extend(plan.target_array)
            self.fl_folio.extend(flushed, count)
            self.fl_time.extend(send_time + plan.offset_array)

    def flush_rounds(self, plan: RoundPlan, folios: npt.NDArray[np.int64],
                     send_times: npt.NDArray[np.int64]) -> None:
        """Rounds of one plan sent one after another, made at once (a headless run's bulk
        steps): round i's targets each invalidate ``folios[i]``, as flush_round() logs it."""
        count = plan.target_array.size
        if count and folios.size:
            self.fl_cpu.extend(np.tile(plan.target_array, folios.size))
            self.fl_folio.extend(np.repeat(folios, count))
            self.fl_time.extend((send_times[:, np.newaxis] + plan.offset_array).ravel())

    def deliveries(self, until: int) -> int:
        """IPIs handled by ``until`` (inclusive): the records that are deliveries, every
        target's of every round (a partial flush's further folios are not). Forgotten records
        count; ``until`` must not come before the last of them."""
        if until < self.forgotten_until:
            raise ValueError(f"flush records up to {self.forgotten_until} ns are forgotten")
        base = self.fl_time.base
        count = int(np.searchsorted(self.fl_time.view(), until, side="right"))
        return self.forgotten_deliveries + int(
            np.count_nonzero(self.fl_folio.view(base, base + count) > ALSO))

    def forget_flushes(self, before: int) -> None:
        """Forget the flush records before index ``before``, once there are FORGET_FLUSHES of
        them: a headless run that keeps no checkpoints forgets what its workload has read, so
        that its memory does not grow with every IPI of the run. deliveries() counts them."""
        log = self.fl_time
        if before - log.base < FORGET_FLUSHES:
            return
        self.forgotten_deliveries += int(
            np.count_nonzero(self.fl_folio.view(log.base, before) > ALSO))
        self.forgotten_until = int(log.view(before - 1, before)[0])
        for flushes in (self.fl_cpu, self.fl_folio, self.fl_time):
            flushes.forget(before)

    def insert_flushes(self, cpus: npt.NDArray[np.int64], folios: npt.NDArray[np.int64],
                       times: npt.NDArray[np.int64]) -> None:
        """Flush records (one per CPU and folio, see ALSO) that may fall before records already
        logged: NUMA balancing plans the migrations of one scan period together, and two
        threads' rounds can interleave. Merged in time order, existing records first on ties.
        Only records later than every reader's position may move (the planner's are: they lie
        in the period being planned)."""
        order = np.argsort(times, kind="stable")
        cpus, folios, times = cpus[order], folios[order], times[order]
        if not times.size:
            return
        logged = self.fl_time.view()
        cut = self.fl_time.base + int(np.searchsorted(logged, times[0], side="right"))
        tail = [log.view(cut).copy() for log in (self.fl_cpu, self.fl_folio, self.fl_time)]
        merged_time = np.concatenate((tail[2], times))
        merged = np.argsort(merged_time, kind="stable")
        for log, old, new in zip((self.fl_cpu, self.fl_folio, self.fl_time), tail,
                                 (cpus, folios, times), strict=True):
            log.truncate(cut)
            log.extend(np.concatenate((old, new))[merged])

    def mark(self) -> Mark:
        """What a checkpoint needs to come back here: log lengths, the open intervals and their
        copy times (the only entries that change after they are appended)."""
        open_now = np.flatnonzero(self.iv_end.view() == OPEN)
        return Mark(self.iv_end.size, self.fl_time.size, open_now,
                    self.iv_copy.data[open_now].copy())

    def restore(self, mark: Mark) -> None:
        """Forget everything after a checkpoint."""
        for log in self._intervals:
            log.truncate(mark.intervals)
        for log in (self.fl_cpu, self.fl_folio, self.fl_time):
            log.truncate(mark.flushes)
        self.iv_end.data[mark.open] = OPEN
        self.iv_moved.data[mark.open] = 0
        self.iv_copy.data[mark.open] = mark.open_copy
        self.open_interval[:] = -1
        self.open_interval[self.iv_folio.view()[mark.open]] = mark.open


@dataclass(frozen=True, slots=True)
class Mark:
    """A point in the timeline to restore to."""

    intervals: int
    flushes: int
    open: npt.NDArray[np.int64]
    open_copy: npt.NDArray[np.int64]
