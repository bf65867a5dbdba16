"""Linux 6.3's migrate_pages(): batches, unmap all, flush once, move all (mm/migrate.c).

A synchronous caller such as `migratepages` goes through ``migrate_pages_sync()``: the batch is
first tried asynchronously (``migrate_pages_batch`` with up to 3 passes, flushes deferred with
TTU_BATCH_FLUSH and sent as one full-flush round), then each folio that failed is retried alone
in MIGRATE_SYNC (up to 7 passes), where every PTE is flushed at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from core.events import Errno, Event, EventKind, Phase, RoundKind
from core.folios import FolioState
from core.kernel import (
    MIGRATEPAGE_SUCCESS,
    MIGRATEPAGE_UNMAP,
    NR_MAX_MIGRATE_ASYNC_RETRY,
    NR_MAX_MIGRATE_SYNC_RETRY,
    Stage,
    Steps,
    TaskBase,
    UnitTally,
)
from core.stats import MigrateStats, Spend
from core.timeline import FULL


class BatchedPath(TaskBase):
    """migrate_pages_sync() and migrate_pages_batch() with their per-folio steps."""

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

    def _plain_batches(self, until_ns: int, most: int) -> tuple[int, Event] | None:
        """The next batches, as many as hold at most ``most`` folios (one at least), if every
        folio in them is a base folio on the plain path (see _plain_steps) and each batch ends
        (its last REMAP) by ``until_ns`` with its receipts folded, made at once as arrays:
        per batch, unmap all with the flush deferred, one full-flush round, move all. The same
        steps, times, counters and logs as _batch_unit() batch after batch. Returns the events
        made and the last one (a REMAP), or None when the next batch must take _batch_unit()."""
        s = self.s
        if self.copier.batched:
            return None  # the copy-offload series: one batched copy, then the remaps
        limit = self.policy.batch_pages  # base pages, so folios here (_cut_batch())
        ahead = s.from_list[s.from_pos : s.from_pos + max(limit, most // limit * limit)]
        orders = self.folios.orders
        for index, folio in enumerate(ahead):
            if orders[folio]:
                ahead = ahead[: index // limit * limit]  # whole batches before it
                break
        if not ahead:
            return None
        machine = self.machine
        plan = machine.full_round  # every target is behind by the batch's deferred PTEs
        costs = self.costs
        unmap_ns = costs.alloc_ns + costs.lock_ns + costs.unmap_pte_ns  # a folio's unmap
        copy_ns = self.copier.folio_ns(0)
        move_ns = costs.move_ns + copy_ns + costs.remap_pte_ns  # a folio's move
        sizes = np.full(-(-len(ahead) // limit), limit, dtype=np.int64)
        sizes[-1] = len(ahead) - limit * (sizes.size - 1)
        lengths = sizes * (unmap_ns + move_ns) + plan.total_ns
        ends = s.now + np.cumsum(lengths)
        # Batches that end by until_ns and whose rounds fold (ending before fold_before).
        batches = int(np.searchsorted(ends, min(until_ns, self.fold_before - 1), side="right"))
        if not batches:
            return None
        sizes, ends = sizes[:batches], ends[:batches]
        starts = ends - lengths[:batches]
        sends = starts + sizes * unmap_ns
        count = int(sizes.sum())
        folios = ahead[:count]
        batch = np.repeat(np.arange(batches), sizes)
        place = np.arange(count, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        unmaps = starts[batch] + (place + 1) * unmap_ns
        copies = sends[batch] + plan.total_ns + costs.move_ns + place * move_ns
        remaps = copies + copy_ns + costs.remap_pte_ns
        self._moved_in_bulk(folios, unmaps, copies, remaps)
        self.timeline.flush_rounds(plan, np.full(batches, FULL, dtype=np.int64), sends)
        attempts = s.attempts
        for folio in folios:  # migrate_folio_move()'s attempts
            attempts[~folio] = attempts.get(~folio, 0) + 1
        counters = self.counters
        counters.batches += batches
        counters.passes += batches
        counters.batch_flush_rounds += batches
        s.mm_tlb_gen += count  # a generation per deferred PTE (arch_tlbbatch_add_pending())
        self._rounds_in_bulk(plan, batches, RoundKind.BATCH)
        self._book_in_bulk({Spend.PREPARE: count * (costs.alloc_ns + costs.lock_ns),
                            Spend.UNMAP: count * costs.unmap_pte_ns,
                            Spend.FLUSH: batches * plan.total_ns,
                            Spend.MOVE: count * (costs.move_ns + costs.remap_pte_ns),
                            Spend.COPY: count * copy_ns})
        s.batch += batches
        s.phase_id += 4 * batches  # per batch: IDLE, UNMAP, FLUSH, MOVE
        s.pass_ = 1
        s.sync = False
        s.round_pages = -1
        # Per batch: BATCH_START, per folio UNMAP, COPY and REMAP, then FLUSH_SEND, a receipt
        # per target and FLUSH_DONE.
        received = len(machine.targets)
        last = int(sizes[-1])
        return self._end_bulk(
            3 * count + batches * (3 + received), int(ends[-1]),
            UnitTally(active=True, folios=last, pages=last, unmapped=last, moved=last - 1,
                      rounds=1, round_targets=received, round_acked=received,
                      round_full=True, round_done=True),
            folios[-1])

    def _batch_unit(self, batch: list[int]) -> Iterator[Event]:
        s = self.s
        s.batch += 1
        self.counters.batches += 1
        self._new_phase(Phase.IDLE)
        s.sync = False
        s.pass_ = 0
        pages = sum(self.folios.nr_pages(f) for f in batch)
        s.unit = UnitTally(active=True, folios=len(batch), pages=pages)  # counts from zero
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
                offload = self.copier.batched
                moved: list[int] = []
                for folio in unmap_folios:
                    is_thp = table.is_pmd_mapped(folio)
                    nr_pages = table.nr_pages(folio)
                    if offload:  # the copy-offload series: metadata first, contents later
                        rc = yield from self.migrate_folio_metadata(folio)
                    else:
                        rc = yield from self.migrate_folio_move(folio)
                    if rc == -Errno.EAGAIN:
                        retry += 1
                        thp_retry += is_thp
                        nr_retry_pages += nr_pages
                        still.append(folio)
                    else:
                        moved.append(folio)
                        stats.nr_succeeded += nr_pages
                        stats.nr_thp_succeeded += is_thp
                if offload and moved:
                    # One batched copy of every folio whose metadata moved, then the remaps.
                    yield from self._copy_batch(moved)
                    for folio in moved:
                        yield from self._remap(folio)
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

    def migrate_folio_move(self, folio: int) -> Steps:
        """folio_migrate_mapping() (may see an extra reference), folio_copy(), remap, unlock."""
        rc = yield from self.migrate_folio_metadata(folio)
        if rc:
            return rc
        yield from self._copy_and_remap(folio)
        return MIGRATEPAGE_SUCCESS

    def migrate_folio_metadata(self, folio: int) -> Steps:
        """folio_migrate_mapping() and the flags: the part of the move before the copy (the
        copy-offload series runs it for the whole batch first, MIGRATE_NO_COPY)."""
        table = self.folios
        attempt = self._attempt(folio, move=True)
        self._spend(Spend.MOVE, self.costs.move_ns)
        if self._extra_reference(folio, attempt):
            self.counters.eagain_move += 1
            self._count_retry()
            table.state[folio] = FolioState.RETRYING
            yield self._fail(EventKind.MOVE_FAIL, folio, Errno.EAGAIN)
            return -Errno.EAGAIN
        return MIGRATEPAGE_SUCCESS

    def try_to_unmap_flush(self) -> Iterator[Event]:
        """One shootdown round for every PTE cleared with TTU_BATCH_FLUSH: a full flush."""
        s = self.s
        if not s.ubc_required:
            return
        folios, s.ubc_folios, s.ubc_required = s.ubc_folios, [], False
        if self.policy.skip_flush:
            return  # the teaching scenario's broken kernel: stale entries survive the copy
        self._new_phase(Phase.FLUSH)
        self.counters.batch_flush_rounds += 1
        yield from self.flusher.flush_batch(folios)  # arch_tlbbatch_flush()

