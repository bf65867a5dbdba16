"""The engine's event vocabulary: what happened, when, on which CPU, to which folio.

Events stay close to the kernel's tracepoints (``migrate:*``, ``tlb:tlb_flush``,
``irq_vectors:call_function*``) so that a recorded trace and a simulated run can be drawn by the
same widgets; the few steps that have no tracepoint (a copy, a failed attempt) are events too,
each named after the kernel function it mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from core.folios import PMD_PAGES


class EventKind(IntEnum):
    """Kinds of engine events."""

    MIGRATE_START = 0  # trace: mm_migrate_pages_start
    BATCH_START = 1  # a batch is cut off the `from` list (no tracepoint)
    UNMAP = 2  # PTEs replaced by migration entries; trace: set_migration_pte per PTE
    UNMAP_FAIL = 3  # migrate_folio_unmap() gave up: -EAGAIN, -EBUSY or -ENOMEM
    WAIT = 4  # a synchronous pass sleeps on the folio lock or on writeback
    FLUSH_SEND = 5  # initiator starts a shootdown round; trace: tlb_flush reason 4
    IPI_RECV = 6  # one target handles the IPI; trace: call_function_entry + tlb_flush reason 1
    FLUSH_DONE = 7  # every target acknowledged; the initiator stops spinning
    COPY = 8  # folio_copy() from the old to the new folio
    MOVE_FAIL = 9  # migrate_folio_move() got -EAGAIN (extra reference): stays unmapped
    REMAP = 10  # migration entries point at the new folio, src unlocked; trace: remove_migration_pte
    RESTORE = 11  # undo: migration entries point back at the old folio, src unlocked
    SPLIT = 12  # a THP is split into base pages (try_split_folio)
    MIGRATE_END = 13  # trace: mm_migrate_pages with the stats
    # The initiating CPU runs flush_tlb_func() itself because it is in the cpumask being flushed
    # (NUMA balancing: a thread of the process migrates; or a CPU still lazily in mm_cpumask).
    # ``pages`` as traced (1, -1, 0); ``arg`` the tlb_flush reason: 2 local shootdown (a batch
    # flush, mm == NULL) or 3 local mm shootdown (flush_tlb_mm_range).
    LOCAL_FLUSH = 14
    # NUMA balancing (caller = numa-balancing). task_numa_work() on a thread's CPU made the next
    # stretch of the map PROT_NONE (change_prot_numa); ``pages`` base pages. No tracepoint.
    NUMA_SCAN = 15
    # do_numa_page(): a thread touched a PROT_NONE page (a NUMA hinting fault). ``arg`` 1: the
    # folio is already on the thread's node (the PTE is simply restored), 0: it is misplaced
    # and the thread migrates it. No tracepoint.
    NUMA_FAULT = 16


class Phase(IntEnum):
    """Where the migrating task is, for the phase strip and `step phase`."""

    IDLE = 0
    UNMAP = 1
    FLUSH = 2
    MOVE = 3
    UNDO = 4
    DONE = 5


class Errno(IntEnum):
    """Return codes of the kernel's per-folio steps (negated in the kernel)."""

    OK = 0
    EAGAIN = 11
    ENOMEM = 12
    EBUSY = 16


class RoundKind(IntEnum):
    """Why a shootdown round is sent: the code path that flushes (FLUSH_* events carry it)."""

    NONE = 0
    PTE = 1  # 6.2: ptep_clear_flush() for one PTE (serial mode)
    PMD = 2  # pmdp_invalidate() of a PMD-mapped THP: flushed at once in both shapes
    BATCH = 3  # 6.3: try_to_unmap_flush() after a batch's unmap loop (TTU_BATCH_FLUSH)
    FALLBACK = 4  # 6.3: the one-by-one sync fallback, ptep_clear_flush() per PTE
    PROT_NONE = 5  # NUMA balancing: change_prot_numa() flushing the stretch it made PROT_NONE


