"""The workload: pmbench-like threads touching the folios while they migrate.

Each running thread makes one access every ``access_interval_ns`` to a uniformly random base page
(read or write). Through its CPU's TLB an access either hits (a valid entry, or a *stale* one
whose PTE was already replaced by a migration entry but not yet flushed: it still reaches the old
page), or walks the page table: a present PTE refills the entry; a migration entry faults and
the thread sleeps in ``migration_entry_wait()`` until the folio is remapped and unlocked, which is
recorded as a stall. Every shootdown IPI its CPU handles costs a running thread
``ipi_handler_ns`` before its next access.

The migrating task does not depend on the workload (its IPIs interrupt threads but the task waits
for acknowledgements either way), so the workload is simulated lazily, window by window, from the
timeline the task leaves behind: the accesses of each window are simulated one by one, in
compiled code (core/accesses.py). Each thread's k-th access goes to a page drawn from a
counter-based stream keyed by (seed, thread, k), so results do not depend on how time was cut
into windows: a stepped run and a headless run agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core import accesses
from core.accesses import NEXT_K, NEXT_T, STALL_INTERVAL, STALL_START, STALLED_ON
from core.folios import FolioTable
from core.scenario import Scenario
from core.stats import WorkloadStats
from core.timeline import FULL, OPEN, GrowArray, Timeline, flushed_folios
from core.tlb import Machine

KEY_SHIFT = 40  # folio * 2**40 + time: ~18 minutes of simulated time per folio key
BLOCK = 4096  # accesses per random block
KEEP_BLOCKS = 8  # blocks kept per thread (~37 KB each)
RECENCY_SPAN = 1 << 30  # accesses a thread may make past Workload.k_base (last_k is int32)
RECENCY_LIMIT = int(np.iinfo(np.int32).max)


@dataclass(slots=True)
class _Window:
    """The part of the timeline a window [start, stop) needs, sorted for searching."""

    start: int
    stop: int
    iv_key: npt.NDArray[np.int64]  # folio << KEY_SHIFT | unmap time, sorted
    iv_end: npt.NDArray[np.int64]
    iv_copy: npt.NDArray[np.int64]  # when folio_copy() started (OPEN: not yet)
    iv_index: npt.NDArray[np.int64]  # index into the timeline's interval log
    fl_cpu: npt.NDArray[np.int64]
    fl_folio: npt.NDArray[np.int64]
    fl_time: npt.NDArray[np.int64]


class Workload:
    """Threads, their TLBs and their stalls, advanced to a horizon on demand."""

    def __init__(self, scenario: Scenario, machine: Machine, folios: FolioTable,
                 timeline: Timeline) -> None:
        self.cpus = machine.running_threads
        self._cpu_array = np.array(self.cpus, dtype=np.int64)
        self.interval = scenario.workload.access_interval_ns
        self.write_ratio = scenario.workload.write_ratio
        self.fault_ns = scenario.costs.fault_ns
        # Each shootdown IPI a thread's CPU handles steals this long from the thread.
        self.ipi_ns = scenario.costs.ipi_handler_ns
        self.seed = scenario.seed
        self.folios = folios
        self.timeline = timeline
        count = len(self.cpus)
        self.tlb = np.zeros((count, folios.capacity), dtype=bool)
        # The TLB holds at most `capacity` entries, the least recently used evicted first: an
        # entry is still held while fewer than `capacity` accesses came since its last use
        # (recency counted in accesses; with uniform pages over many folios nearly every one is
        # distinct). Tracked only when the workload could outgrow it.
        self.capacity = scenario.topology.tlb_entries
        # As int32 (half the cache misses of int64) counted from k_base, which moves on before
        # a thread's count could outgrow int32 (_rebase_recency).
        self.last_k: npt.NDArray[np.int32] | npt.NDArray[np.int64] | None = (
            np.full((count, folios.capacity), -1, dtype=np.int32)
            if folios.capacity > self.capacity else None
        )
        self.k_base = 0
        self.refill_ns = scenario.costs.tlb_refill_ns  # a miss walks the page table
        # When each entry was filled, kept only for a kernel that skips its flushes: there alone
        # an entry can outlive the unmap and keep mapping the old folio after the remap. (With
        # no flushes at all an entry, once filled, is never dropped.)
        self.fill: npt.NDArray[np.int64] | None = (
            np.full((count, folios.capacity), OPEN, dtype=np.int64)
            if scenario.migration.skip_flush else None
        )
        # Per thread: NEXT_K, NEXT_T, STALLED_ON, ... (core/accesses.py), one row each.
        self.threads = np.zeros((count, accesses.THREAD_FIELDS), dtype=np.int64)
        # Threads start evenly staggered within one interval.
        self.threads[:, NEXT_T] = (np.arange(count, dtype=np.int64) * self.interval) \
            // max(count, 1)
        self.threads[:, STALLED_ON] = -1
        self.threads[:, STALL_INTERVAL] = -1
        self.horizon = 0
        self.iv_ptr = 0
        self.fl_ptr = 0
        self.accesses = 0
        self.tlb_hits = 0
        self.tlb_misses = 0
        self.stale_hits = 0
        self.stale_writes = 0
        self.lost_writes = 0  # stale writes after the copy started: only without the flush
        self.faults = 0
        self.stalls = GrowArray()
        self._dummy = np.zeros((count, 1), dtype=np.int64)  # fill when not tracked
        self._dummy_k = np.zeros((count, 1), dtype=np.int32)  # last_k when not tracked
        self._first_slot = np.full(folios.capacity, -1, dtype=np.int32)  # run_window's scratch
        # Per thread: its blocks of draws drawn and still ahead of it, by block number.
        self._blocks: list[dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]]]
        self._blocks = [{} for _ in self.cpus]

    @property
    def stalled_on(self) -> npt.NDArray[np.int64]:
        """Per thread: the folio it waits for in migration_entry_wait(), or -1."""
        return self.threads[:, STALLED_ON]

    @property
    def stall_start(self) -> npt.NDArray[np.int64]:
        """Per thread: when its wait began (its faulting access)."""
        return self.threads[:, STALL_START]

    @property
    def stall_interval(self) -> npt.NDArray[np.int64]:
        """Per thread: the timeline interval it waits on (its index in the log), or -1."""
        return self.threads[:, STALL_INTERVAL]

    @property
    def next_k(self) -> npt.NDArray[np.int64]:
        """Per thread: how many accesses it has made (its faulting access included)."""
        return self.threads[:, NEXT_K]

    # ------------------------------------------------------------------------------------------

    def advance_to(self, horizon: int) -> None:
        """Simulate every access before ``horizon``; the timeline must be complete up to it."""
        if horizon <= self.horizon or not self.cpus:
            self.horizon = max(self.horizon, horizon)
            return
        window = self._window(self.horizon, horizon)
        # No thread makes more accesses in [start, stop) than one every interval.
        most = (window.stop - 1 - window.start) // self.interval + 1
        count = len(self.cpus)
        if self.last_k is not None:
            self._rebase_recency(most)
        pages = np.empty((count, most), dtype=np.int64)
        writes = np.empty((count, most), dtype=bool)
        for thread in range(count):
            self._draw(thread, int(self.threads[thread, NEXT_K]), pages[thread], writes[thread])
        totals = np.zeros(accesses.TOTALS, dtype=np.int64)
        stalls = np.empty(count * most, dtype=np.int64)
        written = accesses.runner(count * most)(
            self._cpu_array, self.threads, self.tlb,
            self.last_k is not None, self._dummy_k if self.last_k is None else self.last_k,
            self.k_base,
            self.fill is not None, self._dummy if self.fill is None else self.fill,
            self.folios.page_folio, pages, writes,
            window.fl_cpu, window.fl_folio, window.fl_time,
            window.iv_key, window.iv_end, window.iv_copy, window.iv_index,
            self.timeline.iv_end.data, self._first_slot, KEY_SHIFT, window.stop, self.interval,
            self.refill_ns, self.ipi_ns, self.fault_ns, self.capacity, totals, stalls)
        self.accesses += int(totals[accesses.ACCESSES])
        self.tlb_hits += int(totals[accesses.TLB_HITS])
        self.tlb_misses += int(totals[accesses.TLB_MISSES])
        self.stale_hits += int(totals[accesses.STALE_HITS])
        self.stale_writes += int(totals[accesses.STALE_WRITES])
        self.lost_writes += int(totals[accesses.LOST_WRITES])
        self.faults += int(totals[accesses.FAULTS])
        self.stalls.extend(stalls[:written])
        self._retire(window)
        self.horizon = horizon

    def _rebase_recency(self, most: int) -> None:
        """Move k_base on before a window whose accesses (at most ``most`` per thread) could
        take a thread's count past RECENCY_SPAN of it. An entry last used more than `capacity`
        accesses before every thread's next access is held by no one, then or later: it may
        be clamped to the oldest value without changing any answer."""
        last_k = self.last_k
        assert last_k is not None
        top = int(self.next_k.max()) + most
        if top - self.k_base < RECENCY_SPAN or last_k.dtype != np.int32:
            return
        base = max(self.k_base, int(self.next_k.min()) - self.capacity - 1)
        moved = last_k.astype(np.int64) - (base - self.k_base)
        if top - base >= RECENCY_LIMIT:  # threads too far apart: count in int64 from now on
            self.last_k = moved + base
            self.k_base = 0
            return
        np.maximum(moved, np.iinfo(np.int32).min, out=moved)
        last_k[:] = moved
        self.k_base = base

    def stats(self) -> WorkloadStats:
        """Totals so far."""
        return WorkloadStats(
            accesses=self.accesses, tlb_hits=self.tlb_hits, tlb_misses=self.tlb_misses,
            stale_hits=self.stale_hits, faults=self.faults, lost_writes=self.lost_writes,
            stall_ns=np.sort(self.stalls.view()),  # in a fixed order, however time was cut
        )

    def entries_at(self, now: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """(valid, stale) TLB entries per running thread and folio at ``now``, once the workload
        has been advanced to ``now``: flushes handled at exactly ``now`` are applied too (an
        IPI_RECV event at ``now`` has happened). An entry is stale when it maps the old folio:
        its PTE is a migration entry now, or (only where flushes are skipped) it was filled
        before the folio's last move."""
        tlb = self.tlb
        timeline = self.timeline
        times = timeline.fl_time.view(self.fl_ptr)
        lo, hi = np.searchsorted(times, [now, now + 1], side="left")
        if hi > lo:
            tlb = tlb.copy()
            base = self.fl_ptr
            cpus = timeline.fl_cpu.view(base + lo, base + hi)
            folios = timeline.fl_folio.view(base + lo, base + hi)
            for thread, cpu in enumerate(self.cpus):
                mine = flushed_folios(folios[cpus == cpu])
                if (mine == FULL).any():
                    tlb[thread] = False
                else:
                    tlb[thread, mine[mine >= 0]] = False
        if self.last_k is not None:  # entries evicted by recency are not held any more
            since = (self.next_k - self.k_base)[:, np.newaxis] - self.last_k  # int64
            tlb = tlb & (since <= self.capacity)
        old = np.broadcast_to(self.folios.unmapped, tlb.shape)
        if self.fill is not None:
            moved = timeline.last_move(self.folios.capacity, now)
            old = old | (self.fill < moved[np.newaxis, :])
        return tlb & ~old, tlb & old

    def copy(self) -> Workload:
        """An independent copy for checkpoints (the folio table and timeline are rebound)."""
        clone = Workload.__new__(Workload)
        for name in (
            "cpus", "_cpu_array", "interval", "write_ratio", "fault_ns", "ipi_ns", "seed",
            "folios", "timeline",
            "horizon", "iv_ptr", "fl_ptr", "accesses", "tlb_hits", "tlb_misses", "stale_hits",
            "stale_writes", "lost_writes", "faults", "capacity", "refill_ns", "k_base",
        ):
            setattr(clone, name, getattr(self, name))
        for name in ("tlb", "threads", "_dummy", "_dummy_k", "_first_slot"):
            setattr(clone, name, getattr(self, name).copy())
        clone.fill = None if self.fill is None else self.fill.copy()
        clone.last_k = None if self.last_k is None else self.last_k.copy()
        clone.stalls = GrowArray(self.stalls.data.size)
        clone.stalls.data[: self.stalls.size] = self.stalls.view()
        clone.stalls.size = self.stalls.size
        clone._blocks = [{} for _ in self.cpus]
        return clone

    # ------------------------------------------------------------------------------------------

    def _window(self, start: int, stop: int) -> _Window:
        timeline = self.timeline
        first = self.iv_ptr
        folios = timeline.iv_folio.view(first)
        begins = timeline.iv_start.view(first)
        ends = timeline.iv_end.view(first)
        copies = timeline.iv_copy.view(first)
        live = (ends > start) & (begins < stop)
        index = np.flatnonzero(live) + first
        keys = (folios[live] << KEY_SHIFT) | begins[live]
        order = np.argsort(keys, kind="stable")
        times = timeline.fl_time.view(self.fl_ptr)
        count = int(np.searchsorted(times, stop, side="left"))
        stop_fl = self.fl_ptr + count
        return _Window(
            start=start, stop=stop, iv_key=keys[order], iv_end=ends[live][order],
            iv_copy=copies[live][order], iv_index=index[order],
            fl_cpu=timeline.fl_cpu.view(self.fl_ptr, stop_fl),
            fl_folio=timeline.fl_folio.view(self.fl_ptr, stop_fl),
            fl_time=timeline.fl_time.view(self.fl_ptr, stop_fl),
        )

    def _retire(self, window: _Window) -> None:
        """Move the log pointers past what no later window can need."""
        self.fl_ptr += window.fl_time.size
        ends = self.timeline.iv_end.view(self.iv_ptr)
        still_needed = ends >= window.stop  # open (OPEN is huge) or ending later
        blocked = self.stall_interval[self.stalled_on >= 0]
        first_needed = int(np.argmax(still_needed)) if still_needed.any() else ends.size
        if blocked.size:
            first_needed = min(first_needed, int(blocked.min()) - self.iv_ptr)
        self.iv_ptr += max(first_needed, 0)

    def _draw(self, thread: int, first: int, pages: npt.NDArray[np.int64],
              writes: npt.NDArray[np.bool_]) -> None:
        """Fill ``pages`` and ``writes`` with the draws of a thread's accesses from ``first`` on:
        the page each touches and whether it writes."""
        position = first
        end = first + pages.size
        blocks = self._blocks[thread]
        # A thread's accesses only go forward: blocks behind this one are never read again.
        # (Windows draw for more accesses than a thread makes: the blocks past its next access
        # are kept, so that each block is drawn once.)
        for behind in [block for block in blocks if block < first // BLOCK]:
            del blocks[behind]
        while position < end:
            block = position // BLOCK
            data = blocks.get(block)
            if data is None:
                generator = np.random.Generator(
                    np.random.Philox(key=[self.seed & 0xFFFFFFFFFFFFFFFF, (thread << 40) | block])
                )
                data = (
                    generator.integers(0, self.folios.total_pages, BLOCK, dtype=np.int64),
                    generator.random(BLOCK) < self.write_ratio,
                )
                if len(blocks) >= KEEP_BLOCKS:  # a long window: its first blocks are copied
                    del blocks[min(blocks)]
                blocks[block] = data
            lo = position - block * BLOCK
            hi = min(BLOCK, end - block * BLOCK)
            into = position - first
            pages[into : into + hi - lo] = data[0][lo:hi]
            writes[into : into + hi - lo] = data[1][lo:hi]
            position = block * BLOCK + hi
