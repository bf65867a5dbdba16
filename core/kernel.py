"""What the migrating task shares between Linux's two migrate_pages() shapes.

Functions are named after the kernel functions they mirror (mm/migrate.c, mm/rmap.c,
arch/x86/mm/tlb.c) and follow their control flow, passes and stats accounting. Each is a
generator that yields an :class:`~core.events.Event` as each step *has happened*: the state it
changed is already changed when the event is seen.

This module holds the task's state and the steps both shapes use: locking, ``try_to_migrate()``,
shootdown rounds, copy and remap, undo. ``core.migrate_batched`` (Linux 6.3) and
``core.migrate_serial`` (Linux 6.2) build on it; ``core.migrate`` drives a whole run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from core.copy import engine as copy_engine
from core.events import Errno, Event, EventKind, Phase, RoundKind, WaitReason
from core.flush import X86Ipi, flush_model
from core.folios import FolioState, FolioTable
from core.scenario import Mode, Scenario
from core.stats import Counters, MigrateStats, Spend
from core.timeline import FULL, NOTHING, Timeline
from core.tlb import Machine, RoundPlan

# mm/migrate.c retry limits
NR_MAX_MIGRATE_PAGES_RETRY = 10  # passes of 6.2's migrate_pages() and of async callers
NR_MAX_MIGRATE_ASYNC_RETRY = 3  # the first, batched async attempt of migrate_pages_sync()
NR_MAX_MIGRATE_SYNC_RETRY = NR_MAX_MIGRATE_PAGES_RETRY - NR_MAX_MIGRATE_ASYNC_RETRY  # 7

MIGRATEPAGE_SUCCESS = 0
MIGRATEPAGE_UNMAP = 1

Steps = Generator[Event, None, int]  # a kernel function: yields events, returns its rc


class Stage(IntEnum):
    """Where the outer loop is."""

    START = 0  # next unit: mm_migrate_pages_start of a new migrate_pages() call
    BODY = 1  # next unit: a batch (batched) or one folio (serial)
    END = 2  # next unit: mm_migrate_pages and the vm event counts
    DONE = 3


_make_event = tuple.__new__
_NO_THP = (0, 0, 0)


def _chance(probability: float, seed: int, *keys: int) -> bool:
    """A deterministic coin: the same (seed, keys) always gives the same answer."""
    if probability <= 0.0:
        return False
    if probability >= 1.0:
        return True
    x = seed & 0xFFFFFFFFFFFFFFFF
    for key in keys:  # splitmix64 over the keys
        x = (x + 0x9E3779B97F4A7C15 + key) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return (x >> 11) * (1.0 / (1 << 53)) < probability


class _Coin(IntEnum):
    ENOMEM = 1
    LOCK = 2
    WRITEBACK = 3
    REFCOUNT = 4


@dataclass
class UnitTally:
    """How far the unit in flight (a batch; in serial mode one folio) has got. Updated as each
    event is made, so a view taken at an event shows exactly that event's effect."""

    active: bool = False  # False between units: a migrate_pages() call starts or ends
    folios: int = 0
    pages: int = 0
    unmapped: int = 0  # folios whose unmap completed (batched: in the batch's async passes)
    moved: int = 0  # folios remapped on the destination
    retries: int = 0  # -EAGAIN results
    rounds: int = 0  # shootdown rounds sent for the unit (batched: not the sync fallback's)
    round_targets: int = 0  # the latest of those rounds: its targets,
    round_acked: int = 0  # acknowledgements so far,
    round_full: bool = False  # whether it is a full flush,
    round_done: bool = False  # and whether every target has acknowledged
    fallback_folio: int = -1  # batched: the folio the one-by-one sync fallback works on


