"""The migrating task: `migratepages` moving the workload's folios, one migrate_pages() call per
one-way move, node 0 → 1 → 0 ..., in Linux 6.2's serial shape or 6.3's batched one.

The outer loop (which call, which batch, which serial pass) is explicit state in
:class:`~core.kernel.TaskState`; one *unit* (a batch, or one folio in serial mode) is a generator.
Between units nothing is in flight, which is where the engine takes checkpoints and where a mode
toggle lands.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from core.events import Event, EventKind, Phase
from core.folios import FolioState
from core.kernel import Stage
from core.migrate_batched import BatchedPath
from core.migrate_serial import SerialPath
from core.scenario import Mode
from core.stats import MigrateStats, Spend

# Folios made at once by skip_ahead() (or one batch, if larger): a few ms of simulated time.
BULK_FOLIOS = 1024


class MigrationTask(BatchedPath, SerialPath):
    """migratepages: do_migrate_pages() → migrate_to_node() → migrate_pages(), move after move."""

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

    def skip_ahead(self, until_ns: int) -> tuple[int, Event] | None:
        """For a headless run that looks at no event but the last: the next units made at once
        as arrays, when they take the plain path and end by ``until_ns`` (serial folios or
        whole batches, up to BULK_FOLIOS folios, or one batch). Returns how many events that
        made and the last one, or None when the next unit must be made step by step
        (next_unit())."""
        s = self.s
        if s.stage is not Stage.BODY or s.pending_mode is not None or not self._plain_steps():
            return None
        if s.mode is Mode.BATCHED:
            return self._plain_batches(until_ns, BULK_FOLIOS)
        return self._plain_folios(until_ns, BULK_FOLIOS)

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

    def _start_call(self) -> Iterator[Event]:
        """do_migrate_pages() → migrate_to_node(): isolate, then migrate_pages() starts."""
        s = self.s
        s.src, s.dst = (0, 1) if s.move % 2 == 0 else (1, 0)
        # do_migrate_pages() drains the LRU caches; queue_pages_range() walks the mm and
        # isolates every folio on the source node: work outside migrate_pages(), booked here.
        self._spend(Spend.ISOLATE, self._isolation_ns(s.src))
        s.from_list = self.folios.on_node(s.src)
        s.from_pos = 0
        s.next_pass, s.ret, s.split = [], [], []
        s.stats = MigrateStats()
        s.attempts = {}
        s.batch = 0
        s.units = 0
        s.serial_pass = 0
        s.serial_retry_pages = s.serial_thp_retry = 0
        s.batches_planned = self._count_batches(s.from_list) if s.mode is Mode.BATCHED else 0
        table = self.folios
        table.state[: table.count][table.alive[: table.count]] = FolioState.MAPPED
        s.stage = Stage.BODY
        self.counters.migrate_calls += 1
        if s.mode is Mode.SERIAL:
            self.counters.passes += 1
        self._new_phase(Phase.IDLE)
        s.unit.active = False
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
        s.unit.active = False
        stats = s.stats
        end = self._event(EventKind.MIGRATE_END, pages=stats.nr_succeeded,
                          arg=stats.nr_failed_pages)
        # After migrate_pages() returns, migrate_to_node() puts what did not move back on the
        # LRU (putback_movable_pages): outside the call, before the next one can start.
        listed = np.asarray(s.from_list + s.split, dtype=np.int64)
        left = listed[table.alive[listed] & (table.state[listed] != FolioState.REMAPPED)]
        putback = self.costs.putback_folio_ns * int(np.unique(left).size)
        if s.stage is Stage.START:
            s.busy_until = s.now + putback + self._isolation_ns(s.dst)
        # Label the event with the call it ends: s.move already names the next call (the
        # MIGRATE_END of move 0 used to say move 1, unlike every other event of that call).
        yield end._replace(move=finished,
                           thp=(stats.nr_thp_succeeded, stats.nr_thp_failed, stats.nr_thp_split))
        self._spend(Spend.ISOLATE, putback)

