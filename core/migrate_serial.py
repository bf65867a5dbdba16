"""Linux 6.2's migrate_pages(): ten passes over the list, one folio at a time (mm/migrate.c).

Each folio goes through ``unmap_and_move()``: lock, unmap with ``ptep_clear_flush()`` (one
shootdown round per PTE), copy, remap, unlock. Passes 0-2 only trylock; from pass 3 the task
sleeps on a busy lock or on writeback.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from core.events import Errno, Event, EventKind, Phase, RoundKind
from core.folios import FolioState
from core.kernel import (
    MIGRATEPAGE_SUCCESS,
    NR_MAX_MIGRATE_PAGES_RETRY,
    Stage,
    Steps,
    TaskBase,
    UnitTally,
)
from core.stats import Spend


class SerialPath(TaskBase):
    """6.2's pass loop and unmap_and_move()."""

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
        s.unit = UnitTally(active=True, folios=1, pages=nr_pages)  # counts from zero
        rc = yield from self.unmap_and_move(folio, force=s.serial_pass > 2)
        stats = s.stats
        if rc == MIGRATEPAGE_SUCCESS:
            stats.nr_succeeded += nr_pages
            stats.nr_thp_succeeded += is_thp
        elif rc == -Errno.EAGAIN:
            s.next_pass.append(folio)
            s.serial_retry_pages += nr_pages
            s.serial_thp_retry += is_thp
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

    def _plain_folios(self, until_ns: int, most: int) -> tuple[int, Event] | None:
        """Up to ``most`` base folios ahead in this pass, each on the plain path of
        unmap_and_move() (see _plain_steps), made at once as arrays: all of them if each ends
        (its REMAP) by ``until_ns`` and folds its receipts. The same steps, times, counters and
        logs as _serial_unit() one folio after another. Returns the events made and the last
        one (a REMAP), or None when the next folio must take _serial_unit()."""
        s = self.s
        table = self.folios
        machine = self.machine
        targets = machine.targets
        gens = s.cpu_tlb_gen
        mm_gen = s.mm_tlb_gen
        if any(gens.get(cpu, 0) != mm_gen for cpu in targets):
            return None  # a target is behind: the next round is not a partial flush
        # Each round: the next generation, which every target is one behind (flush_tlb_func()).
        plan = machine.round_plan(dict.fromkeys(targets, 1))
        costs = self.costs
        prepare = costs.alloc_ns + costs.lock_ns
        copy_ns = self.copier.folio_ns(0)
        remap_ns = costs.remap_pte_ns
        unmapped = prepare + costs.unmap_pte_ns  # from the folio's start to its unmap (the send)
        span = unmapped + plan.total_ns + costs.move_ns + copy_ns + remap_ns
        start = s.now
        most = min(most, (until_ns - start) // span, (self.fold_before - 1 - start) // span)
        folios = s.from_list[s.from_pos : s.from_pos + max(most, 0)]
        orders = table.orders
        count = 0
        for folio in folios:
            if orders[folio]:
                break
            count += 1
        if not count:
            return None
        folios = folios[:count]
        unmaps = start + unmapped + span * np.arange(count, dtype=np.int64)
        copies = unmaps + plan.total_ns + costs.move_ns
        remaps = copies + copy_ns + remap_ns
        ids = self._moved_in_bulk(folios, unmaps, copies, remaps)
        self.timeline.flush_rounds(plan, ids, unmaps)
        s.mm_tlb_gen += count  # a generation per round (flush_tlb_mm_range())
        self._rounds_in_bulk(plan, count, RoundKind.PTE)
        self._book_in_bulk({Spend.PREPARE: count * prepare,
                            Spend.UNMAP: count * costs.unmap_pte_ns,
                            Spend.FLUSH: count * plan.total_ns,
                            Spend.MOVE: count * (costs.move_ns + remap_ns),
                            Spend.COPY: count * copy_ns})
        s.units += count
        s.phase_id += count
        s.pass_ = s.serial_pass + 1
        s.sync = True
        s.round_pages = 1
        # Per folio: FLUSH_SEND, a receipt per target, FLUSH_DONE, UNMAP, COPY and REMAP.
        received = len(targets)
        return self._end_bulk(
            count * (5 + received), int(remaps[-1]),
            UnitTally(active=True, folios=1, pages=1, unmapped=1, rounds=1,
                      round_targets=received, round_acked=received, round_done=True),
            folios[-1])

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
        if self._extra_reference(folio, attempt):
            self.counters.eagain_move += 1
            self._count_retry()
            yield self._fail(EventKind.MOVE_FAIL, folio, Errno.EAGAIN)
            # 6.2 restores the mapping at once; the next pass unmaps and flushes again.
            s.phase = Phase.UNDO
            yield from self.migrate_folio_undo_src(folio, will_retry=True)
            return -Errno.EAGAIN
        yield from self._copy_and_remap(folio)
        return MIGRATEPAGE_SUCCESS