ROUND_KIND_TEXT: dict[RoundKind, str] = {
    RoundKind.PTE: "per-PTE flush (ptep_clear_flush)",
    RoundKind.PMD: "THP's PMD, flushed at once (pmdp_invalidate)",
    RoundKind.BATCH: "the batch's deferred flush (try_to_unmap_flush)",
    RoundKind.FALLBACK: "sync fallback, per-PTE flush (ptep_clear_flush)",
    RoundKind.PROT_NONE: "NUMA scan made the range PROT_NONE (change_prot_numa)",
}


class WaitReason(IntEnum):
    """What a WAIT event waits for."""

    LOCK = 1
    WRITEBACK = 2


class Event(NamedTuple):
    """One thing that happened in the simulation.

    ``pages`` is the number of pages of a flush (-1 = full flush, as ftrace prints it) or the number
    of PTEs of an unmap/remap; ``arg`` carries the errno, wait reason or round size by kind;
    ``targets`` lists the CPUs of a shootdown round.

    Like a tracepoint, an event carries what a reader needs to print it without the engine: the
    folio's ``node`` and ``order`` at that moment, its first base ``page`` (the address: page
    index in the workload's map), and for an unmap or remap the index of the first PTE it covers
    (``pte``). ``round_kind`` says which code path a FLUSH_* or IPI_RECV event belongs to.
    """

    seq: int
    time_ns: int
    kind: EventKind
    cpu: int
    folio: int = -1
    pages: int = 0
    arg: int = 0
    phase: Phase = Phase.IDLE
    batch: int = 0  # the unit: batch k of the call (serial mode: folio k of the call)
    pass_: int = 0
    sync: bool = False  # part of a synchronous one-by-one pass (migrate_pages_sync fallback)
    targets: tuple[int, ...] = ()
    move: int = 0
    phase_id: int = 0  # changes whenever the task enters a new phase (for stepping by phase)
    thp: tuple[int, int, int] = (0, 0, 0)  # MIGRATE_END: nr_thp_succeeded, _failed, _split
    node: int = -1  # the folio's node when the event happened (-1: no folio)
    order: int = 0  # the folio's order
    page: int = -1  # the folio's first base page in the workload's map (-1: no folio)
    pte: int = 0  # UNMAP/REMAP/RESTORE: index of the first PTE this event covers
    round_kind: RoundKind = RoundKind.NONE  # FLUSH_SEND/IPI_RECV/FLUSH_DONE: why the round is sent
    serial: bool = False  # made by 6.2's serial path (then ``batch`` counts folios)


KERNEL_FUNCTION: dict[EventKind, str] = {
    EventKind.MIGRATE_START: "migrate_pages",
    EventKind.BATCH_START: "migrate_pages",
    EventKind.UNMAP: "migrate_folio_unmap → try_to_migrate_one",
    EventKind.UNMAP_FAIL: "migrate_folio_unmap",
    EventKind.WAIT: "folio_lock / folio_wait_writeback",
    EventKind.FLUSH_SEND: "native_flush_tlb_multi",
    EventKind.IPI_RECV: "flush_tlb_func",
    EventKind.FLUSH_DONE: "smp_call_function_many_cond",
    EventKind.COPY: "migrate_folio_move → move_to_new_folio → folio_copy",
    EventKind.MOVE_FAIL: "folio_migrate_mapping",
    EventKind.REMAP: "remove_migration_ptes",
    EventKind.RESTORE: "migrate_folio_undo_src → remove_migration_ptes",
    EventKind.SPLIT: "try_split_folio",
    EventKind.MIGRATE_END: "migrate_pages",
    EventKind.LOCAL_FLUSH: "flush_tlb_func",
    EventKind.NUMA_SCAN: "task_numa_work → change_prot_numa",
    EventKind.NUMA_FAULT: "do_numa_page → migrate_misplaced_folio",
}


@dataclass(frozen=True, slots=True)
class Mechanism:
    """How a shootdown round is done, in the words the screens and explanations use. Each flush
    mechanism (core/flush.py) has one; a round's events are read through it."""

    name: str  # e.g. "x86 IPIs"
    interrupts: bool  # targets take an interrupt and run a handler (IPIs); else a broadcast
    title: str  # what the shootdown panel is called
    issue: str  # the invalidation per page ("INVLPG" on each target; a broadcast instruction)
    wait: str  # what the sender waits on ("acks"; "DSB ISH"; "TLBSYNC")
    send: str  # the kernel function of an immediate round (one page, one PMD)
    send_batch: str  # the kernel function of a batch's round
    done: str  # the kernel function that returns when the round is complete


