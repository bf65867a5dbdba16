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
timeline the task leaves behind, with numpy over a thread's accesses at once. Each thread's k-th
access goes to a page drawn from a counter-based stream keyed by (seed, thread, k), so results do
not depend on how time was cut into windows: a stepped run and a headless run agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.folios import FolioTable
from core.scenario import Scenario
from core.stats import WorkloadStats
from core.timeline import ALSO, FULL, OPEN, GrowArray, Timeline, flushed_folios
from core.tlb import Machine

KEY_SHIFT = 40  # folio * 2**40 + time: ~18 minutes of simulated time per folio key
BLOCK = 4096  # accesses per random block
CHUNK = 16384  # most accesses classified at once
MIN_CHUNK = 64  # first chunk after a stall: threads that just woke often stall again soon


@dataclass(slots=True)
class _Window:
    """The part of the timeline a window [start, stop) needs, sorted for searching."""

    start: int
    stop: int
    iv_key: npt.NDArray[np.int64]  # folio << KEY_SHIFT | unmap time, sorted
    iv_folio: npt.NDArray[np.int64]
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
        self.last_k: npt.NDArray[np.int64] | None = (
            np.full((count, folios.capacity), -1, dtype=np.int64)
            if folios.capacity > self.capacity else None
        )
        self.refill_ns = scenario.costs.tlb_refill_ns  # a miss walks the page table
        # When each entry was filled, kept only for a kernel that skips its flushes: there alone
        # an entry can outlive the unmap and keep mapping the old folio after the remap. (With
        # no flushes at all an entry, once filled, is never dropped.)
        self.fill: npt.NDArray[np.int64] | None = (
            np.full((count, folios.capacity), OPEN, dtype=np.int64)
            if scenario.migration.skip_flush else None
        )
        self.next_k = np.zeros(count, dtype=np.int64)
        # Threads start evenly staggered within one interval.
        self.next_t = (np.arange(count, dtype=np.int64) * self.interval) // max(count, 1)
        self.stalled_on = np.full(count, -1, dtype=np.int64)
        self.stall_start = np.zeros(count, dtype=np.int64)
        self.stall_interval = np.full(count, -1, dtype=np.int64)
        self.chunk = np.full(count, CHUNK, dtype=np.int64)
        # IPIs delivered at or before this time have already delayed (or met a sleeping) thread.
        self.ipi_cursor = np.full(count, -1, dtype=np.int64)
        # When the handler of the last IPI taken ends: one that arrives before then waits its
        # turn (handlers do not nest; rounds from two threads can reach a CPU that close).
        self.ipi_free = np.zeros(count, dtype=np.int64)
        # A stable sort of 16-bit keys is a radix sort: much faster for the common case.
        self._sort_dtype = np.uint16 if folios.capacity <= 1 << 16 else np.int64
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
        self._blocks: dict[tuple[int, int], tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]]
        self._blocks = {}

    # ------------------------------------------------------------------------------------------

    def advance_to(self, horizon: int) -> None:
        """Simulate every access before ``horizon``; the timeline must be complete up to it."""
        if horizon <= self.horizon or not self.cpus:
            self.horizon = max(self.horizon, horizon)
            return
        window = self._window(self.horizon, horizon)
        for thread in range(len(self.cpus)):
            self._run_thread(thread, window)
        self._retire(window)
        self.horizon = horizon

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
            tlb = tlb & (self.next_k[:, np.newaxis] - self.last_k <= self.capacity)
        old = np.broadcast_to(self.folios.unmapped, tlb.shape)
        if self.fill is not None:
            moved = timeline.last_move(self.folios.capacity, now)
            old = old | (self.fill < moved[np.newaxis, :])
        return tlb & ~old, tlb & old

    def copy(self) -> Workload:
        """An independent copy for checkpoints (the folio table and timeline are rebound)."""
        clone = Workload.__new__(Workload)
        for name in (
            "cpus", "interval", "write_ratio", "fault_ns", "ipi_ns", "seed", "folios", "timeline",
            "horizon", "iv_ptr", "fl_ptr", "accesses", "tlb_hits", "tlb_misses", "stale_hits",
            "stale_writes", "lost_writes", "faults", "_sort_dtype", "capacity", "refill_ns",
        ):
            setattr(clone, name, getattr(self, name))
        for name in ("tlb", "next_k", "next_t", "stalled_on", "stall_start", "stall_interval",
                     "chunk", "ipi_cursor", "ipi_free"):
            setattr(clone, name, getattr(self, name).copy())
        clone.fill = None if self.fill is None else self.fill.copy()
        clone.last_k = None if self.last_k is None else self.last_k.copy()
        clone.stalls = GrowArray(self.stalls.data.size)
        clone.stalls.data[: self.stalls.size] = self.stalls.view()
        clone.stalls.size = self.stalls.size
        clone._blocks = {}
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
            start=start, stop=stop, iv_key=keys[order], iv_folio=folios[live][order],
            iv_end=ends[live][order], iv_copy=copies[live][order], iv_index=index[order],
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

    def _draws(self, thread: int, first: int, count: int
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Pages and write flags of accesses first..first+count-1 of a thread."""
        pages: list[npt.NDArray[np.int64]] = []
        writes: list[npt.NDArray[np.bool_]] = []
        position = first
        end = first + count
        while position < end:
            block = position // BLOCK
            data = self._blocks.get((thread, block))
            if data is None:
                generator = np.random.Generator(
                    np.random.Philox(key=[self.seed & 0xFFFFFFFFFFFFFFFF, (thread << 40) | block])
                )
                data = (
                    generator.integers(0, self.folios.total_pages, BLOCK, dtype=np.int64),
                    generator.random(BLOCK) < self.write_ratio,
                )
                if len(self._blocks) > 4 * len(self.cpus) + 8:
                    self._blocks.clear()
                self._blocks[(thread, block)] = data
            lo = position - block * BLOCK
            hi = min(BLOCK, end - block * BLOCK)
            pages.append(data[0][lo:hi])
            writes.append(data[1][lo:hi])
            position = block * BLOCK + hi
        if len(pages) == 1:
            return pages[0], writes[0]
        return np.concatenate(pages), np.concatenate(writes)

    def _run_thread(self, thread: int, window: _Window) -> None:
        cpu = self.cpus[thread]
        mine = window.fl_cpu == cpu
        full_times = window.fl_time[mine & (window.fl_folio == FULL)]
        # Entries invalidated one by one (not FULL, not NOTHING), and the deliveries: a partial
        # flush of several folios is one IPI (its further folios are ALSO records).
        singles = mine & ((window.fl_folio >= 0) | (window.fl_folio <= ALSO))
        single_keys = np.sort((flushed_folios(window.fl_folio[singles]) << KEY_SHIFT)
                              | window.fl_time[singles])
        tlb = self.tlb[thread]
        capacity = self.capacity
        state_time = window.start - 1  # every flush at or before this is applied to `tlb`
        stop = window.stop
        interval = self.interval
        # IPIs this CPU handles in the window, in time order
        deliveries = window.fl_time[mine & (window.fl_folio > ALSO)]
        ipi_ns = self.ipi_ns
        while True:
            if self.stalled_on[thread] >= 0:
                folio = int(self.stalled_on[thread])
                index = int(self.stall_interval[thread])
                remapped = int(self.timeline.iv_end.data[index])
                if remapped == OPEN:
                    break
                resume = max(int(self.stall_start[thread]) + self.fault_ns, remapped)
                if resume >= stop:
                    break
                state_time = self._apply_flushes(tlb, full_times, single_keys, state_time, resume)
                tlb[folio] = True  # the retried access walks the new PTE and refills
                if self.fill is not None:
                    self.fill[thread, folio] = resume
                if self.last_k is not None:
                    self.last_k[thread, folio] = int(self.next_k[thread]) - 1
                self.accesses += 1
                self.tlb_misses += 1
                self.stalls.append(resume - int(self.stall_start[thread]))
                self.stalled_on[thread] = -1
                self.stall_interval[thread] = -1
                self.next_t[thread] = resume + self.refill_ns + interval
                # IPIs handled while it slept delayed nothing.
                self.ipi_cursor[thread] = max(int(self.ipi_cursor[thread]), resume)
            start_t = int(self.next_t[thread])
            if start_t >= stop:
                break
            n = min((stop - 1 - start_t) // interval + 1, int(self.chunk[thread]))
            first_k = int(self.next_k[thread])
            pending = deliveries[np.searchsorted(deliveries, self.ipi_cursor[thread],
                                                 side="right"):]
            free = int(self.ipi_free[thread])
            pages, writes = self._draws(thread, first_k, n)
            folios = self.folios.page_folio[pages].astype(np.int64)
            # What does not depend on time: the previous access to the same folio in this chunk,
            # and whether the entry would still be held by recency (the TLB's capacity).
            order = np.argsort(folios.astype(self._sort_dtype), kind="stable")
            same = folios[order[1:]] == folios[order[:-1]]
            previous = np.full(n, -1, dtype=np.int64)
            previous[order[1:][same]] = order[:-1][same]
            has_previous = previous >= 0
            prev = np.maximum(previous, 0)
            position = np.arange(n, dtype=np.int64)
            held = np.where(has_previous, True, tlb[folios])
            if self.last_k is not None:
                last_k = self.last_k[thread]
                held &= np.where(has_previous, position - prev <= capacity,
                                 first_k + position - last_k[folios] <= capacity)
            base_full = int(np.searchsorted(full_times, state_time, side="right"))
            base_single = np.searchsorted(single_keys, (folios << KEY_SHIFT) | state_time,
                                          side="right")
            # Times depend on which accesses missed (each refill delays the next access) and on
            # IPI handlers; which accesses miss depends on their times (flushes, migration
            # entries). Solve it forward: access j's time depends only on the misses before j,
            # so each pass gets at least one more access right; after a few passes the prefix
            # that agrees with itself is exact, and only that much is taken.
            miss = ~held
            for _ in range(4):
                times, handled = self._times(start_t, miss, pending, free)
                m = int(np.searchsorted(times, stop, side="left"))
                if m == 0:
                    break
                entry, unmapped, slot, safe = self._classify(
                    window, folios[:m], times[:m], held[:m], has_previous[:m], prev[:m],
                    full_times, single_keys, base_full, base_single[:m])
                fault = unmapped & ~entry
                faulted = bool(fault.any())
                done = int(np.argmax(fault)) if faulted else m
                new_miss = ~entry[:done]
                differ = np.flatnonzero(new_miss != miss[:done])
                miss = np.concatenate((new_miss, miss[done:]))
                if not differ.size:
                    break
            if m == 0:  # interrupted past the window: the next access comes later
                self.next_t[thread] = int(times[0])
                if handled[0]:
                    self._took(thread, pending, handled[0], free)
                break
            if differ.size:
                # Not settled: keep the exact prefix (up to and including the first access
                # whose classification changed: its time was already right).
                done, faulted = int(differ[0]) + 1, False
                times, handled = self._times(start_t, miss, pending, free)
            n = done
            hits = int(entry[:done].sum())
            stale = entry[:done] & unmapped[:done]
            self.accesses += done
            self.tlb_hits += hits
            self.tlb_misses += done - hits
            self.stale_hits += int(stale.sum())
            stale_writes = stale & writes[:done]
            self.stale_writes += int(stale_writes.sum())
            if stale_writes.any():
                # Through a stale entry after folio_copy() began: the write lands in the old page
                # and is lost (the ordering rule broken; never in a correct mode).
                copied = times[:done] >= window.iv_copy[safe[:done]]
                self.lost_writes += int((stale_writes & copied).sum())
            until = int(times[done]) if faulted else int(times[done - 1])
            if done:
                # Entries left by this chunk's accesses, unless flushed before `until`.
                touched = folios[:done]
                last = np.zeros(self.folios.capacity, dtype=np.int64)
                last[touched] = times[:done]  # later accesses overwrite earlier ones
                last_times = last[touched]
                survived = (
                    (np.searchsorted(full_times, until, side="right")
                     == np.searchsorted(full_times, last_times, side="right"))
                    & (np.searchsorted(single_keys, (touched << KEY_SHIFT) | until, side="right")
                       == np.searchsorted(single_keys, (touched << KEY_SHIFT) | last_times,
                                          side="right"))
                )
            state_time = self._apply_flushes(tlb, full_times, single_keys, state_time, until)
            if done:
                if self.fill is not None:
                    # When the entry now held was filled: its folio's last miss in this chunk.
                    missed = ~entry[:done]
                    fill = self.fill[thread]
                    fill[touched[missed]] = times[:done][missed]  # the latest one wins
                tlb[touched] = survived
                if self.last_k is not None:
                    self.last_k[thread][touched] = first_k + position[:done]
            self.chunk[thread] = min(CHUNK, max(MIN_CHUNK, 4 * done)) if faulted else \
                min(CHUNK, 2 * max(done, 1))
            final = done if faulted else done - 1
            if handled[final]:
                self._took(thread, pending, handled[final], free)
            if faulted:
                self.faults += 1
                self.stalled_on[thread] = folios[done]
                self.stall_start[thread] = times[done]
                self.stall_interval[thread] = window.iv_index[slot[done]]
                self.next_k[thread] = first_k + done + 1
            else:
                self.next_k[thread] = first_k + done
                # The next access follows one interval later, after the refill if this missed.
                self.next_t[thread] = int(times[done - 1]) + interval + \
                    self.refill_ns * int(miss[done - 1])
        # IPIs left in this window: a sleeping thread meets them asleep; a running one takes them
        # before its next access (which lies at or past the window's end).
        rest = deliveries[np.searchsorted(deliveries, self.ipi_cursor[thread], side="right"):]
        if rest.size:
            if self.stalled_on[thread] < 0:
                self.next_t[thread] += ipi_ns * rest.size
                self._took(thread, rest, rest.size, int(self.ipi_free[thread]))
            self.ipi_cursor[thread] = int(rest[-1])
        self._apply_flushes(tlb, full_times, single_keys, state_time, stop - 1)

    def _handler_marks(self, pending: npt.NDArray[np.int64], free: int) -> npt.NDArray[np.int64]:
        """e_j = s_j - j * ipi_ns, where s_j is when the handler of pending IPI j starts: when it
        arrives, or when the one before ends (s_j = max(d_j, s_{j-1} + ipi_ns), the first not
        before ``free``). Non-decreasing, so it can be searched."""
        marks = pending - self.ipi_ns * np.arange(pending.size, dtype=np.int64)
        return np.maximum.accumulate(np.maximum(marks, free))

    def _took(self, thread: int, pending: npt.NDArray[np.int64], count: int, free: int) -> None:
        """The running thread has taken the first ``count`` pending IPIs."""
        self.ipi_cursor[thread] = int(pending[count - 1])
        if self.ipi_ns:
            end = int(self._handler_marks(pending[:count], free)[-1]) + count * self.ipi_ns
            self.ipi_free[thread] = max(int(self.ipi_free[thread]), end)

    def _times(self, start_t: int, miss: npt.NDArray[np.bool_], pending: npt.NDArray[np.int64],
               free: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """When each access of a chunk happens, given which of them miss: one interval apart,
        each refill delaying what follows, and every IPI handled in between pushing the later
        accesses back by its handler (access k follows the IPIs whose mark e_j, see
        _handler_marks, is at or before its time without handlers). Also returns how many of
        ``pending`` each access follows."""
        n = miss.size
        delays = np.zeros(n, dtype=np.int64)
        if self.refill_ns and n > 1:
            delays[1:] = np.cumsum(miss[:-1], dtype=np.int64) * self.refill_ns
        times = start_t + np.arange(n, dtype=np.int64) * self.interval + delays
        handled = np.zeros(n, dtype=np.int64)
        if pending.size and self.ipi_ns:
            marks = self._handler_marks(pending, free)
            handled = np.searchsorted(marks, times, side="right")
            times = times + self.ipi_ns * handled
        return times, handled

    @staticmethod
    def _classify(window: _Window, folios: npt.NDArray[np.int64], times: npt.NDArray[np.int64],
                  held: npt.NDArray[np.bool_], has_previous: npt.NDArray[np.bool_],
                  prev: npt.NDArray[np.int64], full_times: npt.NDArray[np.int64],
                  single_keys: npt.NDArray[np.int64], base_full: int,
                  base_single: npt.NDArray[np.int64]
                  ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.int64],
                             npt.NDArray[np.int64]]:
        """For accesses at known times: whether the CPU holds a TLB entry (held by recency and
        not flushed since it was filled or carried in), whether the PTE is a migration entry
        then, and where each access falls in the window's intervals."""
        n = folios.size
        query = (folios << KEY_SHIFT) | times
        slot = np.searchsorted(window.iv_key, query, side="right") - 1
        safe = np.maximum(slot, 0)
        unmapped = (
            (slot >= 0) & (window.iv_folio[safe] == folios) & (times < window.iv_end[safe])
            if window.iv_key.size else np.zeros(n, dtype=bool)
        )
        full_count = np.searchsorted(full_times, times, side="right")
        single_count = np.searchsorted(single_keys, query, side="right")
        prev_single = np.searchsorted(single_keys, (folios << KEY_SHIFT) | times[prev],
                                      side="right")
        entry = held & np.where(
            has_previous,
            (full_count == full_count[prev]) & (single_count == prev_single),
            (full_count == base_full) & (single_count == base_single),
        )
        return entry, unmapped, slot, safe

    @staticmethod
    def _apply_flushes(tlb: npt.NDArray[np.bool_], full_times: npt.NDArray[np.int64],
                       single_keys: npt.NDArray[np.int64], since: int, until: int) -> int:
        """Apply this CPU's flushes with since < time <= until to its TLB row; returns until."""
        if until <= since:
            return since
        lo, hi = np.searchsorted(full_times, [since, until], side="right")
        if hi > lo:
            tlb[:] = False
        if single_keys.size:
            times = single_keys & ((1 << KEY_SHIFT) - 1)
            hit = (times > since) & (times <= until)
            if hit.any():
                tlb[single_keys[hit] >> KEY_SHIFT] = False
        return until