@dataclass
class TaskState:
    """Everything about the migrating task that a checkpoint must capture (no generators)."""

    mode: Mode
    pending_mode: Mode | None = None
    stage: Stage = Stage.START
    move: int = 0  # index of the current migrate_pages() call (one-way move)
    src: int = 0
    dst: int = 1
    from_list: list[int] = field(default_factory=list)  # the `from` list of this call
    from_pos: int = 0  # folios before this index were taken already
    next_pass: list[int] = field(default_factory=list)  # serial: -EAGAIN folios for the next pass
    serial_pass: int = 0
    serial_retry_pages: int = 0  # serial: pages that got -EAGAIN in the current pass
    serial_thp_retry: int = 0
    ret: list[int] = field(default_factory=list)  # ret_folios
    split: list[int] = field(default_factory=list)  # split_folios
    stats: MigrateStats = field(default_factory=MigrateStats)
    batch: int = 0  # batches cut in this call
    batches_planned: int = 0
    units: int = 0  # units completed in this call (serial: folios attempted)
    now: int = 0  # the task's clock, ns
    seq: int = 0  # events emitted
    phase: Phase = Phase.IDLE
    phase_id: int = 0
    pass_: int = 0
    sync: bool = False
    ubc_required: bool = False  # tlb_ubc.flush_required
    ubc_folios: list[int] = field(default_factory=list)  # folios whose flush is deferred
    attempts: dict[int, int] = field(default_factory=dict)  # per folio, this call
    busy_until: int = 0  # no event comes before this time (the task is copying, waiting, ...)
    round_targets: tuple[int, ...] = ()  # the shootdown round in flight
    round_acked: int = 0
    round_pages: int = 0
    round_kind: RoundKind = RoundKind.NONE
    round_flushed: list[int] = field(default_factory=list)  # per acked target: pages traced
    unit: UnitTally = field(default_factory=UnitTally)
    # x86 TLB generations (arch/x86/mm/tlb.c): the mm's tlb_gen, bumped by every flush request
    # (inc_mm_tlb_gen), and per CPU the generation its TLB has caught up to.
    mm_tlb_gen: int = 0
    cpu_tlb_gen: dict[int, int] = field(default_factory=dict)
    round_sender: int = -1  # the CPU that sent the round in flight (-1: the initiator)
    # NUMA balancing (core/numa.py): steps planned for one scan period ahead, as a heap of
    # (time, order, step); the scanner's place; which folios are being migrated until when.
    numa_steps: list[Any] = field(default_factory=list)
    numa_order: int = 0
    numa_next_scan: int = 0
    numa_scans: int = 0
    numa_pass: int = 0  # mm->numa_scan_seq: full scans over the map so far
    numa_cursor: int = 0  # mm->numa_scan_offset, in base pages
    numa_calls: int = 0  # migrate_pages() calls so far
    numa_busy: dict[int, int] = field(default_factory=dict)  # folio -> its migration's end
    numa_node: dict[int, int] = field(default_factory=dict)  # folio -> node once planned moves end
    numa_settled: int = 0  # the latest flush or unmap planned: the next scan comes after it
    numa_idle: int = 0  # periods planned since the scanner finished
    numa_gathers: list[tuple[int, int]] = field(default_factory=list)  # scans: (start, flushed)
    # CPU -> the folio its thread is migrating now: from its hinting fault to the call's end
    numa_migrating: dict[int, int] = field(default_factory=dict)

    def copy(self) -> TaskState:
        """A copy for a checkpoint. Its lists and dicts hold ints and immutable tuples (NUMA
        steps are frozen), so one level of copying is a deep copy, without deepcopy()'s walk
        over every element (a 65,536-folio `from` list made checkpoints the app's main cost)."""
        new = copy.copy(self)
        for name in _CONTAINERS:
            setattr(new, name, copy.copy(getattr(self, name)))
        new.stats = copy.copy(self.stats)
        new.unit = copy.copy(self.unit)
        return new


_CONTAINERS = ("from_list", "next_pass", "ret", "split", "ubc_folios", "attempts",
               "round_flushed", "cpu_tlb_gen", "numa_steps", "numa_busy", "numa_node",
               "numa_gathers", "numa_migrating")


