"""The migrating task: Linux's migrate_pages() in its 6.2 (serial) and 6.3 (batched) shapes.

Functions are named after the kernel functions they mirror (mm/migrate.c, mm/rmap.c,
arch/x86/mm/tlb.c) and follow their control flow, passes and stats accounting. Each is a
generator that yields an :class:`~core.events.Event` as each step *has happened*: the state it
changed is already changed when the event is seen.

The outer loop (which migrate_pages() call, which batch, which serial pass) is explicit state in
:class:`MigrationTask`; one *unit* (a batch, or one folio in serial mode) is a generator. Between
units nothing is in flight, which is where the engine takes checkpoints and applies a mode toggle.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from core.events import Errno, Event, EventKind, Phase, WaitReason
from core.folios import FolioState, FolioTable
from core.scenario import Mode, Scenario
from core.stats import Counters, MigrateStats, Spend
from core.timeline import FULL, Timeline
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
    serial_counting: bool = True  # serial: False while retrying split pieces
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


class MigrationTask:
    """migratepages: one migrate_pages() call per one-way move, node 0 → 1 → 0 ...

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
        self.s = TaskState(mode=mode)
        self.s.busy_until = self._isolation_ns(0)
        # Called with the task's clock just before a split rewrites the page -> folio map. The
        # engine uses it to catch the lazy workload up first: accesses made before the split
        # must be classified against the unsplit THP, whatever window they are simulated in.
        self.before_split: Callable[[int], None] | None = None

    # ------------------------------------------------------------------------------------------
    # The outer loop

    def next_unit(self) -> Iterator[Event] | None:
        """The generator of the next unit of work, or None when every move is done."""
        s = self.s
        if s.pending_mode is not None:
            self._switch_mode(s.pending_mode)
        if s.stage is Stage.START:
            return self._start_call()
        if s.stage is Stage.END:
            return self._end_call()
        if s.stage is Stage.DONE:
            return None
        if s.mode is Mode.BATCHED:
            if s.from_pos >= len(s.from_list):
                s.stage = Stage.END
                return self._end_call()
            return self._batch_unit(self._cut_batch())
        folio = self._next_serial_folio()
        if folio is None:
            s.stage = Stage.END
            return self._end_call()
        return self._serial_unit(folio)

    def _switch_mode(self, mode: Mode) -> None:
        """A toggle lands between units: the rest of this call's list goes the new way."""
        s = self.s
        s.pending_mode = None
        if mode is s.mode:
            return
        if s.stage is Stage.BODY:
            rest = s.from_list[s.from_pos :] + s.next_pass
            s.from_list, s.from_pos, s.next_pass = rest, 0, []
            s.serial_pass = 0
            s.serial_retry_pages = s.serial_thp_retry = 0
            if mode is Mode.BATCHED:
                s.batches_planned = s.batch + self._count_batches(rest)
        s.mode = mode

    def _new_phase(self, phase: Phase) -> None:
        self.s.phase = phase
        self.s.phase_id += 1

    def _event(self, kind: EventKind, cpu: int | None = None, *, time_ns: int | None = None,
               folio: int = -1, pages: int = 0, arg: int = 0,
               targets: tuple[int, ...] = ()) -> Event:
        s = self.s
        event = Event(
            s.seq, s.now if time_ns is None else time_ns, kind,
            self.machine.initiator if cpu is None else cpu, folio, pages, arg, s.phase, s.batch,
            s.pass_, s.sync, targets, s.move, s.phase_id,
        )
        s.seq += 1
        return event

    def _start_call(self) -> Iterator[Event]:
        """do_migrate_pages() → migrate_to_node(): isolate, then migrate_pages() starts."""
        s = self.s
        s.src, s.dst = (0, 1) if s.move % 2 == 0 else (1, 0)
        s.from_list = self.folios.on_node(s.src)
        # queue_pages_range() isolates every folio of the mm on the source node, and the folios
        # are put back afterwards: work outside migrate_pages(), booked here at the start.
        self._spend(Spend.ISOLATE, self.costs.isolate_ns * len(s.from_list))
        s.from_pos = 0
        s.next_pass, s.ret, s.split = [], [], []
        s.stats = MigrateStats()
        s.attempts = {}
        s.batch = 0
        s.units = 0
        s.serial_pass = 0
        s.serial_retry_pages = s.serial_thp_retry = 0
        s.serial_counting = True
        s.batches_planned = self._count_batches(s.from_list) if s.mode is Mode.BATCHED else 0
        table = self.folios
        table.state[: table.count][table.alive[: table.count]] = FolioState.MAPPED
        s.stage = Stage.BODY
        self.counters.migrate_calls += 1
        if s.mode is Mode.SERIAL:
            self.counters.passes += 1
        self._new_phase(Phase.IDLE)
        yield self._event(EventKind.MIGRATE_START, pages=len(s.from_list))

    def _end_call(self) -> Iterator[Event]:
        """The end of migrate_pages(): count_vm_events() and trace_mm_migrate_pages()."""
        s = self.s
        table = self.folios
        if s.mode is Mode.SERIAL and s.next_pass:
            self._serial_give_up()
        # Whatever was tried and did not end up remapped has failed for this call; untried
        # folios (after -ENOMEM) stay MAPPED.
        tried = np.asarray(s.from_list, dtype=np.int64)
        tried = tried[table.alive[tried] & (table.state[tried] != FolioState.REMAPPED)
                      & (table.state[tried] != FolioState.MAPPED)]
        table.state[tried] = FolioState.FAILED
        given_up = np.asarray(s.ret + s.split, dtype=np.int64)
        given_up = given_up[table.alive[given_up]
                            & (table.state[given_up] != FolioState.REMAPPED)]
        table.state[given_up] = FolioState.FAILED
        self.counters.add_migrate_stats(s.stats)
        finished = s.move
        s.move += 1
        s.stage = Stage.START if s.move < self.policy.moves else Stage.DONE
        self._new_phase(Phase.DONE if s.stage is Stage.DONE else Phase.IDLE)
        s.sync = False
        stats = s.stats
        end = self._event(EventKind.MIGRATE_END, pages=stats.nr_succeeded,
                          arg=stats.nr_failed_pages)
        if s.stage is Stage.START:
            s.busy_until = s.now + self._isolation_ns(s.dst)
        # Label the event with the call it ends: s.move already names the next call (the
        # MIGRATE_END of move 0 used to say move 1, unlike every other event of that call).
        yield end._replace(move=finished,
                           thp=(stats.nr_thp_succeeded, stats.nr_thp_failed, stats.nr_thp_split))

    def _isolation_ns(self, node: int) -> int:
        """How long isolating the folios now on ``node`` will take (the next call's start)."""
        table = self.folios
        count = int(np.count_nonzero(table.alive[: table.count] & (table.node[: table.count] == node)))
        return self.costs.isolate_ns * count

    def _count_batches(self, folios: list[int]) -> int:
        limit = self.policy.batch_pages
        batches, pages = 0, 0
        for folio in folios:
            pages += self.folios.nr_pages(folio)
            if pages >= limit:
                batches, pages = batches + 1, 0
        return batches + (1 if pages else 0)

    def _cut_batch(self) -> list[int]:
        """migrate_pages() `again:` — take folios until NR_MAX_BATCHED_MIGRATION base pages; the
        folio that reaches the limit is included (list_cut_before the next one)."""
        s = self.s
        limit = self.policy.batch_pages
        pages = 0
        start = s.from_pos
        end = start
        order = self.folios.order
        while end < len(s.from_list):
            pages += 1 << int(order[s.from_list[end]])
            end += 1
            if pages >= limit:
                break
        s.from_pos = end
        return s.from_list[start:end]

    # ------------------------------------------------------------------------------------------
    # Linux 6.3: batched

    def _batch_unit(self, batch: list[int]) -> Iterator[Event]:
        s = self.s
        s.batch += 1
        self.counters.batches += 1
        self._new_phase(Phase.IDLE)
        s.sync = False
        s.pass_ = 0
        pages = sum(self.folios.nr_pages(f) for f in batch)
        yield self._event(EventKind.BATCH_START, pages=pages, arg=len(batch))
        rc = yield from self.migrate_pages_sync(batch)
        s.ret.extend(batch)  # list_splice_tail_init(&folios, &ret_folios)
        if rc < 0:
            # -ENOMEM: the call ends; untried folios are neither migrated nor counted.
            s.ret.extend(s.split)
            s.split = []
            s.stage = Stage.END
            return
        if s.split:
            # Minimal effort for pieces of split THPs: async, one pass, not counted as failures.
            pieces, s.split = s.split, []
            s.sync = False
            yield from self.migrate_pages_batch(pieces, async_mode=True, nr_pass=1, ret=s.ret,
                                                stats=s.stats, split_target=None)
            s.ret.extend(pieces)

    def migrate_pages_sync(self, batch: list[int]) -> Steps:
        """Try the batch asynchronously (3 passes, one flush), then each leftover one by one."""
        s = self.s
        astats = MigrateStats()
        given_up: list[int] = []  # the kernel's local `folios` list
        s.sync = False
        rc = yield from self.migrate_pages_batch(batch, async_mode=True,
                                                 nr_pass=NR_MAX_MIGRATE_ASYNC_RETRY,
                                                 ret=given_up, stats=astats,
                                                 split_target=s.split)
        stats = s.stats
        stats.nr_succeeded += astats.nr_succeeded
        stats.nr_thp_succeeded += astats.nr_thp_succeeded
        stats.nr_thp_split += astats.nr_thp_split
        if rc < 0:
            stats.nr_failed_pages += astats.nr_failed_pages
            stats.nr_thp_failed += astats.nr_thp_failed
            s.ret.extend(given_up)
            return rc
        stats.nr_thp_failed += astats.nr_thp_split
        nr_failed = astats.nr_thp_split
        # Every folio the async pass gave up on is retried, so its failure is not counted yet.
        batch.extend(given_up)
        todo = list(batch)
        batch.clear()
        for index, folio in enumerate(todo):
            self.counters.sync_fallback_folios += 1
            s.sync = True
            single = [folio]
            rc = yield from self.migrate_pages_batch(single, async_mode=False,
                                                     nr_pass=NR_MAX_MIGRATE_SYNC_RETRY,
                                                     ret=s.ret, stats=stats,
                                                     split_target=s.split)
            s.ret.extend(single)
            if rc < 0:
                batch.extend(todo[index + 1 :])
                return rc
            nr_failed += rc
        s.sync = False
        return nr_failed

    def migrate_pages_batch(self, from_list: list[int], *, async_mode: bool, nr_pass: int,
                            ret: list[int], stats: MigrateStats,
                            split_target: list[int] | None) -> Steps:
        """Unmap all (flush deferred), one try_to_unmap_flush(), move all, undo the rest.

        ``from_list`` is left holding the folios still to retry (the kernel's `from`).
        """
        s = self.s
        table = self.folios
        unmap_folios: list[int] = []
        nr_failed = 0
        rc_saved = 0
        retry, thp_retry, nr_retry_pages = 1, 0, 0
        enomem = False
        for pass_ in range(nr_pass):
            if not retry:
                break
            retry, thp_retry, nr_retry_pages = 0, 0, 0
            s.pass_ = pass_ + 1
            self.counters.passes += 1
            self._new_phase(Phase.UNMAP)
            remaining: list[int] = []
            for position, folio in enumerate(from_list):
                is_thp = table.is_pmd_mapped(folio)
                nr_pages = table.nr_pages(folio)
                rc = yield from self.migrate_folio_unmap(folio, async_mode)
                if rc == -Errno.ENOMEM:
                    nr_failed += 1
                    stats.nr_thp_failed += is_thp
                    if nr_pages > 1 and split_target is not None:
                        split_target.extend((yield from self.try_split_folio(folio)))
                        stats.nr_thp_split += is_thp
                        continue
                    stats.nr_failed_pages += nr_pages + nr_retry_pages
                    stats.nr_thp_failed += thp_retry
                    rc_saved = -Errno.ENOMEM
                    remaining.extend(from_list[position:])
                    enomem = True
                    break
                if rc == -Errno.EAGAIN:
                    retry += 1
                    thp_retry += is_thp
                    nr_retry_pages += nr_pages
                    self.counters.retries += 1
                    remaining.append(folio)
                elif rc == MIGRATEPAGE_UNMAP:
                    unmap_folios.append(folio)
                else:  # -EBUSY: permanent failure for this call
                    nr_failed += 1
                    stats.nr_thp_failed += is_thp
                    stats.nr_failed_pages += nr_pages
                    table.state[folio] = FolioState.RETRYING if async_mode else FolioState.FAILED
                    ret.append(folio)
            from_list[:] = remaining
            if enomem:
                break
        if not enomem:
            nr_failed += retry
            stats.nr_thp_failed += thp_retry
            stats.nr_failed_pages += nr_retry_pages
        if enomem and not unmap_folios:
            rc = rc_saved
        else:
            yield from self.try_to_unmap_flush()
            retry = 1
            for pass_ in range(nr_pass):
                if not retry:
                    break
                retry, thp_retry, nr_retry_pages = 0, 0, 0
                s.pass_ = pass_ + 1
                self._new_phase(Phase.MOVE)
                still: list[int] = []
                for folio in unmap_folios:
                    is_thp = table.is_pmd_mapped(folio)
                    nr_pages = table.nr_pages(folio)
                    rc = yield from self.migrate_folio_move(folio)
                    if rc == -Errno.EAGAIN:
                        retry += 1
                        thp_retry += is_thp
                        nr_retry_pages += nr_pages
                        self.counters.retries += 1
                        still.append(folio)
                    else:
                        stats.nr_succeeded += nr_pages
                        stats.nr_thp_succeeded += is_thp
                unmap_folios = still
            nr_failed += retry
            stats.nr_thp_failed += thp_retry
            stats.nr_failed_pages += nr_retry_pages
            rc = rc_saved or nr_failed
        if unmap_folios:
            self._new_phase(Phase.UNDO)
            for folio in unmap_folios:
                yield from self.migrate_folio_undo_src(folio, will_retry=async_mode)
                ret.append(folio)
        return rc

    def migrate_folio_unmap(self, folio: int, async_mode: bool) -> Steps:
        """Allocate dst, lock src, unmap it with a deferred flush when async (TTU_BATCH_FLUSH).

        An async pass never blocks: a busy lock is -EAGAIN, writeback -EBUSY. A sync pass sleeps.
        """
        attempt = self._attempt(folio)
        rc = yield from self._get_and_lock(folio, attempt, may_block=not async_mode,
                                           writeback_rc=Errno.EBUSY)
        if rc:
            return rc
        yield from self.try_to_migrate(folio, batch_flush=async_mode)
        return MIGRATEPAGE_UNMAP

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
                    self.folios.state[folio] = FolioState.RETRYING
                yield self._fail(EventKind.UNMAP_FAIL, folio, writeback_rc)
                return -writeback_rc
            self.counters.writeback_waits += 1
            s.busy_until = s.now + costs.writeback_wait_ns
            yield self._event(EventKind.WAIT, folio=folio, arg=WaitReason.WRITEBACK)
            self._spend(Spend.WAIT, costs.writeback_wait_ns)
        return 0

    def migrate_folio_move(self, folio: int) -> Steps:
        """folio_migrate_mapping() (may see an extra reference), folio_copy(), remap, unlock."""
        s = self.s
        table = self.folios
        attempt = self._attempt(folio, move=True)
        self._spend(Spend.MOVE, self.costs.move_ns)
        if _chance(self.policy.move_contention, self.seed, _Coin.REFCOUNT, s.move, folio, attempt):
            self.counters.eagain_move += 1
            table.state[folio] = FolioState.RETRYING
            yield self._fail(EventKind.MOVE_FAIL, folio, Errno.EAGAIN)
            return -Errno.EAGAIN
        yield from self._copy_and_remap(folio)
        return MIGRATEPAGE_SUCCESS

    def try_to_unmap_flush(self) -> Iterator[Event]:
        """One shootdown round for every PTE cleared with TTU_BATCH_FLUSH: a full flush."""
        s = self.s
        if not s.ubc_required:
            return
        self._new_phase(Phase.FLUSH)
        self.counters.batch_flush_rounds += 1
        folios, s.ubc_folios, s.ubc_required = s.ubc_folios, [], False
        yield from self.flush_round(self.machine.full_round, FULL, -1, folios)

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
        self.timeline.remap(folio, s.now)
        yield self._event(EventKind.RESTORE, folio=folio, pages=self._ptes(folio))

    # ------------------------------------------------------------------------------------------
    # Linux 6.2: serial

    def _next_serial_folio(self) -> int | None:
        """6.2 migrate_pages(): up to 10 passes over `from`; then the split pieces, uncounted."""
        s = self.s
        while True:
            if s.from_pos < len(s.from_list):
                folio = s.from_list[s.from_pos]
                s.from_pos += 1
                return folio
            if s.next_pass and s.serial_pass + 1 < NR_MAX_MIGRATE_PAGES_RETRY:
                s.from_list, s.from_pos, s.next_pass = s.next_pass, 0, []
                s.serial_pass += 1
                s.serial_retry_pages = s.serial_thp_retry = 0
                self.counters.passes += 1
                continue
            if s.next_pass:
                self._serial_give_up()
            if s.split:
                s.from_list, s.from_pos, s.split = s.split, 0, []
                s.serial_pass = 0
                s.serial_retry_pages = s.serial_thp_retry = 0
                s.serial_counting = False
                self.counters.passes += 1
                continue
            return None

    def _serial_give_up(self) -> None:
        """After the last pass, folios still getting -EAGAIN count as failed."""
        s = self.s
        s.stats.nr_failed_pages += s.serial_retry_pages
        s.stats.nr_thp_failed += s.serial_thp_retry
        for folio in s.next_pass:
            self.folios.state[folio] = FolioState.FAILED
        s.ret.extend(s.next_pass)
        s.next_pass = []
        s.serial_retry_pages = s.serial_thp_retry = 0

    def _serial_unit(self, folio: int) -> Iterator[Event]:
        """One unmap_and_move() call of 6.2's migrate_pages() pass loop."""
        s = self.s
        table = self.folios
        s.units += 1
        s.sync = True
        s.pass_ = s.serial_pass + 1
        self._new_phase(Phase.UNMAP)
        is_thp = table.is_pmd_mapped(folio)
        nr_pages = table.nr_pages(folio)
        rc = yield from self.unmap_and_move(folio, force=s.serial_pass > 2)
        stats = s.stats
        if rc == MIGRATEPAGE_SUCCESS:
            stats.nr_succeeded += nr_pages
            stats.nr_thp_succeeded += is_thp
        elif rc == -Errno.EAGAIN:
            s.next_pass.append(folio)
            s.serial_retry_pages += nr_pages
            s.serial_thp_retry += is_thp
            self.counters.retries += 1
        elif rc == -Errno.ENOMEM:
            if nr_pages > 1:
                stats.nr_thp_failed += is_thp
                s.split.extend((yield from self.try_split_folio(folio)))
                stats.nr_thp_split += is_thp
                return
            stats.nr_failed_pages += nr_pages + s.serial_retry_pages
            stats.nr_thp_failed += s.serial_thp_retry
            table.state[folio] = FolioState.FAILED
            s.ret.append(folio)
            s.ret.extend(s.next_pass)
            s.next_pass = []
            s.stage = Stage.END  # `goto out`: the rest of the list is not tried
        else:  # -EBUSY
            stats.nr_failed_pages += nr_pages
            stats.nr_thp_failed += is_thp
            table.state[folio] = FolioState.FAILED
            s.ret.append(folio)

    def unmap_and_move(self, folio: int, *, force: bool) -> Steps:
        """6.2 __unmap_and_move(): lock, unmap with a flush per PTE, copy, remap, unlock.

        Passes 0-2 only trylock, even for MIGRATE_SYNC, and give up on writeback with -EAGAIN;
        from pass 3 (`force`) the task sleeps on the lock and on writeback.
        """
        s = self.s
        attempt = self._attempt(folio)
        rc = yield from self._get_and_lock(folio, attempt, may_block=force,
                                           writeback_rc=Errno.EAGAIN)
        if rc:
            return rc
        yield from self.try_to_migrate(folio, batch_flush=False)
        s.phase = Phase.MOVE
        self._spend(Spend.MOVE, self.costs.move_ns)
        if _chance(self.policy.move_contention, self.seed, _Coin.REFCOUNT, s.move, folio, attempt):
            self.counters.eagain_move += 1
            yield self._fail(EventKind.MOVE_FAIL, folio, Errno.EAGAIN)
            # 6.2 restores the mapping at once; the next pass unmaps and flushes again.
            s.phase = Phase.UNDO
            yield from self.migrate_folio_undo_src(folio, will_retry=True)
            return -Errno.EAGAIN
        yield from self._copy_and_remap(folio)
        return MIGRATEPAGE_SUCCESS

    # ------------------------------------------------------------------------------------------
    # Shared steps

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
        machine = self.machine
        ptes = self._ptes(folio)
        pmd = table.is_pmd_mapped(folio)
        deferred = batch_flush and machine.has_remote_cpus and not pmd
        table.unmapped[folio] = True
        if deferred:
            self._spend(Spend.UNMAP, costs.unmap_pte_ns * ptes)
            table.flush_pending[folio] = True
            table.state[folio] = FolioState.UNMAPPED
            self.timeline.unmap(folio, s.now)
            s.ubc_required = True  # set_tlb_ubc_flush_pending()
            s.ubc_folios.append(folio)
            yield self._event(EventKind.UNMAP, folio=folio, pages=ptes, arg=1)
            return
        plan = machine.page_round
        send_pages = table.nr_pages(folio) if pmd else 1
        for _ in range(ptes):
            self._spend(Spend.UNMAP, costs.unmap_pte_ns)
            table.state[folio] = FolioState.UNMAPPED
            table.flush_pending[folio] = machine.has_remote_cpus
            self.timeline.unmap(folio, s.now)
            yield self._event(EventKind.UNMAP, folio=folio, pages=1, arg=0)
            if machine.has_remote_cpus:
                if pmd:
                    self.counters.pmd_flush_rounds += 1
                if s.sync and s.mode is Mode.BATCHED:
                    self.counters.fallback_flush_rounds += 1
                yield from self.flush_round(plan, folio, send_pages, [folio])
        table.state[folio] = FolioState.FLUSHED

    def flush_round(self, plan: RoundPlan, folio: int, send_pages: int,
                    covered: list[int]) -> Iterator[Event]:
        """native_flush_tlb_multi(): IPI the non-lazy CPUs of mm_cpumask and wait for all acks.

        ``folio`` is the one entry each target invalidates, or FULL for a full flush.
        """
        s = self.s
        counters = self.counters
        previous_phase = s.phase
        s.phase = Phase.FLUSH
        send_time = s.now
        counters.nr_tlb_remote_flush += 1
        s.round_targets, s.round_acked, s.round_pages = plan.targets, 0, send_pages
        yield self._event(EventKind.FLUSH_SEND, pages=send_pages, folio=folio,
                          targets=plan.targets, arg=len(plan.targets))
        recv_pages = -1 if folio == FULL else 1
        self.timeline.flush_round(plan, folio, send_time)
        counters.nr_tlb_remote_flush_received += len(plan.targets)
        counters.tlb_shootdowns[plan.target_array] += 1
        for cpu, offset in zip(plan.targets, plan.offsets_ns, strict=True):
            s.round_acked += 1
            yield self._event(EventKind.IPI_RECV, cpu, time_ns=send_time + offset, folio=folio,
                              pages=recv_pages, arg=len(plan.targets))
        self._spend(Spend.FLUSH, send_time + plan.total_ns - s.now)
        table = self.folios
        for covered_folio in covered:
            table.flush_pending[covered_folio] = False
            if table.state[covered_folio] == FolioState.UNMAPPED:
                table.state[covered_folio] = FolioState.FLUSHED
        s.round_targets, s.round_acked = (), 0
        yield self._event(EventKind.FLUSH_DONE, folio=folio, pages=send_pages,
                          arg=len(plan.targets))
        s.phase = previous_phase

    def _copy_and_remap(self, folio: int) -> Iterator[Event]:
        """move_to_new_folio() → folio_copy(), then remove_migration_ptes(src, dst) and unlock."""
        s = self.s
        table = self.folios
        if table.flush_pending[folio]:
            # The ordering rule: a write through a stale TLB entry after this copy would be lost.
            self.counters.ordering_violations += 1
        table.state[folio] = FolioState.COPYING
        copy_ns = self.costs.copy_ns(int(table.order[folio]))
        remap_ns = self.costs.remap_pte_ns * self._ptes(folio)
        s.busy_until = s.now + copy_ns + remap_ns
        yield self._event(EventKind.COPY, folio=folio, pages=table.nr_pages(folio))
        self._spend(Spend.COPY, copy_ns)
        self._spend(Spend.MOVE, remap_ns)
        table.node[folio] = s.dst
        table.unmapped[folio] = False
        table.state[folio] = FolioState.REMAPPED
        self.timeline.remap(folio, s.now)
        yield self._event(EventKind.REMAP, folio=folio, pages=self._ptes(folio))

    def _spend(self, where: Spend, ns: int) -> None:
        """Advance the task's clock, booking the time to one kind of work."""
        self.s.now += ns
        self.counters.time_ns[where] += ns

    def _fail(self, kind: EventKind, folio: int, errno: Errno) -> Event:
        return self._event(kind, folio=folio, arg=errno)

    def _attempt(self, folio: int, move: bool = False) -> int:
        key = ~folio if move else folio
        attempt = self.s.attempts.get(key, 0) + 1
        self.s.attempts[key] = attempt
        return attempt + (1 << 20 if move else 0)

    def _ptes(self, folio: int) -> int:
        """Page-table entries mapping the folio: one PMD for a THP, else one PTE per page."""
        table = self.folios
        return 1 if table.is_pmd_mapped(folio) else table.nr_pages(folio)