IPIS = Mechanism("x86 IPIs", True, "TLB shootdown IPIs", "INVLPG", "acks",
                 "native_flush_tlb_multi", "native_flush_tlb_multi", "smp_call_function_many_cond")


def kernel_function(event: Event, mechanism: Mechanism = IPIS) -> str:
    """The kernel function an event mirrors, under this flush mechanism."""
    if event.kind is EventKind.FLUSH_SEND:
        return mechanism.send_batch if event.round_kind is RoundKind.BATCH else mechanism.send
    if event.kind is EventKind.FLUSH_DONE:
        return mechanism.done
    return KERNEL_FUNCTION.get(event.kind, "")


def explain(event: Event, mechanism: Mechanism = IPIS) -> str:
    """One or two sentences saying what an event is, naming the kernel function it mirrors; a
    round's events in the words of its flush ``mechanism``."""
    kind = event.kind
    if not mechanism.interrupts and kind in (EventKind.UNMAP, EventKind.FLUSH_SEND,
                                             EventKind.FLUSH_DONE):
        return _explain_broadcast(event, mechanism)
    folio = f"folio {event.folio}"
    if kind is EventKind.MIGRATE_START:
        return ("migrate_pages() starts: the folios on the source node were isolated into the "
                "`from` list (mm_migrate_pages_start).")
    if kind is EventKind.BATCH_START:
        return (f"migrate_pages() cuts batch {event.batch}: folios up to NR_MAX_BATCHED_MIGRATION "
                f"base pages ({event.pages} pages here); the folio that crosses the limit is included.")
    if kind is EventKind.UNMAP:
        if event.pages and event.arg:
            return (f"try_to_migrate_one() replaced the PTEs of {folio} with migration entries and "
                    "deferred the flush (TTU_BATCH_FLUSH): other CPUs may still use stale TLB "
                    "entries until try_to_unmap_flush().")
        if event.order >= 9:
            return (f"pmdp_invalidate() cleared and flushed {folio}'s PMD; "
                    "set_pmd_migration_entry() now installs the migration entry.")
        return (f"ptep_clear_flush() cleared and flushed a PTE of {folio}; try_to_migrate_one() "
                "now installs the migration entry (set_migration_pte).")
    if kind is EventKind.UNMAP_FAIL:
        reason = {
            Errno.EAGAIN: "the folio lock was busy (folio_trylock failed): -EAGAIN, retried next pass",
            Errno.EBUSY: "the folio is under writeback: -EBUSY, given up in this async pass",
            Errno.ENOMEM: "get_new_folio() found no free destination folio: -ENOMEM",
        }.get(Errno(event.arg), "failed")
        return f"migrate_folio_unmap() on {folio}: {reason}."
    if kind is EventKind.WAIT:
        what = "the folio lock (folio_lock)" if event.arg == WaitReason.LOCK else \
            "writeback to finish (folio_wait_writeback)"
        return f"A synchronous pass may block: the task sleeps on {what} for {folio}."
    if kind is EventKind.FLUSH_SEND:
        scope = "a FULL flush" if event.pages == -1 else \
            "one INVLPG of a 2 MiB (PMD) entry, 512 pages" if event.pages == PMD_PAGES else \
            f"INVLPG of {event.pages} page(s)"
        return (f"native_flush_tlb_multi(): one shootdown round, {len(event.targets)} IPI(s) asking "
                f"the other non-lazy CPUs of mm_cpumask for {scope}; the initiator spins until "
                "all acknowledge.")
    if kind is EventKind.IPI_RECV:
        cpu = f"flush_tlb_func() on CPU {event.cpu}"
        if event.pages == 0:
            return (f"{cpu} finds its TLB generation already the mm's (an earlier full flush "
                    "caught it up): nothing to flush; it only acknowledges the IPI.")
        if event.pages == -1 and event.round_kind is not RoundKind.BATCH:
            return (f"{cpu} is more than one TLB generation behind (deferred unmaps bumped the "
                    "mm's tlb_gen), so instead of one INVLPG it drops every TLB entry of the "
                    "process, and acknowledges.")
        scope = "drops every TLB entry of the process" if event.pages == -1 else \
            "invalidates one entry (INVLPG)"
        return f"{cpu} {scope} and acknowledges the IPI."
    if kind is EventKind.FLUSH_DONE:
        return ("All targets acknowledged: no CPU can reach the old page through its TLB any more, "
                "so copying is now safe.")
    if kind is EventKind.COPY:
        return (f"move_to_new_folio() → folio_copy(): {folio}'s {event.pages} page(s) are "
                "copied to the destination node.")
    if kind is EventKind.MOVE_FAIL:
        return (f"folio_migrate_mapping() saw an unexpected reference on {folio}: -EAGAIN. It "
                "stays unmapped and locked until the next move pass.")
    if kind is EventKind.REMAP:
        return (f"remove_migration_ptes() points {folio}'s PTEs at the new folio and unlocks the "
                "old one, waking any thread waiting in migration_entry_wait().")
    if kind is EventKind.RESTORE:
        return (f"Migration of {folio} failed: remove_migration_ptes(src, src) restores its old "
                "mapping and the folio goes back to the LRU (putback_movable_pages).")
    if kind is EventKind.SPLIT:
        return f"try_split_folio(): THP {folio} is split into base pages, retried after the batch."
    if kind is EventKind.NUMA_SCAN:
        return (f"task_numa_work() on CPU {event.cpu} makes {event.pages} more page(s) PROT_NONE "
                "(change_prot_numa) and flushes them from every TLB: the next touch of each "
                "takes a NUMA hinting fault.")
    if kind is EventKind.NUMA_FAULT:
        if event.arg:
            return (f"A NUMA hinting fault on CPU {event.cpu}: {folio} is already on this "
                    "node, so do_numa_page() only restores its PTE.")
        return (f"A NUMA hinting fault on CPU {event.cpu}: {folio} lives on the other node; "
                "the faulting thread migrates it itself (migrate_misplaced_folio, one folio, "
                "MIGRATE_ASYNC). Its PTE is PROT_NONE, not accessible, so nothing needs "
                "flushing.")
    if kind is EventKind.LOCAL_FLUSH:
        what = {0: "finds its own TLB current: nothing to flush",
                1: "invalidates the page in its own TLB (INVLPG)",
                -1: "flushes its own TLB for the process"}.get(event.pages, "flushes locally")
        return (f"flush_tlb_func() runs on the initiating CPU {event.cpu}, which is in the "
                f"cpumask being flushed: it {what}.")
    return ("migrate_pages() returns and reports its stats (mm_migrate_pages): pgmigrate_success, "
            "pgmigrate_fail and the THP counters.")


