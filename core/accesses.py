"""The workload's accesses, one by one, compiled: the inner loop of core/workload.py.

Every running thread makes its accesses in time order through its CPU's TLB, taking each
shootdown IPI its CPU handles before its next access, and sleeping in migration_entry_wait() when
it walks into a migration entry. Simulating that access by access is the model at its plainest,
and compiled (numba) it costs a hundred nanoseconds or so an access; the same loop in Python
costs microseconds. ``Workload.advance_to`` draws the pages, cuts the timeline into the window's
arrays and calls :func:`run_window` once per window for all threads.

Loading numba and the compiled code costs most of a second, more than a short run costs in
Python, so :func:`runner` hands out the plain function until a process has simulated enough
accesses to repay it (or was asked to compile), and the compiled one from then on. Both are the
same source and give the same results (tests run both).

Ties, as the model has always ordered them: a flush handled at the same nanosecond as an access
comes first (the access misses), and an IPI whose handler would start at the instant of an
access runs first (the access waits for it).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from core.timeline import ALSO, FULL, OPEN

# Indices of run_window's `totals`, summed over threads.
ACCESSES, TLB_HITS, TLB_MISSES, STALE_HITS, STALE_WRITES, LOST_WRITES, FAULTS, STALLS = range(8)
TOTALS = 8

# Indices of run_window's `threads` rows: each thread's state, read and written.
NEXT_K, NEXT_T, STALLED_ON, STALL_START, STALL_INTERVAL, IPI_FREE = range(6)
THREAD_FIELDS = 6



def _interval(iv_key: npt.NDArray[np.int64], first_slot: npt.NDArray[np.int32], folio: int,
              time: int, shift: int) -> int:
    """The window's last interval of ``folio`` that began at or before ``time``, or -1.
    ``first_slot`` gives each folio's first interval in ``iv_key`` (folio << shift | start,
    sorted), or -1: most accesses touch a folio with none."""
    slot = int(first_slot[folio])
    if slot < 0:
        return -1
    query = (folio << shift) | time
    if iv_key[slot] > query:
        return -1
    while slot + 1 < iv_key.size and iv_key[slot + 1] <= query:
        slot += 1
    return slot


def _apply_flushes(tlb: npt.NDArray[np.bool_], cpu: int, fl_cpu: npt.NDArray[np.int64],
                   fl_folio: npt.NDArray[np.int64], fl_time: npt.NDArray[np.int64],
                   position: int, until: int) -> int:
    """Apply this CPU's flush records from ``position`` on with time <= ``until``; returns the
    position of the first record not applied."""
    size = fl_time.size
    while position < size and fl_time[position] <= until:
        if fl_cpu[position] == cpu:
            folio = fl_folio[position]
            if folio == FULL:
                tlb[:] = False
            elif folio >= 0:
                tlb[folio] = False
            elif folio <= ALSO:
                tlb[ALSO - folio] = False
            # (NOTHING: a delivery to a CPU that was already current invalidates nothing.)
        position += 1
    return position


def _next_delivery(cpu: int, fl_cpu: npt.NDArray[np.int64], fl_folio: npt.NDArray[np.int64],
                   position: int) -> int:
    """The position of this CPU's next delivery (an IPI: not an ALSO record) from
    ``position`` on, or the end."""
    size = fl_cpu.size
    while position < size and not (fl_cpu[position] == cpu and fl_folio[position] > ALSO):
        position += 1
    return position


def run_window(cpus: npt.NDArray[np.int64], threads: npt.NDArray[np.int64],
               tlb: npt.NDArray[np.bool_],
               use_last_k: bool, last_k: npt.NDArray[np.int32], k_base: int, use_fill: bool,
               fill: npt.NDArray[np.int64], page_folio: npt.NDArray[np.int32],
               pages: npt.NDArray[np.int64], writes: npt.NDArray[np.bool_],
               fl_cpu: npt.NDArray[np.int64], fl_folio: npt.NDArray[np.int64],
               fl_time: npt.NDArray[np.int64], iv_key: npt.NDArray[np.int64],
               iv_end: npt.NDArray[np.int64], iv_copy: npt.NDArray[np.int64],
               iv_index: npt.NDArray[np.int64], all_iv_end: npt.NDArray[np.int64],
               first_slot: npt.NDArray[np.int32], shift: int, stop: int, interval: int,
               refill_ns: int, ipi_ns: int, fault_ns: int, capacity: int,
               totals: npt.NDArray[np.int64], stalls: npt.NDArray[np.int64]) -> int:
    """Every access of every thread before ``stop``; returns how many stalls it wrote.

    ``threads[i]`` is thread i's state (NEXT_K ...): every IPI before the window has been
    handled (or slept through) already, and every one in it is still to come. Row i of
    ``pages`` and ``writes`` holds thread i's draws from its NEXT_K on; of ``tlb``, ``last_k``
    and ``fill`` its TLB, when each entry was last used (in accesses, less ``k_base``) and when
    it was filled.
    The fl_* arrays are the window's flush records, in time order; the iv_* arrays its
    intervals, sorted by folio << shift | start; ``all_iv_end`` every interval's end (a stall
    waits on an interval by its index in the whole log). ``first_slot`` is scratch, one -1 per
    folio, and is left so. Stall lengths go to ``stalls``, counts to ``totals``."""
    for slot in range(iv_key.size - 1, -1, -1):
        first_slot[iv_key[slot] >> shift] = slot
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
                if remapped == OPEN:
                    break
                resume = max(state[STALL_START] + fault_ns, remapped)
                if resume >= stop:
                    break
                applied = _apply_flushes(row, cpu, fl_cpu, fl_folio, fl_time, applied, resume)
                row[folio] = True  # the retried access walks the new PTE and refills
                if use_fill:
                    fill[i, folio] = resume
                if use_last_k:
                    last_k[i, folio] = k - 1 - k_base
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
            folio = int(page_folio[pages[i, k - first_k]])
            applied = _apply_flushes(row, cpu, fl_cpu, fl_folio, fl_time, applied, t)
            held = row[folio] and (not use_last_k
                                   or k - k_base - int(last_k[i, folio]) <= capacity)
            slot = _interval(iv_key, first_slot, folio, t, shift)
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
                last_k[i, folio] = k - k_base
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
    for slot in range(iv_key.size):
        first_slot[iv_key[slot] >> shift] = -1
    return written


# Accesses simulated in Python after which the compiled loop pays for its loading (about 0.7 s,
# against about 2 us an access in Python).
COMPILE_AFTER = 300_000
_interpreted = 0
_compiled: Callable[..., int] | None = None
_loading = threading.Lock()


def compiled() -> Callable[..., int]:
    """run_window compiled: numba imported, the machine code loaded from numba's cache on disk
    (compiled the first time) and run once on a window of one access, so that the first real
    window does not pay for it. Safe to call from a thread (the app loads it in the
    background)."""
    global _compiled
    with _loading:
        if _compiled is None:
            from numba import njit
            from numba.extending import register_jitable

            for helper in (_interval, _apply_flushes, _next_delivery):
                register_jitable(helper)  # compiled into run_window where it calls them
            function = njit(cache=True, nogil=True)(run_window)
            function(*_one_access())
            _compiled = function
            # numba's import leaves ~75,000 objects that live as long as the process: no
            # garbage collection need walk them again (see core.engine.tune_collector).
            gc.freeze()
    return _compiled


def _one_access() -> tuple[Any, ...]:
    """run_window's arguments for one thread making one access, typed as Workload passes them
    (numba compiles a version per argument type)."""

    def ints(*shape: int) -> npt.NDArray[np.int64]:
        return np.zeros(shape, dtype=np.int64)

    threads = ints(1, THREAD_FIELDS)
    threads[0, STALLED_ON] = threads[0, STALL_INTERVAL] = -1
    return (ints(1), threads, np.zeros((1, 1), dtype=bool), True,
            np.zeros((1, 1), dtype=np.int32), 0, True, ints(1, 1),
            np.zeros(1, dtype=np.int32), ints(1, 1), np.zeros((1, 1), dtype=bool),
            ints(0), ints(0), ints(0), ints(0), ints(0), ints(0), ints(0), ints(1),
            np.full(1, -1, dtype=np.int32), 40, 1, 1, 0, 0, 0, 1, ints(TOTALS), ints(1))


def runner(accesses: int) -> Callable[..., Any]:
    """The run_window to use for a window of up to ``accesses`` accesses: the plain one until
    the process has simulated COMPILE_AFTER accesses in Python (or has loaded the compiled one
    anyway), then the compiled one."""
    global _interpreted
    if _compiled is None and _interpreted + accesses <= COMPILE_AFTER:
        _interpreted += accesses
        return run_window
    return compiled()
