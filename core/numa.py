"""NUMA balancing as the caller: the process's own threads migrate the folios they fault on.

Mirrors Linux 6.3:

- ``task_numa_work()`` (kernel/sched/fair.c): once per scan period a thread of the process makes
  the next stretch of the map PROT_NONE with ``change_prot_numa()``, one call per 2 MiB-aligned
  chunk, until ``scan_pages`` worth of chunks had PTEs to change (or eight times that much
  address space went by); at the end of the map it starts over (``reset_ptenuma_scan``). Each
  call flushes what it changed through its mmu_gather: ``flush_tlb_mm_range()`` over the changed
  range, a full flush beyond ``tlb_single_page_flush_ceiling`` (33) pages. The scanning thread's
  CPU flushes itself (``tlb_flush`` reason 3, ``nr_tlb_local_flush_one``/``_all``); the other
  CPUs of ``mm_cpumask`` get IPIs. PTEs already PROT_NONE, and folios under migration, are
  skipped.
- ``do_numa_page()`` (mm/memory.c; ``do_huge_pmd_numa_page()`` for a THP): the next touch of a
  PROT_NONE page faults. A folio on the faulting CPU's node gets its PTE back. A misplaced one
  is migrated by the faulting thread itself: ``migrate_misplaced_page()`` isolates it and calls
  ``migrate_pages()`` on a list of one folio, MIGRATE_ASYNC, MR_NUMA_MISPLACED.
- The PROT_NONE PTE is not accessible (``pte_accessible()`` is false: no _PAGE_PRESENT, and no
  flush pending once the scan's own flush is done), so ``try_to_migrate_one()`` flushes nothing
  for it: 6.2's ``ptep_clear_flush()`` skips the flush and 6.3's ``set_tlb_ubc_flush_pending()``
  returns before ``arch_tlbbatch_add_mm()``. A PMD-mapped THP is unmapped by
  ``set_pmd_migration_entry()``, whose ``pmdp_invalidate()`` flushes whatever the PMD held: one
  round from the faulting CPU, its own TLB flushed locally.

So batching (6.3) changes nothing here: a call has one folio to batch, and its unmap defers no
flush. The serial and batched runs send the same IPIs and move the same pages.

Unlike ``migratepages``, the migrations depend on the workload: a fault is a thread's access.
Each scan period is therefore planned ahead with a copy of the workload: simulate to the end of
the period, take the earliest access that found a PROT_NONE PTE, plan that fault (its migration
closes the PTE's interval in the timeline when the folio is remapped), and simulate again from
just before it, until no thread faults on a PROT_NONE PTE before the next scan. The plan is a
heap of steps (plain data, so checkpoints copy it); each step changes the folio table and the
counters when its event is made, in time order.

Not modelled: ``should_numa_migrate_memory()``'s two-stage filter (the built-in scenario puts
every thread on one node, where it would always agree), the scan period's adaptation, and the
time the scan itself takes from its thread beyond one IPI handler's worth. When two rounds are
in flight at once (a scan's flush and a fault's, from different CPUs), each target's
``flush_tlb_func()`` decision is taken in the order the rounds were planned, not in the order
the IPIs arrive.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from core.events import Event, EventKind, Phase, RoundKind
from core.folios import FolioState
from core.kernel import Stage, TaskBase
from core.scenario import Mode
from core.stats import MigrateStats, Spend
from core.timeline import ALSO, FULL, NOTHING, OPEN
from core.workload import Workload

CHUNK_PAGES = 512  # change_prot_numa() chunks end on a 2 MiB boundary (HPAGE_SIZE)
FLUSH_CEILING = 33  # tlb_single_page_flush_ceiling: beyond this many strides, a full flush
LOCAL_SHOOTDOWN = 2  # tlb_flush reason of flush_tlb_func() on the sender, no mm (a batch)
LOCAL_MM_SHOOTDOWN = 3  # tlb_flush reason of flush_tlb_func() on the sender, mm set
DRAIN_PERIODS = 1000  # after the last scan, periods to wait for untouched PROT_NONE PTEs
# How far the planner simulates past what it knows (a couple of base-page migrations): longer
# wastes more of each look when a fault is found early in it, shorter means more looks. The
# plan does not depend on it (tests/test_numa.py).
LOOK_AHEAD_NS = 4_000


@dataclass(frozen=True, slots=True)
class Step:
    """One planned event and what it does when it is made."""

    kind: EventKind
    cpu: int
    folio: int = -1
    pages: int = 0
    arg: int = 0
    targets: tuple[int, ...] = ()
    round_kind: RoundKind = RoundKind.NONE
    call: int = 0  # migrate_pages() call (Event.move), or the scan's index for scan steps
    mode: Mode = Mode.BATCHED
    phase: Phase = Phase.IDLE
    node: int = -1  # REMAP: the destination node
    folios: tuple[int, ...] = ()  # NUMA_SCAN: folios made PROT_NONE; flushes: folios covered
    spend: tuple[tuple[Spend, int], ...] = ()  # time booked when the step's event is made


class NumaTask(TaskBase):
    """NUMA balancing: the scanner and the threads' hinting faults, period by period."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.numa = self.scenario.numa
        # The engine's workload, looked up at call time (a checkpoint restore replaces it).
        self.workload_at: Callable[[], Workload] | None = None
        self.s.numa_next_scan = self.s.busy_until = self.numa.scan_period_ns

    # ------------------------------------------------------------------------------------------
    # The outer loop

    def next_unit(self) -> Iterator[Event] | None:
        """One scan period: plan it, then make its events in time order."""
        s = self.s
        if s.pending_mode is not None:
            s.mode, s.pending_mode = s.pending_mode, None
        if s.stage is Stage.DONE:
            return None
        s.stage = Stage.BODY
        return self._period()

    def _period(self) -> Iterator[Event]:
        s = self.s
        start = s.numa_next_scan
        scanned = self.task_numa_work(start)
        if not scanned:
            s.numa_idle += 1
        end = self._plan_faults(start, start + self.numa.scan_period_ns)
        timeline = self.timeline
        untouched = bool((timeline.open_interval >= 0).any())
        finished = not scanned and (not untouched or s.numa_idle >= DRAIN_PERIODS)
        s.numa_next_scan = end
        yield from self._make_until(OPEN if finished else end)
        if finished:
            s.stage = Stage.DONE
            s.phase = Phase.DONE

    def _make_until(self, limit: int) -> Iterator[Event]:
        """Make the planned events before ``limit``, earliest first."""
        s = self.s
        heap = s.numa_steps
        while heap and heap[0][0] < limit:
            time_ns, _, step = heapq.heappop(heap)
            event = self._make(step, time_ns)
            s.busy_until = heap[0][0] if heap and heap[0][0] < limit else limit
            yield event
        s.busy_until = limit

    def _push(self, time_ns: int, step: Step) -> None:
        s = self.s
        heapq.heappush(s.numa_steps, (time_ns, s.numa_order, step))
        s.numa_order += 1

    # ------------------------------------------------------------------------------------------
    # The scanner: task_numa_work() → change_prot_numa()

    def _scanner(self) -> int:
        """The CPU of the thread whose tick finds the scan due: the running threads in turn."""
        threads = self.machine.running_threads
        return threads[self.s.numa_scans % len(threads)]

    def task_numa_work(self, time_ns: int) -> bool:
        """One scan, from the scanner's offset; False once ``passes`` scans of the map are done."""
        s = self.s
        table = self.folios
        total = table.total_pages
        if s.numa_cursor >= total:  # find_vma() past the end: reset_ptenuma_scan()
            s.numa_cursor = 0
            s.numa_pass += 1
        if s.numa_pass >= self.numa.passes:
            return False
        cpu = self._scanner()
        scan = s.numa_scans
        s.numa_scans += 1
        pages = self.numa.scan_pages
        virtpages = 8 * pages
        start = s.numa_cursor
        now = time_ns
        first = table.first_page[: table.count]
        while True:
            end = min(-(-(start + pages) // CHUNK_PAGES) * CHUNK_PAGES, total)
            now, updated = self.change_prot_numa(cpu, scan, start, end, now, first)
            if updated:
                pages -= end - start
            virtpages -= end - start
            start = end
            if start >= total:  # the last VMA is done: reset_ptenuma_scan()
                start = 0
                s.numa_pass += 1
                break
            if pages <= 0 or virtpages <= 0:
                break
        s.numa_cursor = start
        return True

    def change_prot_numa(self, cpu: int, scan: int, start: int, end: int, time_ns: int,
                         first: np.ndarray) -> tuple[int, int]:
        """Make the PTEs of pages [start, end) PROT_NONE, then flush the changed range
        (tlb_finish_mmu → flush_tlb_mm_range). Returns when it is done and the PTEs updated."""
        s = self.s
        table = self.folios
        timeline = self.timeline
        candidates = np.flatnonzero((first >= start) & (first < end) & table.alive[: table.count])
        marked = [
            int(f) for f in candidates
            if timeline.open_interval[f] < 0 and s.numa_busy.get(int(f), -1) <= time_ns
        ]
        updated = sum(table.nr_pages(f) for f in marked)
        # tlb_gather_mmu() → inc_tlb_flush_pending(): until this call's flush is done, a
        # PROT_NONE PTE counts as accessible (pte_accessible) and unmapping it flushes.
        gather = len(s.numa_gathers)
        s.numa_gathers.append((time_ns, OPEN))
        for folio in marked:
            timeline.unmap(folio, time_ns)
        self._push(time_ns, Step(EventKind.NUMA_SCAN, cpu, pages=updated, arg=end - start,
                                 call=scan, folios=tuple(marked)))
        # change_pte_range() per entry walked (a PMD-mapped THP is one entry)
        entries = sum(self._ptes(int(f)) for f in candidates)
        done = time_ns + self.costs.walk_pte_ns * entries
        if not marked:
            s.numa_gathers[gather] = (time_ns, done)
            return done, 0
        # The mmu_gather's range: from the first changed entry to the end of the last; its
        # stride is a page, or a PMD when only PMDs changed (tlb_get_unmap_shift).
        low = int(table.first_page[marked[0]])
        high = int(table.first_page[marked[-1]]) + table.nr_pages(marked[-1])
        only_pmds = all(table.is_pmd_mapped(f) for f in marked)
        strides = (high - low) // (CHUNK_PAGES if only_pmds else 1)
        partial = strides <= FLUSH_CEILING
        finish = self._flush_tlb_mm_range(
            cpu, marked, high - low if partial else -1, strides if partial else 0,
            RoundKind.PROT_NONE, scan, done)
        s.numa_gathers[gather] = (time_ns, finish)
        return finish, updated

    def _flush_pending(self, time_ns: int) -> bool:
        """mm_tlb_flush_pending(): some change_prot_numa() call's flush is not done yet."""
        return any(start <= time_ns < end for start, end in self.s.numa_gathers[-4:])

    # ------------------------------------------------------------------------------------------
    # flush_tlb_mm_range() from a thread of the process: the sender is in mm_cpumask

    def _flush_tlb_mm_range(self, cpu: int, folios: list[int], send_pages: int, strides: int,
                            kind: RoundKind, call: int, time_ns: int,
                            mode: Mode | None = None, *, batch: bool = False) -> int:
        """inc_mm_tlb_gen(), then IPIs to the other CPUs of mm_cpumask (if any) and
        flush_tlb_func() on the sender itself; returns when every target has acknowledged.
        ``send_pages`` as native_flush_tlb_multi() traces it (-1 a full flush); ``strides``
        the entries a partial flush invalidates (0 for a full flush). ``batch``: 6.3's
        arch_tlbbatch_flush() instead, a full flush with no mm (the generations were bumped as
        the PTEs were deferred; the sender traces reason 2, local shootdown)."""
        s = self.s
        machine = self.machine
        mode = s.mode if mode is None else mode
        if not batch:
            s.mm_tlb_gen += 1
        request = s.mm_tlb_gen if strides else None
        local_reason = LOCAL_SHOOTDOWN if batch else LOCAL_MM_SHOOTDOWN

        def decide(target: int) -> int:
            traced = self.flush_tlb_func(target, request)
            return strides if traced == 1 else traced

        def record(traced: int) -> list[int]:
            if traced == -1:
                return [FULL]
            if traced == 0:
                return [NOTHING]
            return [folios[0]] + [ALSO - f for f in folios[1:]]

        alone = self._alone(cpu)
        covered = tuple(folios)
        proto = Step(EventKind.FLUSH_SEND, cpu, folios[0] if strides else FULL, call=call,
                     mode=mode, phase=Phase.FLUSH, folios=covered, round_kind=kind)
        cpus: list[int] = []
        flushed: list[int] = []
        times: list[int] = []
        if not alone:
            decided = {target: decide(target) for target in machine.targets_from(cpu)}
            plan = machine.round_plan(decided, sender=cpu)
            targets = plan.targets
            self._push(time_ns, replace(proto, pages=send_pages, arg=len(targets),
                                        targets=targets))
            costs = self.costs
            local_at = time_ns + costs.ipi_send_ns + len(targets) * costs.ipi_target_ns
        else:
            plan, targets, local_at = None, (), time_ns
        local = decide(cpu)
        self._push(local_at, replace(proto, kind=EventKind.LOCAL_FLUSH, pages=local,
                                     arg=local_reason))
        for entry in record(local):
            cpus.append(cpu)
            flushed.append(entry)
            times.append(local_at)
        finish = local_at + machine.flush_work_ns(local)
        if plan is not None:
            for target, offset in zip(targets, plan.offsets_ns, strict=True):
                traced = decided[target]
                self._push(time_ns + offset, replace(proto, kind=EventKind.IPI_RECV, cpu=target,
                                                     pages=traced, arg=len(targets)))
                for entry in record(traced):
                    cpus.append(target)
                    flushed.append(entry)
                    times.append(time_ns + offset)
            finish = max(finish, time_ns + plan.total_ns)
            self._push(finish, replace(proto, kind=EventKind.FLUSH_DONE, pages=send_pages,
                                       arg=len(targets), targets=targets,
                                       spend=((Spend.FLUSH, finish - time_ns),)))
        self.timeline.insert_flushes(np.array(cpus, dtype=np.int64),
                                     np.array(flushed, dtype=np.int64),
                                     np.array(times, dtype=np.int64))
        s.numa_settled = max(s.numa_settled, max(times))
        return finish

    def _alone(self, cpu: int) -> bool:
        """flush_tlb_mm_range(): no other CPU in mm_cpumask (cpumask_any_but), so no IPIs at
        all, only the local flush."""
        return all(c == cpu for c in self.machine.mm_cpumask)

    # ------------------------------------------------------------------------------------------
    # The threads' hinting faults, found by simulating the workload ahead

    def _plan_faults(self, start: int, nominal_end: int) -> int:
        """Plan every hinting fault before the next scan; returns the next scan's time (the
        nominal one, or later if a planned flush would still be logging then).

        ``exact`` is the workload simulated up to a time no later plan can change. A copy
        looks a little ahead of it: each thread stops at its first access that found the PTE
        PROT_NONE or under migration. The earliest such access to each PROT_NONE folio is a
        fault; they are planned in time order until the first plan changes what the copy saw
        (a thread resuming, a flush logged, a PTE restored that another thread then touched).
        Accesses before that are the same in the copy and in truth, so ``exact`` moves there.
        """
        assert self.workload_at is not None, "the engine sets workload_at"
        exact = self.workload_at().copy()
        exact.advance_to(start)
        ends = self.timeline.iv_end
        while True:
            end = max(nominal_end, self.s.numa_settled + 1)
            if exact.horizon >= end:
                return end
            stop = min(end, exact.horizon + LOOK_AHEAD_NS)
            ahead = exact.copy()
            ahead.advance_to(stop)
            stalls = sorted(
                (int(ahead.stall_start[t]), int(t), int(ahead.stalled_on[t]))
                for t in np.flatnonzero(ahead.stalled_on >= 0)
                if ends.data[int(ahead.stall_interval[t])] == OPEN
            )
            if not stalls:
                exact = ahead
                continue
            changed = stop
            restored: dict[int, bool] = {}  # folios planned in this look: PTE just restored?
            for when, thread, folio in stalls:
                if when >= changed:
                    break
                if folio in restored:
                    # Another thread touched it after the fault: it waits for the migration
                    # until the remap (as the copy saw, up to then), or finds the PTE restored.
                    if restored[folio]:
                        changed = when
                    continue
                cpu = self.machine.running_threads[thread]
                change, restored[folio] = self.do_numa_page(cpu, folio, when)
                changed = min(changed, change)
            exact.advance_to(changed)

    def do_numa_page(self, cpu: int, folio: int, time_ns: int) -> tuple[int, bool]:
        """A thread on ``cpu`` touched PROT_NONE ``folio`` at ``time_ns``: restore the PTE if the
        folio is already on this node, else migrate it (migrate_misplaced_page). Returns the
        first time the plan changes what a thread does (the faulting thread resumes, a flush
        reaches a CPU), and whether the PTE was simply restored."""
        s = self.s
        here = self.machine.node_of_cpu[cpu]
        if s.numa_node.get(folio, int(self.folios.node[folio])) == here:
            # The fault handler puts the PTE back (`goto out_map`); the faulting access itself
            # found it PROT_NONE, so the interval ends just after it.
            self.timeline.remap(folio, time_ns + 1, moved=False)
            self._push(time_ns, Step(EventKind.NUMA_FAULT, cpu, folio, arg=1,
                                     call=s.numa_calls))
            return time_ns + self.costs.fault_ns, True
        self._push(time_ns, Step(EventKind.NUMA_FAULT, cpu, folio, call=s.numa_calls))
        flushes = self.timeline.fl_time.size
        remap = self.migrate_misplaced_page(cpu, folio, here, time_ns + self.costs.fault_ns)
        if self.timeline.fl_time.size > flushes:  # a THP's PMD round reaches every CPU
            times = self.timeline.fl_time.view()
            remap = min(remap, int(times[np.searchsorted(times, time_ns, side="right")]))
        return remap, False

    def migrate_misplaced_page(self, cpu: int, folio: int, node: int, time_ns: int) -> int:
        """numamigrate_isolate_page(), then migrate_pages() on a list of one folio (MIGRATE_ASYNC,
        MR_NUMA_MISPLACED): 6.2's unmap_and_move() or 6.3's migrate_pages_batch(), which do the
        same steps for one folio, 6.3 only cutting a batch of one first. Returns the remap."""
        s = self.s
        table = self.folios
        costs = self.costs
        call = s.numa_calls
        s.numa_calls += 1
        mode = s.mode
        ptes = self._ptes(folio)
        nr = table.nr_pages(folio)
        pmd = table.is_pmd_mapped(folio)
        proto = Step(EventKind.MIGRATE_START, cpu, folio, call=call, mode=mode)
        now = time_ns + costs.isolate_folio_ns
        self._push(now, replace(proto, pages=1,
                                spend=((Spend.ISOLATE, costs.isolate_folio_ns),)))
        if mode is Mode.BATCHED:
            self._push(now, replace(proto, kind=EventKind.BATCH_START, pages=nr, arg=1))
        prepare = costs.alloc_ns + costs.lock_ns
        now += prepare + costs.unmap_pte_ns * ptes
        spend: tuple[tuple[Spend, int], ...] = ((Spend.PREPARE, prepare),
                                                (Spend.UNMAP, costs.unmap_pte_ns * ptes))
        # Whether this unmap flushes depends on the scans in flight then: the next scan must
        # not start before it (nor before any flush this plan logs).
        s.numa_settled = max(s.numa_settled, now)
        if pmd:
            # set_pmd_migration_entry() → pmdp_invalidate(): the PMD is flushed at once.
            now = self._flush_tlb_mm_range(cpu, [folio], table.nr_pages(folio), 1,
                                           RoundKind.PMD, call, now, mode)
        elif self._flush_pending(now):
            # A scan's mmu_gather has not flushed yet (mm_tlb_flush_pending): pte_accessible()
            # is true for the PROT_NONE PTE, and try_to_migrate_one() flushes as for any other.
            if mode is Mode.BATCHED and not self._alone(cpu):
                # should_defer_flush(): set_tlb_ubc_flush_pending() → arch_tlbbatch_add_mm()
                # per PTE, then try_to_unmap_flush() after the unmap loop: a full flush.
                s.mm_tlb_gen += ptes
                self._push(now, replace(proto, kind=EventKind.UNMAP, pages=ptes, arg=1,
                                        phase=Phase.UNMAP, spend=spend))
                now = self._flush_tlb_mm_range(cpu, [folio], -1, 0, RoundKind.BATCH, call, now,
                                               mode, batch=True)
                spend = ()
            else:
                # ptep_clear_flush() per PTE, then the migration entry.
                for _ in range(ptes):
                    now = self._flush_tlb_mm_range(cpu, [folio], 1, 1, RoundKind.PTE, call,
                                                   now, mode)
        # Otherwise no flush: the PROT_NONE PTE is not accessible.
        if spend:
            self._push(now, replace(proto, kind=EventKind.UNMAP, pages=ptes, phase=Phase.UNMAP,
                                    spend=spend))
        now += costs.move_ns
        self.timeline.copy(folio, now)
        self._push(now, replace(proto, kind=EventKind.COPY, pages=nr, phase=Phase.MOVE,
                                spend=((Spend.MOVE, costs.move_ns),)))
        copy_ns = costs.copy_ns(table.orders[folio])
        remap_ns = costs.remap_pte_ns * ptes
        now += copy_ns + remap_ns
        self.timeline.remap(folio, now, moved=True)
        self._push(now, replace(proto, kind=EventKind.REMAP, pages=ptes, phase=Phase.MOVE,
                                node=node,
                                spend=((Spend.COPY, copy_ns), (Spend.MOVE, remap_ns))))
        self._push(now, replace(proto, kind=EventKind.MIGRATE_END, pages=nr,
                                arg=int(pmd)))
        s.numa_busy[folio] = now
        s.numa_node[folio] = node
        return now

    # ------------------------------------------------------------------------------------------
    # Making the planned events

    def _make(self, step: Step, time_ns: int) -> Event:
        """Apply a step's effects, then make its event (the state it changed is changed)."""
        s = self.s
        table = self.folios
        counters = self.counters
        kind = step.kind
        folio = step.folio
        s.now = max(s.now, time_ns)
        for where, ns in step.spend:
            counters.time_ns[where] += ns
        thp = (0, 0, 0)
        if kind is EventKind.NUMA_SCAN:
            counters.numa_pte_updates += step.pages
            marked = np.asarray(step.folios, dtype=np.int64)
            table.unmapped[marked] = True
            table.flush_pending[marked] = True
            table.state[marked] = FolioState.PROT_NONE
        elif kind is EventKind.NUMA_FAULT:
            counters.numa_hint_faults += 1
            counters.numa_hint_faults_local += step.arg
            if step.arg:
                table.unmapped[folio] = False
                table.state[folio] = FolioState.MAPPED
            else:  # misplaced: the faulting thread migrates it (migrate_misplaced_page)
                s.numa_migrating[step.cpu] = folio
        elif kind is EventKind.MIGRATE_START:
            counters.migrate_calls += 1
            counters.passes += 1
        elif kind is EventKind.BATCH_START:
            counters.batches += 1
        elif kind is EventKind.FLUSH_SEND:
            counters.nr_tlb_remote_flush += 1
            counters.rounds_by_kind[step.round_kind] += 1
            if step.round_kind is RoundKind.PMD:
                counters.pmd_flush_rounds += 1
            elif step.round_kind is RoundKind.BATCH:
                counters.batch_flush_rounds += 1
            s.round_sender, s.round_targets, s.round_acked = step.cpu, step.targets, 0
            s.round_pages, s.round_kind, s.round_flushed = step.pages, step.round_kind, []
        elif kind is EventKind.LOCAL_FLUSH:
            if step.pages == -1:
                counters.nr_tlb_local_flush_all += 1
            else:
                counters.nr_tlb_local_flush_one += step.pages
        elif kind is EventKind.IPI_RECV:
            counters.nr_tlb_remote_flush_received += 1
            counters.tlb_shootdowns[step.cpu] += 1
            s.round_acked += 1
            s.round_flushed.append(step.pages)
        elif kind is EventKind.FLUSH_DONE:
            s.round_targets, s.round_acked, s.round_kind = (), 0, RoundKind.NONE
            s.round_sender = -1
            covered = np.asarray(step.folios, dtype=np.int64)
            table.flush_pending[covered] = False
        elif kind is EventKind.UNMAP:
            table.unmapped[folio] = True
            table.flush_pending[folio] = False
            table.state[folio] = FolioState.FLUSHED  # no TLB holds the PROT_NONE page
        elif kind is EventKind.COPY:
            table.state[folio] = FolioState.COPYING
        elif kind is EventKind.REMAP:
            table.node[folio] = step.node
            table.unmapped[folio] = False
            table.state[folio] = FolioState.REMAPPED
        elif kind is EventKind.MIGRATE_END:
            stats = MigrateStats(nr_succeeded=step.pages, nr_thp_succeeded=step.arg)
            counters.add_migrate_stats(stats)
            counters.numa_pages_migrated += step.pages
            table.state[folio] = FolioState.MAPPED  # the call is over; the folio is just mapped
            s.numa_migrating.pop(step.cpu, None)
            thp = (step.arg, 0, 0)
        if kind is EventKind.LOCAL_FLUSH and self._alone(step.cpu):  # no remote round follows
            table.flush_pending[np.asarray(step.folios, dtype=np.int64)] = False
        if step.phase is not s.phase:
            self._new_phase(step.phase)
        node, order, page = -1, 0, -1
        if folio >= 0:
            node, order, page = int(table.node[folio]), table.orders[folio], \
                table.first_pages[folio]
        serial = step.mode is Mode.SERIAL
        pages = step.pages
        arg = 0 if kind is EventKind.MIGRATE_END else step.arg
        event = Event(s.seq, time_ns, kind, step.cpu, folio, pages, arg, step.phase,
                      1, s.numa_pass, False, step.targets,
                      step.call, s.phase_id, thp, node, order, page, 0, step.round_kind, serial)
        s.seq += 1
        return event