def _explain_broadcast(event: Event, mechanism: Mechanism) -> str:
    """A round of a broadcast mechanism: no IPI, no handler; the sender waits."""
    folio = f"folio {event.folio}"
    issue, wait = mechanism.issue, mechanism.wait
    if event.kind is EventKind.UNMAP:
        if event.pages and event.arg:
            return (f"try_to_migrate_one() replaced the PTEs of {folio} with migration entries and "
                    f"issued a broadcast {issue} per page without waiting "
                    "(arch_tlbbatch_add_pending): other CPUs may still use stale TLB entries "
                    f"until the {wait} in try_to_unmap_flush().")
        return (f"try_to_migrate_one() cleared {folio}'s entry and flushed it at once: a broadcast "
                f"{issue}, then {wait} waits until every CPU has dropped it.")
    if event.kind is EventKind.FLUSH_SEND:
        batch = event.round_kind is RoundKind.BATCH
        what = "every broadcast the batch issued" if batch else f"the {issue}"
        function = mechanism.send_batch if batch else mechanism.send
        return (f"{function}(): {wait} waits until {what} has completed on every CPU. No IPI: "
                "no other CPU is interrupted or runs a handler.")
    return (f"{wait} completed: no CPU can reach the old page through its TLB any more, so "
            "copying is now safe.")