class TaskBase:
    """The migrating task's state, its folio table, timeline and counters, and the shared steps.

    It owns the folio table, the timeline and the counters it changes; the engine reads them.
    """

    def __init__(self, scenario: Scenario, mode: Mode, folios: FolioTable, timeline: Timeline,
                 counters: Counters, machine: Machine) -> None:
        self.scenario = scenario
        self.costs = scenario.costs
        self.policy = scenario.migration
        self.seed = scenario.seed
        self.folios = folios
        self.timeline = timeline
        self.counters = counters
        self.machine = machine
        self.flusher = flush_model(self)
        self.copier = copy_engine(self.costs, scenario.migration.copy_engine)
        self.s = TaskState(mode=mode)
        # Runs that look at no IPI receipt (headless, or a race's side that lags) fold the
        # IPI_RECV events of every round that ends before ``fold_before`` (-1: none): their
        # counters, sequence numbers and the unit's progress move as if each had been made, and
        # ``folded`` says how many were not (the engine counts them).
        self.fold_before = -1
        self.folded = 0
        self.s.busy_until = self._isolation_ns(0)
        # Called with the task's clock just before a split rewrites the page -> folio map. The
        # engine uses it to catch the lazy workload up first: accesses made before the split
        # must be classified against the unsplit THP, whatever window they are simulated in.
        self.before_split: Callable[[int], None] | None = None


    def _plain_steps(self) -> bool:
        """Whether every folio ahead takes the plain path, so that a headless run may make its
        steps in bulk (MigrationTask.skip_ahead): no coin can fire (locked at once, no
        writeback, no extra reference, no -ENOMEM), every flush is sent, by IPIs with x86's TLB
        generations, to a mask with CPUs other than the initiator."""
        policy = self.policy
        return (type(self.flusher) is X86Ipi and not policy.skip_flush
                and self.machine.has_remote_cpus and policy.enomem <= 0
                and policy.contention <= 0 and policy.writeback <= 0
                and policy.move_contention <= 0)

    def _moved_in_bulk(self, folios: list[int], unmaps: npt.NDArray[np.int64],
                       copies: npt.NDArray[np.int64], remaps: npt.NDArray[np.int64]
                       ) -> npt.NDArray[np.int64]:
        """The base folios next on the `from` list unmapped, flushed, copied and remapped, made
        at once: the folio table, the timeline's intervals, the attempts, the list's place and
        the call's stats, as the plain path leaves them. Returns the folios as an array."""
        s = self.s
        table = self.folios
        ids = np.asarray(folios, dtype=np.int64)
        table.state[ids] = FolioState.REMAPPED
        table.node[ids] = s.dst
        table.unmapped[ids] = False
        table.flush_pending[ids] = False
        self.timeline.add_moves(ids, unmaps, copies, remaps)
        attempts = s.attempts
        for folio in folios:
            attempts[folio] = attempts.get(folio, 0) + 1
        s.stats.nr_succeeded += len(folios)
        s.from_pos += len(folios)
        return ids

    def _rounds_in_bulk(self, plan: RoundPlan, rounds: int, kind: RoundKind) -> None:
        """``rounds`` shootdown rounds of one plan, sent and acknowledged, made at once: the
        counters flush_round() moves, and every target caught up to the mm's TLB generation."""
        counters = self.counters
        counters.nr_tlb_remote_flush += rounds
        counters.rounds_by_kind[kind.value] += rounds
        counters.nr_tlb_remote_flush_received += rounds * len(plan.targets)
        counters.tlb_shootdowns += rounds * plan.target_mask
        for cpu in plan.targets:
            self.s.cpu_tlb_gen[cpu] = self.s.mm_tlb_gen

    def _book_in_bulk(self, spends: dict[Spend, int]) -> None:
        """Book the time of bulk steps (see _spend); the clock is set by _end_bulk()."""
        time_ns = self.counters.time_ns
        for where, ns in spends.items():
            time_ns[where] += ns

    def _end_bulk(self, events: int, end_ns: int, unit: UnitTally, last: int
                  ) -> tuple[int, Event]:
        """The end of bulk steps that made ``events`` events, the last a REMAP of ``last`` at
        ``end_ns``: the clock, the sequence numbers used, the last unit's tally before its
        last move, and that REMAP, made as _remap() makes it. Returns (events, the REMAP)."""
        s = self.s
        s.now = s.busy_until = end_ns
        s.phase = Phase.MOVE
        s.seq += events - 1
        s.unit = unit
        return events, self._event(EventKind.REMAP, folio=last, pages=1)

    @property
    def fold_receipts(self) -> bool:
        """Whether some rounds now fold their IPI receipts (see fold_before)."""
        return self.fold_before >= 0

    def _new_phase(self, phase: Phase) -> None:
        self.s.phase = phase
        self.s.phase_id += 1

    def _event(self, kind: EventKind, cpu: int | None = None, *, time_ns: int | None = None,
               folio: int = -1, pages: int = 0, arg: int = 0, targets: tuple[int, ...] = (),
               pte: int = 0, round_kind: RoundKind = RoundKind.NONE) -> Event:
        s = self.s
        node, order, page = -1, 0, -1
        if folio >= 0:
            table = self.folios
            node, order, page = int(table.node[folio]), table.orders[folio], \
                table.first_pages[folio]
        serial = s.mode is Mode.SERIAL
        # (tuple.__new__ with the fields in order: the NamedTuple's keyword-taking constructor
        # is a third of the cost of making an event.)
        event = _make_event(Event, (
            s.seq, s.now if time_ns is None else time_ns, kind,
            self.machine.initiator if cpu is None else cpu, folio, pages, arg, s.phase,
            s.units if serial else s.batch, s.pass_, s.sync, targets, s.move,
            s.phase_id, _NO_THP, node, order, page, pte, round_kind, serial,
        ))
        s.seq += 1
        if s.unit.active:
            self._tally(event)
        return event

    def _in_sync_fallback(self) -> bool:
        """The one-by-one sync fallback of migrate_pages_sync(): a batch's own steps are its
        asynchronous passes, so the unit's tally shows the fallback apart (fallback_folio)."""
        return self.s.sync and self.s.mode is Mode.BATCHED

    def _tally(self, event: Event) -> None:
        """Keep the unit's progress in step with the event being made (just made from ``s``)."""
        unit = self.s.unit
        if not unit.active:
            return
        kind = event.kind
        fallback = self._in_sync_fallback()
        if fallback and event.folio >= 0:
            unit.fallback_folio = event.folio
        if kind is EventKind.UNMAP:
            if not fallback and event.pte + event.pages == self._ptes(event.folio):
                unit.unmapped += 1
        elif kind is EventKind.REMAP:
            unit.moved += 1
        elif not fallback:
            if kind is EventKind.FLUSH_SEND:
                unit.rounds += 1
                unit.round_targets, unit.round_acked = len(event.targets), 0
                unit.round_full, unit.round_done = event.pages == -1, False
            elif kind is EventKind.IPI_RECV:
                unit.round_acked += 1
            elif kind is EventKind.FLUSH_DONE:
                unit.round_done = True

    def _isolation_ns(self, node: int) -> int:
        """How long the work before the next migrate_pages() call takes: do_migrate_pages()
        drains the LRU caches, queue_pages_range() walks every page-table entry of the process
        (a PMD-mapped THP is one entry) and isolates the folios now on ``node``."""
        table = self.folios
        alive = table.alive[: table.count]
        here = int(np.count_nonzero(alive & (table.node[: table.count] == node)))
        entries = int(np.count_nonzero(alive))  # one PTE per base page, one PMD per THP...
        large = alive & (table.order[: table.count] > 0) & (table.order[: table.count] < 9)
        # ... and a PTE-mapped large folio has a PTE per page.
        entries += int((np.left_shift(1, table.order[: table.count][large].astype(np.int64))
                        - 1).sum())
        costs = self.costs
        return costs.isolate_call_ns + costs.walk_pte_ns * entries + costs.isolate_folio_ns * here

    def _get_and_lock(self, folio: int, attempt: int, *, may_block: bool,
                      writeback_rc: Errno) -> Steps:
        """get_new_folio(), lock src, check writeback: the start of 6.3's migrate_folio_unmap()
        and of 6.2's __unmap_and_move(). Returns 0, or the negative errno to give up with."""
        s = self.s
        costs = self.costs
        self._spend(Spend.PREPARE, costs.alloc_ns)
        if _chance(self.policy.enomem, self.seed, _Coin.ENOMEM, s.move, folio, attempt):
            self.counters.enomem += 1
            yield self._fail(EventKind.UNMAP_FAIL, folio, Errno.ENOMEM)
            return -Errno.ENOMEM
        self._spend(Spend.PREPARE, costs.lock_ns)
        if _chance(self.policy.contention, self.seed, _Coin.LOCK, s.move, folio, attempt):
            if not may_block:  # folio_trylock() failed and this pass may not sleep
                self.counters.eagain_unmap += 1
                self._count_retry()
                self.folios.state[folio] = FolioState.RETRYING
                yield self._fail(EventKind.UNMAP_FAIL, folio, Errno.EAGAIN)
                return -Errno.EAGAIN
            self.counters.lock_waits += 1
            s.busy_until = s.now + costs.lock_wait_ns
            yield self._event(EventKind.WAIT, folio=folio, arg=WaitReason.LOCK)
            self._spend(Spend.WAIT, costs.lock_wait_ns)
        if _chance(self.policy.writeback, self.seed, _Coin.WRITEBACK, s.move, folio, attempt):
            if not may_block:
                if writeback_rc is Errno.EBUSY:
                    self.counters.ebusy += 1
                else:
                    self.counters.eagain_unmap += 1
                    self._count_retry()
                    self.folios.state[folio] = FolioState.RETRYING
                yield self._fail(EventKind.UNMAP_FAIL, folio, writeback_rc)
                return -writeback_rc
            self.counters.writeback_waits += 1
            s.busy_until = s.now + costs.writeback_wait_ns
            yield self._event(EventKind.WAIT, folio=folio, arg=WaitReason.WRITEBACK)
            self._spend(Spend.WAIT, costs.writeback_wait_ns)
        return 0

    def try_split_folio(self, folio: int) -> Generator[Event, None, list[int]]:
        """Split a large folio after -ENOMEM; the pieces are retried after the batch."""
        if self.before_split is not None:
            self.before_split(self.s.now)
        pieces = self.folios.split(folio)
        for piece in pieces:
            self.s.attempts.pop(piece, None)
        yield self._event(EventKind.SPLIT, folio=folio, pages=len(pieces))
        return pieces

    def migrate_folio_undo_src(self, folio: int, *, will_retry: bool) -> Iterator[Event]:
        """remove_migration_ptes(src, src): the old mapping comes back; src unlocked."""
        s = self.s
        table = self.folios
        self._spend(Spend.MOVE, self.costs.remap_pte_ns * self._ptes(folio))
        table.unmapped[folio] = False
        table.flush_pending[folio] = False
        table.state[folio] = FolioState.RETRYING if will_retry else FolioState.FAILED
        self.timeline.remap(folio, s.now, moved=False)
        yield self._event(EventKind.RESTORE, folio=folio, pages=self._ptes(folio))

    def try_to_migrate(self, folio: int, *, batch_flush: bool) -> Iterator[Event]:
        """try_to_migrate_one() over the folio's mappings.

        PTE-mapped folios: one migration entry per PTE; the flush is deferred when
        should_defer_flush() (TTU_BATCH_FLUSH and another CPU in mm_cpumask), otherwise
        ptep_clear_flush() flushes each PTE at once. A PMD-mapped THP goes through
        set_pmd_migration_entry(), whose pmdp_invalidate() always flushes at once.
        """
        s = self.s
        table = self.folios
        costs = self.costs
        ptes = self._ptes(folio)
        pmd = table.is_pmd_mapped(folio)
        flusher = self.flusher
        deferred = batch_flush and flusher.should_defer() and not pmd
        table.unmapped[folio] = True
        if deferred:
            self._spend(Spend.UNMAP, costs.unmap_pte_ns * ptes)
            table.flush_pending[folio] = True
            table.state[folio] = FolioState.UNMAPPED
            self.timeline.unmap(folio, s.now)
            s.ubc_required = True  # set_tlb_ubc_flush_pending()
            s.ubc_folios.append(folio)
            if not self.policy.skip_flush:
                flusher.add_pending(folio, ptes)  # arch_tlbbatch_add_pending()
            yield self._event(EventKind.UNMAP, folio=folio, pages=ptes, arg=1)
            return
        send_pages = table.nr_pages(folio) if pmd else 1
        if pmd:
            kind = RoundKind.PMD
        elif s.sync and s.mode is Mode.BATCHED:
            kind = RoundKind.FALLBACK
        else:
            kind = RoundKind.PTE
        for pte in range(ptes):
            # ptep_clear_flush() (pmdp_invalidate() for a PMD): the PTE is cleared and flushed
            # first; only then does set_pte_at() install the migration entry, which the
            # set_migration_pte tracepoint reports. A fault meanwhile waits on the PTE lock and
            # then finds the migration entry, so for the workload the folio is unmapped from
            # the clear on.
            self._spend(Spend.UNMAP, costs.unmap_pte_ns)
            table.state[folio] = FolioState.UNMAPPED
            flushes = flusher.needs_flush()
            table.flush_pending[folio] = flushes
            self.timeline.unmap(folio, s.now)
            if flushes and not self.policy.skip_flush:
                if pmd:
                    self.counters.pmd_flush_rounds += 1
                if s.sync and s.mode is Mode.BATCHED:
                    self.counters.fallback_flush_rounds += 1
                yield from flusher.flush_now(folio, send_pages, kind)
            yield self._event(EventKind.UNMAP, folio=folio, pages=1, arg=0, pte=pte)
        if not (self.policy.skip_flush and flusher.needs_flush()):
            table.state[folio] = FolioState.FLUSHED

    def flush_tlb_func(self, cpu: int, request_gen: int | None) -> int:
        """What arch/x86/mm/tlb.c's flush_tlb_func() does on a target, by TLB generation: the
        pages it traces (1: a partial flush of the requested page or PMD, -1: a full flush,
        0: nothing, the CPU is already current). ``request_gen`` is the request's
        new_tlb_gen, or None for a full-flush request (arch_tlbbatch_flush)."""
        return self.flush_tlb_funcs((cpu,), request_gen)[cpu]

    def flush_tlb_funcs(self, cpus: tuple[int, ...], request_gen: int | None
                        ) -> dict[int, int]:
        """flush_tlb_func() on each of ``cpus``, in turn (see above): what each traces."""
        s = self.s
        gens = s.cpu_tlb_gen
        mm_gen = s.mm_tlb_gen
        # Partial only for the request that is the mm's latest generation, on a CPU one behind.
        partial = request_gen is not None and request_gen == mm_gen
        traced = {}
        for cpu in cpus:
            local = gens.get(cpu, 0)
            # (A request whose generation the CPU has already reached returns untraced; with
            # one migrating task sending rounds one after another that cannot happen here.)
            if local == mm_gen:
                traced[cpu] = 0
                continue
            gens[cpu] = mm_gen  # both flushes below catch the CPU up to the mm
            # partial: nr_invalidate = one page, or one PMD stride
            traced[cpu] = 1 if partial and request_gen == local + 1 else -1
        return traced

    def flush_round(self, folio: int, send_pages: int, covered: list[int], kind: RoundKind,
                    *, request_gen: int | None) -> Iterator[Event]:
        """native_flush_tlb_multi(): IPI the non-lazy CPUs of mm_cpumask and wait for all acks.

        ``folio`` is the page (or PMD) the request names, or FULL for a full-flush request;
        each target then invalidates that entry, flushes everything, or does nothing, as its
        TLB generation decides (flush_tlb_func). Every counter moves as the event that shows
        it is seen: the round when it is sent, each target's count (the /proc/interrupts TLB
        row) when that target handles its IPI.
        """
        s = self.s
        counters = self.counters
        machine = self.machine
        previous_phase = s.phase
        s.phase = Phase.FLUSH
        send_time = s.now
        counters.nr_tlb_remote_flush += 1
        counters.rounds_by_kind[kind.value] += 1  # (an enum index makes numpy probe the class)
        plan = machine.round_plan(self.flush_tlb_funcs(machine.targets, request_gen))
        traced = plan.traced  # in the order the targets handle the IPI
        # What each target invalidated: the folio (a partial flush), FULL or NOTHING.
        flushed: int | npt.NDArray[np.int64] = folio if plan.all_partial else \
            np.where(plan.traced_array == 1, folio, np.where(plan.traced_array == 0, NOTHING, FULL))
        s.round_targets, s.round_acked, s.round_pages = plan.targets, 0, send_pages
        s.round_kind, s.round_flushed = kind, []
        # The timeline learns every delivery now: the lazy workload reads it window by window
        # and must never meet an IPI it has not been told of.
        self.timeline.flush_round(plan, flushed, send_time)
        yield self._event(EventKind.FLUSH_SEND, pages=send_pages, folio=folio,
                          targets=plan.targets, arg=len(plan.targets), round_kind=kind)
        shootdowns = counters.tlb_shootdowns
        if send_time + plan.total_ns < self.fold_before:
            received = len(plan.targets)
            s.round_acked, s.round_flushed = received, list(traced)
            counters.nr_tlb_remote_flush_received += received
            shootdowns += plan.target_mask
            s.seq += received
            self.folded += received
            if s.unit.active and not self._in_sync_fallback():
                s.unit.round_acked += received  # as _tally() would, receipt by receipt
        else:
            for cpu, offset, pages in zip(plan.targets, plan.offsets_ns, traced, strict=True):
                s.round_acked += 1
                s.round_flushed.append(pages)
                counters.nr_tlb_remote_flush_received += 1
                shootdowns[cpu] += 1
                yield self._event(EventKind.IPI_RECV, cpu, time_ns=send_time + offset,
                                  folio=folio, pages=pages, arg=len(plan.targets),
                                  round_kind=kind)
        self._spend(Spend.FLUSH, send_time + plan.total_ns - s.now)
        table = self.folios
        table.flushed(covered)
        s.round_targets, s.round_acked, s.round_kind = (), 0, RoundKind.NONE
        yield self._event(EventKind.FLUSH_DONE, folio=folio, pages=send_pages,
                          arg=len(plan.targets), targets=plan.targets, round_kind=kind)
        s.round_flushed = []
        s.phase = previous_phase

    def _copy_and_remap(self, folio: int) -> Iterator[Event]:
        """move_to_new_folio() → folio_copy(), then remove_migration_ptes(src, dst) and unlock."""
        yield from self._copy_batch([folio], offload=False)
        yield from self._remap(folio)

    def _copy_batch(self, folios: list[int], *, offload: bool = True) -> Iterator[Event]:
        """Copy the folios' contents: one folio on the CPU (``offload`` False), or a batch in
        one offloaded copy (the copy engine's batch_ns). Every folio's copy starts now; the
        remaps follow."""
        s = self.s
        table = self.folios
        if len(folios) == 1 and not offload:
            copy_ns = self.copier.folio_ns(table.orders[folios[0]])
            remap_ns = self.costs.remap_pte_ns * self._ptes(folios[0])
        else:
            remap_ns = sum(self.costs.remap_pte_ns * self._ptes(folio) for folio in folios)
            orders = [table.orders[folio] for folio in folios]
            copy_ns = self.copier.batch_ns(orders) if offload else \
                sum(self.copier.folio_ns(order) for order in orders)
        s.busy_until = s.now + copy_ns + remap_ns
        for folio in folios:
            if table.flush_pending[folio]:
                # The ordering rule: a write through a stale TLB entry after this copy would be
                # lost.
                self.counters.ordering_violations += 1
            table.state[folio] = FolioState.COPYING
            self.timeline.copy(folio, s.now)
            yield self._event(EventKind.COPY, folio=folio, pages=table.nr_pages(folio))
        self._spend(Spend.COPY, copy_ns)

    def _remap(self, folio: int) -> Iterator[Event]:
        """remove_migration_ptes(src, dst): the PTEs point at the new folio; src unlocked."""
        s = self.s
        table = self.folios
        self._spend(Spend.MOVE, self.costs.remap_pte_ns * self._ptes(folio))
        table.node[folio] = s.dst
        table.unmapped[folio] = False
        table.state[folio] = FolioState.REMAPPED
        self.timeline.remap(folio, s.now, moved=True)
        yield self._event(EventKind.REMAP, folio=folio, pages=self._ptes(folio))

    def _count_retry(self) -> None:
        """An attempt got -EAGAIN: counted as the event that says so is seen, so a view taken
        at that event already includes it (in the unit's tally too)."""
        self.counters.retries += 1
        self.s.unit.retries += 1

    def _spend(self, where: Spend, ns: int) -> None:
        """Advance the task's clock, booking the time to one kind of work."""
        self.s.now += ns
        self.counters.time_ns[where] += ns

    def _extra_reference(self, folio: int, attempt: int) -> bool:
        """folio_migrate_mapping() finds a reference it did not expect (move_contention)."""
        return _chance(self.policy.move_contention, self.seed, _Coin.REFCOUNT, self.s.move, folio,
                       attempt)

    def _fail(self, kind: EventKind, folio: int, errno: Errno) -> Event:
        return self._event(kind, folio=folio, arg=errno)

    def _attempt(self, folio: int, move: bool = False) -> int:
        key = ~folio if move else folio
        attempt = self.s.attempts.get(key, 0) + 1
        self.s.attempts[key] = attempt
        return attempt + (1 << 20 if move else 0)

    def _ptes(self, folio: int) -> int:
        return self.folios.ptes(folio)
