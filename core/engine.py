"""The engine: a step-able, checkpointed run of one scenario in one mode.

The app owns one engine per view: it asks it to advance (by an event, a phase, a batch, to a time
or to the end), reads an immutable :class:`EngineView`, and draws it. Stepping back restores the
nearest earlier checkpoint and replays forward, which is exact because the engine is
deterministic. Headless runs use the same code with checkpoints and history turned off; where
no one looks at the events one by one, units on the plain path are made at once, as arrays, and
leave the engine as the steps would (run_headless, MigrationTask.skip_ahead).
"""

from __future__ import annotations

import functools
import gc
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.events import IPIS, Event, EventKind, Mechanism, Phase, RoundKind
from core.folios import FolioState, FolioTable
from core.kernel import Stage, TaskState
from core.migrate import MigrationTask
from core.numa import NumaTask
from core.scenario import Caller, Mode, Scenario
from core.stats import Counters, Spend, WorkloadStats, ipis_per_page, pages_per_second
from core.summary import RunSummary
from core.timeline import Mark, Timeline
from core.tlb import CpuRole, Machine
from core.workload import Workload

# The cyclic garbage collector, for a process that runs the engine (the `migviz` command, the
# benchmarks). An engine makes an event tuple or two per step, nearly all freed at once by
# reference counting; with the default thresholds (700, 10, 10) that churn set off a full
# collection every few hundred thousand events, and each walked every long-lived object: the
# imports' (~55,000, ~130,000 with numba) and every element of the 65,536-folio lists a race's
# checkpoints hold. In split view that was about a third of the engine's time.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_collector() -> None:
    """Freeze what exists now (imported modules live as long as the process; no collection need
    walk them again) and collect the young generation less often. For a process of its own:
    objects frozen are never collected, even if they become garbage later."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


FOREVER = 1 << 62  # run_until() with no time limit: to a stop test or the run's end
WORKLOAD_WINDOW_NS = 2_000_000  # how far the lazy workload may lag during a headless run
CHECKPOINT_EVERY = 400  # events between checkpoints (taken at unit boundaries)
MAX_CHECKPOINTS = 48


class CpuActivity:
    """What a CPU is doing at the current instant (values for EngineView.cpu_activity)."""

    IDLE = 0
    RUNNING = 1  # a workload thread runs
    IPI = 2  # handling a shootdown IPI
    STALLED = 3  # its thread waits in migration_entry_wait()
    MIGRATING = 4  # the initiator runs the migrating task
    SPINNING = 5  # the initiator waits for IPI acknowledgements


@dataclass(frozen=True, slots=True)
class IpiRound:
    """The shootdown round in flight (or, right after its FLUSH_DONE, the one just finished)."""

    initiator: int
    targets: tuple[int, ...]
    acked: int  # how many targets have handled it so far
    pages: int  # -1 = full flush
    kind: RoundKind = RoundKind.NONE  # which code path sent it
    done: bool = False  # every target acknowledged (the FLUSH_DONE event)
    # What each target that has acknowledged did (flush_tlb_func by TLB generation), as traced:
    # 1 one entry invalidated, -1 a full flush, 0 nothing (already current).
    flushed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class UnitProgress:
    """How far the unit in flight has got: a batch (serial mode: one folio)."""

    unit: str  # "batch", "folio", or "" between units (a call starts or ends)
    index: int  # batch k (serial: folio k) ...
    total: int  # ... of n in this call
    folios: int  # folios in the unit
    pages: int  # base pages in the unit
    unmapped: int  # folios unmapped so far (batched: in the batch's async passes)
    moved: int  # folios remapped on the destination
    retries: int  # -EAGAIN results in this unit
    rounds: int  # shootdown rounds sent for it (batched: not counting the sync fallback's)
    round_targets: int  # the latest round: targets (before any round: who would be asked)
    round_acked: int  # acknowledgements so far
    round_full: bool  # a full flush rather than one INVLPG
    round_done: bool  # every target acknowledged
    fallback_folio: int  # batched: the folio the one-by-one sync fallback works on, or -1


@dataclass(frozen=True, slots=True)
class EngineView:
    """An immutable snapshot for drawing. Arrays are read-only copies."""

    scenario: str
    clock_ns: int
    mode: Mode
    pending_mode: Mode | None
    move: int  # the migrate_pages() call of the last event (0-based)
    moves: int
    src: int  # the node that call moves folios from ...
    dst: int  # ... and to
    batch: int  # batched: the batch k of `batches`; serial: the folio k of `batches`
    batches: int
    pass_: int
    sync: bool
    phase: Phase
    done: bool
    unit: UnitProgress
    pages_done: int  # base pages migrated so far, the current call's remapped folios included
    pages_total: int  # base pages every move together would migrate (NUMA balancing: those
    # misplaced at the start, on a node no thread runs on)
    pages_per_sec: float  # pages_done per simulated second (at the end: `migviz run`'s figure)
    ipis_per_page: float  # IPIs delivered per page done (at the end: `migviz run`'s figure)
    folio_order: npt.NDArray[np.int8]
    folio_node: npt.NDArray[np.int8]
    folio_state: npt.NDArray[np.int8]
    folio_alive: npt.NDArray[np.bool_]
    folio_first_page: npt.NDArray[np.int64]  # address order: a split THP's pieces follow it
    cpu_role: tuple[CpuRole, ...]
    cpu_node: tuple[int, ...]
    cpu_in_mask: tuple[bool, ...]
    tlb_valid: tuple[int, ...]  # per CPU: entries whose PTE is present
    tlb_stale: tuple[int, ...]  # per CPU: entries whose PTE is a migration entry
    cpu_activity: tuple[int, ...]
    cpu_stalled_on: tuple[int, ...]  # folio a CPU's thread waits for, or -1
    ipi_round: IpiRound | None
    counters: Counters
    workload: WorkloadStats
    last_event: Event | None
    recent_events: tuple[Event, ...]
    events: int
    caller: Caller  # who calls migrate_pages(): an outside task, or the process's own threads
    # (NUMA balancing: one folio per call, from a hinting fault)
    cpu_migrating: tuple[int, ...]  # NUMA balancing: per CPU, the folio its thread is
    # migrating now (from its hinting fault to the call's end), or -1; else all -1
    arch: str = "x86-ipi"  # topology.arch, as configured
    mechanism: Mechanism = IPIS  # how rounds are done here (INVLPGB on < 3 CPUs: IPIs)

    @property
    def interrupts(self) -> bool:
        """Rounds interrupt targets (IPIs); False: a broadcast and a wait."""
        return self.mechanism.interrupts

    @property
    def numa(self) -> bool:
        """NUMA balancing: the threads migrate, one folio per call; no task, move or batch."""
        return self.caller is Caller.NUMA_BALANCING


@dataclass(slots=True)
class _Checkpoint:
    events: int
    clock: int
    task: TaskState
    folios: FolioTable
    counters: Counters
    timeline_mark: Mark
    workload: Workload
    last_event: Event | None
    recent: tuple[Event, ...]


class Engine:
    """One simulated run: a scenario, a mode, a clock."""

    def __init__(self, scenario: Scenario, mode: Mode | None = None, *, checkpoints: bool = True,
                 history: int = 256, max_checkpoints: int = MAX_CHECKPOINTS,
                 checkpoint_every: int = CHECKPOINT_EVERY) -> None:
        """``checkpoints``: keep checkpoints to step back to (at most ``max_checkpoints``: the
        recent ones dense, older ones ever sparser; 2 are enough for stepping back a little),
        one every ``checkpoint_every`` events (a step back replays up to that many)."""
        self.scenario = scenario
        self.machine = Machine(scenario)
        self.initial_mode = Mode(mode or scenario.migration.mode)
        self._use_checkpoints = checkpoints
        self._max_checkpoints = max(max_checkpoints, 2)
        self._checkpoint_every = checkpoint_every
        self._history = history
        self._toggles: list[tuple[int, Mode]] = []
        self._checkpoints: list[_Checkpoint] = []
        self._build()

    def _build(self) -> None:
        scenario = self.scenario
        self.folios = FolioTable(scenario.memory)
        self.timeline = Timeline(self.folios.capacity)
        self.counters = Counters(tlb_shootdowns=np.zeros(scenario.topology.cpus, dtype=np.int64))
        task_type = NumaTask if self.machine.numa else MigrationTask
        self.task: MigrationTask | NumaTask = task_type(
            scenario, self.initial_mode, self.folios, self.timeline, self.counters, self.machine)
        self.workload = Workload(scenario, self.machine, self.folios, self.timeline)
        if isinstance(self.task, NumaTask):
            # NUMA balancing's migrations follow the threads' faults: it plans each scan period
            # with a copy of the workload as it is then (looked up at call time, like below).
            self.task.workload_at = lambda: self.workload
        # A THP split rewrites the page -> folio map the lazy workload reads. Without this, a
        # headless run (workload lagging up to WORKLOAD_WINDOW_NS) classified accesses made
        # before the split against the pieces, and its TLB hit/miss counts differed from a
        # stepped run's. Look self.workload up at call time: restoring a checkpoint replaces it.
        self.task.before_split = lambda time_ns: self.workload.advance_to(time_ns)
        self._unit: Iterator[Event] | None = None
        self.clock = 0
        self.events = 0
        self.last_event: Event | None = None
        self.recent: deque[Event] = deque(maxlen=self._history)
        self._last_checkpoint = -self._checkpoint_every
        self.pages_total = self._pages_total()

    def _pages_total(self) -> int:
        """The base pages the run sets out to migrate: every page, once per move; under NUMA
        balancing, the pages misplaced at the start (on a node none of the threads runs on)."""
        scenario = self.scenario
        if not self.machine.numa:
            return scenario.memory.total_pages * scenario.migration.moves
        table = self.folios
        homes = [self.machine.node_of_cpu[cpu] for cpu in self.machine.running_threads]
        count = table.count
        misplaced = ~np.isin(table.node[:count], homes) & table.alive[:count]
        return int(np.left_shift(1, table.order[:count][misplaced].astype(np.int64)).sum())

    # ------------------------------------------------------------------------------------------
    # Advancing

    @property
    def done(self) -> bool:
        """Every move has finished."""
        return self.task.s.stage is Stage.DONE and self._unit is None

    @property
    def mode(self) -> Mode:
        return self.task.s.mode

    @property
    def pending_mode(self) -> Mode | None:
        return self.task.s.pending_mode

    def _next_event(self, bulk: Callable[[], tuple[int, Event] | None] | None = None
                    ) -> Event | None:
        """The next event, made (not yet applied). ``bulk`` (a headless run's) may make the
        next units at once: it returns how many events that made and the last one."""
        while True:
            if self._unit is None:
                if bulk is not None:
                    made = bulk()
                    if made is not None:
                        self.events += made[0] - 1  # the last is applied by the caller
                        return made[1]
                if self._use_checkpoints:
                    self._maybe_checkpoint()
                self._unit = self.task.next_unit()
                if self._unit is None:
                    return None
            event = next(self._unit, None)
            if self.task.folded:
                self.events += self.task.folded  # receipts folded into the round (run_to_end)
                self.task.folded = 0
            if event is not None:
                return event
            self._unit = None

    def _apply(self, event: Event) -> None:
        self.events += 1
        if event.time_ns > self.clock:
            self.clock = event.time_ns
        self.last_event = event
        self.recent.append(event)

    def step(self) -> list[Event]:
        """Advance by one event."""
        event = self._next_event()
        if event is None:
            return []
        self._apply(event)
        return [event]

    def _advance_while(self, keep_going: Callable[[Event], bool],
                       stop: Callable[[Event], bool] | None = None) -> list[Event]:
        """Apply events; stop after the first one for which keep_going() is false, or for which
        stop() (a breakpoint) is true."""
        applied = []
        while True:
            event = self._next_event()
            if event is None:
                break
            self._apply(event)
            applied.append(event)
            if not keep_going(event) or (stop is not None and stop(event)):
                break
        return applied

    def step_phase(self, stop: Callable[[Event], bool] | None = None) -> list[Event]:
        """Advance to the first event of the next phase (unmap → flush → move; serial: a folio),
        or to a breakpoint before it."""
        start = self.last_event.phase_id if self.last_event else -1
        return self._advance_while(lambda e: e.phase_id == start, stop)

    def step_batch(self, stop: Callable[[Event], bool] | None = None) -> list[Event]:
        """Advance to the first event of the next unit: a batch (serial: a folio), or the start
        or end of a migrate_pages() call, or to a breakpoint before it. From a unit boundary (a
        fresh engine, or one restored to a checkpoint) the first event starts the next unit."""
        unit = self._unit
        return self._advance_while(lambda _: self._unit is unit, stop)

    def run_until(self, time_ns: int, stop: Callable[[Event], bool] | None = None, *,
                  receipts: bool = True) -> list[Event]:
        """Advance simulated time to ``time_ns``. Events up to it are applied; when the task is
        known to be busy past it (copying, waiting, isolating) the clock stops at ``time_ns``;
        otherwise the first event at or after it is applied too, so the clock never runs past an
        event that has not been shown. With ``stop``, the run also ends right after the first
        event for which it is true (a breakpoint); the clock is then that event's time.

        With ``receipts=False`` (a race's side that cannot keep up) the IPI receipts of a
        migratepages round that ends before ``time_ns`` are folded into its FLUSH_DONE, as in
        :meth:`run_headless`: the state at every event applied is the same as unfolded, and the
        run never rests between two receipts before ``time_ns`` (rounds that reach past it are
        made receipt by receipt, so the run still stops at the first event at or after it)."""
        applied: list[Event] = []
        with self._receipts_folded(None if receipts else time_ns):
            while self.clock < time_ns:
                if self.task.s.busy_until > time_ns:
                    self.clock = time_ns
                    break
                event = self._next_event()
                if event is None:
                    break  # the run is over: its clock stays at its last event (its end)
                self._apply(event)
                applied.append(event)
                if stop is not None and stop(event):
                    break
        return applied

    @contextmanager
    def _receipts_folded(self, before: int | None) -> Iterator[None]:
        """While inside: a migratepages round that ends before ``before`` (None: no round)
        folds its IPI receipts into its FLUSH_DONE (TaskBase.fold_before)."""
        task = self.task
        if isinstance(task, MigrationTask) and before is not None:
            task.fold_before = before
        try:
            yield
        finally:
            task.fold_before = -1

    def run_to_end(self, on_event: Callable[[Event], None] | None = None, *,
                   receipts: bool = True) -> int:
        """Run every remaining event (headless); returns how many were applied. With
        ``on_event`` (and ``receipts``) each event is passed to it as it is applied. Otherwise
        no one looks at the events one by one, and the run goes as fast as it can
        (run_headless): ``on_event`` with ``receipts=False`` is a progress display, which sees
        an event now and then. The counters, the event count, the clock and the workload are
        the same either way."""
        before = self.events
        if on_event is not None and receipts:
            for event in self.iter_events():
                on_event(event)
        else:
            self.run_headless(on_progress=on_event)
        return self.events - before

    def run_headless(self, until_ns: int = FOREVER,
                     on_progress: Callable[[Event], None] | None = None) -> None:
        """Apply every event up to ``until_ns`` and the first one after it; with no limit, every
        remaining event, then let the stalled threads finish (finish_workload). No one looks at
        the events one by one, so they need not all be made:

        - a migratepages round's IPI receipts are folded into its FLUSH_DONE;
        - units on the plain path are made at once as arrays (MigrationTask.skip_ahead), except
          in an engine that keeps checkpoints to step back to;
        - in such an engine too, the timeline forgets the flush records the workload has read
          (Timeline.forget_flushes): memory does not grow with every IPI of a long run.

        The counters, the event count, the clock, the folio table, the timeline and the
        workload end exactly as if every event had been made one by one; ``recent`` holds the
        events that were. ``on_progress`` sees the last event of each bulk step and every event
        made one by one. The workload is simulated up to ``until_ns`` at most."""
        with self._receipts_folded(FOREVER):
            for event in self._headless(until_ns, plain=not self._use_checkpoints):
                if on_progress is not None:
                    on_progress(event)

    def catch_up(self) -> None:
        """Simulate the workload up to the clock now (a view would do it anyway): lets a caller
        spread that work over time instead of paying for a long stretch in one view."""
        self.workload.advance_to(self.clock)

    def next_event_not_before(self) -> int:
        """A lower bound on the next event's time (the clock when nothing better is known)."""
        return max(self.clock, self.task.s.busy_until)

    def folio_tlb(self, folio: int) -> tuple[tuple[int, bool], ...]:
        """The CPUs whose TLB holds an entry for a folio now, each with True if it is stale
        (the folio's PTE is already a migration entry)."""
        self.workload.advance_to(self.clock)
        if not 0 <= folio < self.folios.capacity:
            return ()
        valid, stale = self.workload.entries_at(self.clock)
        holders = np.flatnonzero(valid[:, folio] | stale[:, folio])
        return tuple((self.workload.cpus[int(i)], bool(stale[i, folio])) for i in holders)

    def iter_events(self) -> Iterator[Event]:
        """Apply every remaining event, yielding each one as it is applied (headless streaming:
        the folio table shows that event's effect while the caller looks at it)."""
        return self._headless()

    def _headless(self, until_ns: int = FOREVER, *, plain: bool = False) -> Iterator[Event]:
        """Apply events one after another, yielding each as it is applied, with the lazy
        workload simulated every WORKLOAD_WINDOW_NS (up to ``until_ns`` at most). Stop after
        the first event past ``until_ns``; at the run's end, let the stalled threads finish.
        ``plain`` (run_headless, no checkpoints): a migratepages run makes its plain units at
        once, yielding the last event of each bulk step, and forgets the flush records the
        workload has read."""
        task = self.task
        bulk = functools.partial(task.skip_ahead, until_ns) \
            if plain and isinstance(task, MigrationTask) else None
        workload = self.workload
        next_window = workload.horizon + WORKLOAD_WINDOW_NS
        while True:
            event = self._next_event(bulk)
            if event is None:
                break
            self._apply(event)
            if self.clock >= next_window:
                workload.advance_to(min(self.clock, until_ns))
                next_window = self.clock + WORKLOAD_WINDOW_NS
                if bulk is not None:
                    self.timeline.forget_flushes(workload.fl_ptr)
            yield event
            if event.time_ns > until_ns:
                return
        self.finish_workload()

    def finish_workload(self) -> None:
        """After the last event: let every stalled thread wake and finish its access."""
        if self.task.s.stage is Stage.DONE:
            self.workload.advance_to(self.clock + self.scenario.costs.fault_ns + 1)
        else:
            self.workload.advance_to(self.clock)

    # ------------------------------------------------------------------------------------------
    # Mode

    def toggle_mode(self) -> Mode:
        """Ask for the other mode; it applies at the next batch boundary. Returns the mode asked."""
        current = self.pending_mode or self.mode
        wanted = Mode.SERIAL if current is Mode.BATCHED else Mode.BATCHED
        self.set_mode(wanted)
        return wanted

    def set_mode(self, mode: Mode) -> None:
        """Ask for a mode from the next batch boundary on (a batch in flight completes as is)."""
        self._toggles.append((self.events, mode))
        self.task.s.pending_mode = None if mode is self.mode else mode

    # ------------------------------------------------------------------------------------------
    # Going back

    def _maybe_checkpoint(self) -> None:
        if self.events - self._last_checkpoint < self._checkpoint_every and self._checkpoints:
            return
        self._last_checkpoint = self.events
        self._checkpoints.append(_Checkpoint(
            events=self.events, clock=self.clock, task=self.task.s.copy(),
            folios=self.folios.copy(), counters=self.counters.copy(),
            timeline_mark=self.timeline.mark(), workload=self.workload.copy(),
            last_event=self.last_event, recent=tuple(self.recent),
        ))
        if len(self._checkpoints) > self._max_checkpoints:
            # Keep recent ones dense and old ones sparse: drop every other of the older half.
            half = len(self._checkpoints) // 2
            self._checkpoints = self._checkpoints[:half:2] + self._checkpoints[half:]
            if len(self._checkpoints) > self._max_checkpoints:
                self._checkpoints = self._checkpoints[-self._max_checkpoints:]

    def back(self, count: int = 1) -> None:
        """Step back ``count`` events, exactly (restore a checkpoint and replay)."""
        self.seek(max(self.events - count, 0))

    def seek(self, events: int) -> None:
        """Go to the state after exactly ``events`` events (back via checkpoints, or forward)."""
        if events < self.events:
            self._restore_before(events)
        while self.events < events:
            if not self.step():
                break

    def _restore_before(self, events: int) -> None:
        usable = [c for c in self._checkpoints if c.events <= events]
        toggles = [t for t in self._toggles if t[0] <= events]
        if not usable:
            self._checkpoints = []
            self._build()
        else:
            point = usable[-1]
            self._checkpoints = usable
            self.folios = point.folios.copy()
            self.counters = point.counters.copy()
            self.timeline.restore(point.timeline_mark)
            self.task.s = point.task.copy()
            self.task.folios = self.folios
            self.task.counters = self.counters
            self.workload = point.workload.copy()
            self.workload.folios = self.folios
            self._unit = None
            self.clock = point.clock
            self.events = point.events
            self.last_event = point.last_event
            self.recent = deque(point.recent, maxlen=self._history)
            self._last_checkpoint = point.events
        self._toggles = []
        # Replay the toggles at the positions they were made.
        for position, mode in toggles:
            while self.events < position:
                if not self.step():
                    break
            self.set_mode(mode)

    # ------------------------------------------------------------------------------------------
    # Reading

    def view(self) -> EngineView:
        """An immutable snapshot of everything the app draws, at the current instant: every
        event up to and including the last one applied has happened, nothing after it has."""
        done = self.done
        if done:
            self.finish_workload()  # as `migviz run` reports it: every stalled thread woke
        else:
            self.workload.advance_to(self.clock)
        machine = self.machine
        s = self.task.s
        table = self.folios
        cpus = machine.cpus
        valid = [0] * cpus
        stale = [0] * cpus
        activity = [CpuActivity.IDLE] * cpus
        stalled_on = [-1] * cpus
        workload = self.workload
        valid_entries, stale_entries = workload.entries_at(self.clock)
        valid_counts = valid_entries.sum(axis=1)
        stale_counts = stale_entries.sum(axis=1)
        for index, cpu in enumerate(workload.cpus):
            valid[cpu] = int(valid_counts[index])
            stale[cpu] = int(stale_counts[index])
            activity[cpu] = CpuActivity.RUNNING
            folio = int(workload.stalled_on[index])
            # Stalled in migration_entry_wait() only while the folio is still unmapped: once it
            # is remapped the thread is on its way back from the fault.
            if folio >= 0 and table.unmapped[folio]:
                activity[cpu] = CpuActivity.STALLED
                stalled_on[cpu] = folio
        last = self.last_event
        if last is not None and last.kind is EventKind.IPI_RECV:
            activity[last.cpu] = CpuActivity.IPI
        if not done and not machine.numa:  # NUMA balancing has no migrating task of its own
            activity[machine.initiator] = (
                CpuActivity.SPINNING if s.round_targets else CpuActivity.MIGRATING
            )
        migrating = [-1] * cpus
        for cpu, folio in s.numa_migrating.items():  # a thread migrating what it faulted on
            migrating[cpu] = folio
            stalled_on[cpu] = -1
            if activity[cpu] != CpuActivity.IPI:
                activity[cpu] = CpuActivity.MIGRATING
        ipi_round = None
        sender = machine.initiator if s.round_sender < 0 else s.round_sender
        if s.round_targets:
            ipi_round = IpiRound(sender, s.round_targets, s.round_acked, s.round_pages,
                                 s.round_kind, flushed=tuple(s.round_flushed))
        elif s.round_kind is not RoundKind.NONE:  # a broadcast's wait (DSB, TLBSYNC): no targets
            ipi_round = IpiRound(sender, (), 0, s.round_pages, s.round_kind)
        elif last is not None and last.kind is EventKind.FLUSH_DONE:
            ipi_round = IpiRound(last.cpu, last.targets, len(last.targets),
                                 last.pages, last.round_kind, done=True,
                                 flushed=tuple(s.round_flushed))
        mask = set(machine.mm_cpumask)
        # Where the run is: the labels of the last event (the log's last line), so the header
        # never runs ahead of the log (the task's own counters move on before its next event).
        if last is not None:
            move, batch, pass_, sync, phase = last.move, last.batch, last.pass_, last.sync, \
                last.phase
        else:
            move, batch, pass_, sync, phase = 0, 0, s.pass_, s.sync, s.phase
        pages_done = self.pages_done()
        tally = s.unit
        batches = s.batches_planned if s.mode is Mode.BATCHED else len(s.from_list)
        unit = UnitProgress(
            unit=("batch" if s.mode is Mode.BATCHED else "folio") if tally.active and not done
            else "", index=batch, total=batches, folios=tally.folios, pages=tally.pages,
            unmapped=tally.unmapped, moved=tally.moved, retries=tally.retries,
            rounds=tally.rounds,
            round_targets=tally.round_targets if tally.rounds else len(machine.targets),
            round_acked=tally.round_acked, round_full=tally.round_full,
            round_done=tally.round_done, fallback_folio=tally.fallback_folio,
        )
        return EngineView(
            scenario=self.scenario.name, clock_ns=self.clock, mode=s.mode,
            pending_mode=s.pending_mode, move=move, moves=self.scenario.migration.moves,
            src=s.src, dst=s.dst, batch=batch, batches=batches,
            pass_=pass_, sync=sync, phase=phase, done=done, unit=unit,
            pages_done=pages_done,
            pages_total=self.pages_total,
            pages_per_sec=pages_per_second(pages_done, self.clock),
            ipis_per_page=ipis_per_page(self.counters.nr_tlb_remote_flush_received, pages_done),
            folio_order=table.frozen("order"), folio_node=table.frozen("node"),
            folio_state=table.frozen("state"), folio_alive=table.frozen("alive"),
            folio_first_page=table.frozen("first_page"),
            cpu_role=machine.roles, cpu_node=machine.node_of_cpu,
            cpu_in_mask=tuple(c in mask for c in range(cpus)), tlb_valid=tuple(valid),
            tlb_stale=tuple(stale), cpu_activity=tuple(activity),
            cpu_stalled_on=tuple(stalled_on), ipi_round=ipi_round, counters=self.counters.copy(),
            workload=workload.stats(), last_event=last, recent_events=tuple(self.recent),
            events=self.events, arch=self.scenario.topology.arch.value,
            mechanism=self.task.flusher.mechanism, caller=self.scenario.migration.caller,
            cpu_migrating=tuple(migrating),
        )

    def pages_done(self) -> int:
        """Base pages migrated so far: the finished calls' pgmigrate_success, plus the folios
        the call in flight has remapped (its counters are added when it returns)."""
        done = self.counters.pgmigrate_success
        last = self.last_event
        if self.done or last is None:
            return done
        if last.kind is EventKind.MIGRATE_END and not self.machine.numa:
            return done  # NUMA balancing: other threads' calls may be in flight still
        table = self.folios
        remapped = table.state[: table.count] == FolioState.REMAPPED
        remapped &= table.alive[: table.count]
        if not remapped.any():
            return done
        orders = table.order[: table.count][remapped].astype(np.int64)
        return done + int(np.left_shift(1, orders).sum())

    def summary(self) -> RunSummary:
        """The run's figures (`migviz run --json`)."""
        return summarize(self)


def summarize(engine: Engine) -> RunSummary:
    """Counters and derived figures of an engine's run so far."""
    # The workload is simulated lazily and only run_to_end() used to bring it up to date, so a
    # stepped run (step()/run_until() until done) reported no or fewer accesses and stalls than
    # a headless run of the same scenario (which must give identical counters). Catch it up to the
    # clock first and, after the last move, let stalled threads finish, as run_to_end() does.
    # finish_workload() is idempotent: a headless run's figures do not change.
    engine.finish_workload()
    c = engine.counters
    work = engine.workload.stats()
    sim = engine.clock
    pages = c.pgmigrate_success
    # Shares of migrate_pages() CPU time, as a cycles profile counts it: without isolation
    # (outside migrate_pages) and without sleeping on locks or writeback.
    cycles = sum(c.time_ns) - c.time_ns[Spend.ISOLATE] - c.time_ns[Spend.WAIT]

    def share(*parts: Spend) -> float:
        return round(sum(int(c.time_ns[p]) for p in parts) / cycles * 100, 2) if cycles else 0.0

    spent = [int(ns) for ns in c.time_ns]
    return RunSummary(
        scenario=engine.scenario.name,
        mode=engine.initial_mode.value,
        sim_time_ns=sim,
        pgmigrate_success=c.pgmigrate_success,
        pgmigrate_fail=c.pgmigrate_fail,
        thp_migration_success=c.thp_migration_success,
        thp_migration_fail=c.thp_migration_fail,
        thp_migration_split=c.thp_migration_split,
        nr_tlb_remote_flush=c.nr_tlb_remote_flush,
        nr_tlb_remote_flush_received=c.nr_tlb_remote_flush_received,
        nr_tlb_local_flush_all=c.nr_tlb_local_flush_all,
        nr_tlb_local_flush_one=c.nr_tlb_local_flush_one,
        numa_pte_updates=c.numa_pte_updates,
        numa_hint_faults=c.numa_hint_faults,
        numa_hint_faults_local=c.numa_hint_faults_local,
        numa_pages_migrated=c.numa_pages_migrated,
        arch=engine.scenario.topology.arch.value,
        tlbi_broadcasts=c.tlbi_broadcasts,
        sync_waits=c.sync_waits,
        tlb_shootdowns=tuple(c.tlb_shootdowns.tolist()),
        migrate_calls=c.migrate_calls,
        batches=c.batches,
        passes=c.passes,
        retries=c.retries,
        eagain_unmap=c.eagain_unmap,
        eagain_move=c.eagain_move,
        ebusy=c.ebusy,
        enomem=c.enomem,
        lock_waits=c.lock_waits,
        writeback_waits=c.writeback_waits,
        sync_fallback_folios=c.sync_fallback_folios,
        fallback_flush_rounds=c.fallback_flush_rounds,
        batch_flush_rounds=c.batch_flush_rounds,
        pmd_flush_rounds=c.pmd_flush_rounds,
        ordering_violations=c.ordering_violations,
        pages_per_sec=pages_per_second(pages, sim),
        ipis_per_page=ipis_per_page(c.nr_tlb_remote_flush_received, pages),
        accesses=work.accesses,
        # The workload's own progress: fewer accesses per second when its threads handle IPIs,
        # refill what a full flush threw away, or wait on migration entries.
        workload_accesses_per_sec=round(work.accesses / (sim / 1e9), 1) if sim else 0.0,
        tlb_hits=work.tlb_hits,
        tlb_misses=work.tlb_misses,
        stale_hits=work.stale_hits,
        stale_writes=engine.workload.stale_writes,
        lost_writes=work.lost_writes,
        stalls=int(work.stall_ns.size),
        stall_p50_ns=work.percentile(50),
        stall_p99_ns=work.percentile(99),
        stall_max_ns=int(work.stall_ns.max()) if work.stall_ns.size else 0,
        events=engine.events,
        migrate_pages_ns=cycles,
        flush_share_pct=share(Spend.FLUSH),
        copy_share_pct=share(Spend.COPY),
        unmap_flush_share_pct=share(Spend.UNMAP, Spend.FLUSH),
        flush_cpu_ns=int(c.time_ns[Spend.FLUSH])
        + engine.scenario.costs.ipi_handler_ns * c.nr_tlb_remote_flush_received,
        time_isolate_ns=spent[Spend.ISOLATE],
        time_prepare_ns=spent[Spend.PREPARE],
        time_unmap_ns=spent[Spend.UNMAP],
        time_flush_ns=spent[Spend.FLUSH],
        time_copy_ns=spent[Spend.COPY],
        time_move_ns=spent[Spend.MOVE],
        time_wait_ns=spent[Spend.WAIT],
    )
