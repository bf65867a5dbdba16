"""The workload's accesses, one by one, compiled: the inner loop of core/workload.py.

Every running thread makes its accesses in time order through its CPU's TLB, taking each
shootdown IPI its CPU handles before its next access, and sleeping in migration_entry_wait() when
it walks into a migration entry. Simulating that access by access is the model at its plainest,
and compiled (numba) it costs tens of nanoseconds an access; the same loop in Python costs a
microsecond. ``Workload.advance_to`` draws the pages, cuts the timeline into the window's arrays
and calls :func:`run_window` once per window for all threads.

Ties are ordered as the kernel orders them: a flush handled at the same nanosecond as an access
comes first (the access misses), and an IPI whose handler would start at the instant of an access
runs first (the access waits for it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

# Indices of run_window's `totals`, summed over threads.
ACCESSES, TLB_HITS, TLB_MISSES, STALE_HITS, STALE_WRITES, LOST_WRITES, FAULTS, STALLS = range(8)
TOTALS = 8

# Indices of run_window's `threads` rows: each thread's state, read and written.
NEXT_K, NEXT_T, STALLED_ON, STALL_START, STALL_INTERVAL, IPI_FREE = range(6)
THREAD_FIELDS = 6

_OPEN = np.iinfo(np.int64).max
_FULL = -1
_NOTHING = -2
_ALSO = -3


@njit(cache=True, nogil=True)
def _interval(iv_key: npt.NDArray[np.int64], folio: int, time: int, shift: int) -> int:
    """The window's last interval of ``folio`` that began at or before ``time``, or -1: a
    binary search over keys folio << shift | start."""
    query = (folio << shift) | time
    lo, hi = 0, iv_key.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if iv_key[mid] <= query:
            lo = mid + 1
        else:
            hi = mid
    slot = lo - 1
    if slot < 0 or (iv_key[slot] >> shift) != folio:
        return -1
    return slot


@njit(cache=True, nogil=True)
def _apply_flushes(tlb: npt.NDArray[np.bool_], cpu: int, fl_cpu: npt.NDArray[np.int64],
                   fl_folio: npt.NDArray[np.int64], fl_time: npt.NDArray[np.int64],
                   position: int, until: int) -> int:
    """Apply this CPU's flush records from ``position`` on with time <= ``until``; returns the
    position of the first record not applied."""
    size = fl_time.size
    while position < size and fl_time[position] <= until:
        if fl_cpu[position] == cpu:
            folio = fl_folio[position]
            if folio == _FULL:
                tlb[:] = False
            elif folio >= 0:
                tlb[folio] = False
            elif folio <= _ALSO:
                tlb[_ALSO - folio] = False
        position += 1
    return position


@njit(cache=True, nogil=True)
def _next_delivery(cpu: int, fl_cpu: npt.NDArray[np.int64], fl_folio: npt.NDArray[np.int64],
                   position: int) -> int:
    """The position of this CPU's next delivery (an IPI: not an ALSO record) from
    ``position`` on, or the end."""
    size = fl_cpu.size
    while position < size and not (fl_cpu[position] == cpu and fl_folio[position] > _ALSO):
        position += 1
    return position


@njit(cache=True, nogil=True)
def run_window(cpus: npt.NDArray[np.int64], threads: npt.NDArray[np.int64],
               tlb: npt.NDArray[np.bool_],
               use_last_k: bool, last_k: npt.NDArray[np.int64], use_fill: bool,
               fill: npt.NDArray[np.int64], page_folio: npt.NDArray[np.int32],
               pages: npt.NDArray[np.int64], writes: npt.NDArray[np.bool_],
               fl_cpu: npt.NDArray[np.int64], fl_folio: npt.NDArray[np.int64],
               fl_time: npt.NDArray[np.int64], iv_key: npt.NDArray[np.int64],
               iv_end: npt.NDArray[np.int64], iv_copy: npt.NDArray[np.int64],
               iv_index: npt.NDArray[np.int64], all_iv_end: npt.NDArray[np.int64],
               shift: int, stop: int, interval: int, refill_ns: int, ipi_ns: int,
               fault_ns: int, capacity: int, totals: npt.NDArray[np.int64],
               stalls: npt.NDArray[np.int64]) -> int:
    """Every access of every thread before ``stop``; returns how many stalls it wrote.

    ``threads[i]`` is thread i's state (NEXT_K ...): every IPI before the window has been
    handled (or slept through) already, and every one in it is still to come. Row i of
    ``pages`` and ``writes`` holds thread i's draws from its NEXT_K on; of ``tlb``, ``last_k``
    and ``fill`` its TLB, when each entry was last used (in accesses) and when it was filled.
    The fl_* arrays are the window's flush records, in time order; the iv_* arrays its
    intervals, sorted by folio << shift | start; ``all_iv_end`` every interval's end (a stall
    waits on an interval by its index in the whole log). Stall lengths go to ``stalls``,
    counts to ``totals``."""
    written = 0
    for i in range(cpus.size):
        cpu = cpus[i]
        row = tlb[i]
        state = threads[i]
        first_k = state[NEXT_K]
        k = first_k
        t = state[NEXT_T]
        free = state[IPI_FREE]
        applied = 0  # flush records before this position are applied to `row`
        delivery = _next_delivery(cpu, fl_cpu, fl_folio, 0)
        while True:
            folio = state[STALLED_ON]
            if folio >= 0:
                remapped = all_iv_end[state[STALL_INTERVAL]]
                if remapped == _OPEN:
                    break
                resume = max(state[STALL_START] + fault_ns, remapped)
                if resume >= stop:
                    break
                applied = _apply_flushes(row, cpu, fl_cpu, fl_folio, fl_time, applied, resume)
                row[folio] = True  # the retried access walks the new PTE and refills
                if use_fill:
                    fill[i, folio] = resume
                if use_last_k:
                    last_k[i, folio] = k - 1
                totals[ACCESSES] += 1
                totals[TLB_MISSES] += 1
                totals[STALLS] += 1
                stalls[written] = resume - state[STALL_START]
                written += 1
                state[STALLED_ON] = -1
                state[STALL_INTERVAL] = -1
                t = resume + refill_ns + interval
                # IPIs handled while it slept delayed nothing.
                while delivery < fl_time.size and fl_time[delivery] <= resume:
                    delivery = _next_delivery(cpu, fl_cpu, fl_folio, delivery + 1)
            # Handlers run before the access they reach first; they do not nest.
            while delivery < fl_time.size:
                begin = max(fl_time[delivery], free)
                if begin > t:
                    break
                t += ipi_ns
                free = begin + ipi_ns
                delivery = _next_delivery(cpu, fl_cpu, fl_folio, delivery + 1)
            if t >= stop:
                break
            if k - first_k >= pages.shape[1]:
                raise ValueError("more accesses in the window than were drawn")
            folio = page_folio[pages[i, k - first_k]]
            applied = _apply_flushes(row, cpu, fl_cpu, fl_folio, fl_time, applied, t)
            held = row[folio] and (not use_last_k or k - last_k[i, folio] <= capacity)
            slot = _interval(iv_key, folio, t, shift)
            unmapped = slot >= 0 and t < iv_end[slot]
            if held:
                totals[TLB_HITS] += 1
                if unmapped:  # a stale entry: the old page, still reachable
                    totals[STALE_HITS] += 1
                    if writes[i, k - first_k]:
                        totals[STALE_WRITES] += 1
                        if t >= iv_copy[slot]:  # after folio_copy() began: the write is lost
                            totals[LOST_WRITES] += 1
            elif unmapped:  # a migration entry: the thread sleeps in migration_entry_wait()
                totals[FAULTS] += 1
                state[STALLED_ON] = folio
                state[STALL_START] = t
                state[STALL_INTERVAL] = iv_index[slot]
                k += 1
                continue
            else:
                totals[TLB_MISSES] += 1
                if use_fill:
                    fill[i, folio] = t
            totals[ACCESSES] += 1
            row[folio] = True
            if use_last_k:
                last_k[i, folio] = k
            k += 1
            t += interval if held else interval + refill_ns
        # IPIs left in this window: a sleeping thread meets them asleep; a running one takes
        # them before its next access (which lies at or past the window's end).
        while delivery < fl_time.size:
            if state[STALLED_ON] < 0:
                begin = max(fl_time[delivery], free)
                t += ipi_ns
                free = begin + ipi_ns
            delivery = _next_delivery(cpu, fl_cpu, fl_folio, delivery + 1)
        _apply_flushes(row, cpu, fl_cpu, fl_folio, fl_time, applied, stop - 1)
        state[NEXT_K] = k
        state[NEXT_T] = t
        state[IPI_FREE] = free
    return written
