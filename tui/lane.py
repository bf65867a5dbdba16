"""A lane: one engine and the history of its events that the screen needs besides its view.

The app has one lane per view (two in split view). A lane advances its engine to a simulated time
within a frame budget and builds the immutable :class:`~tui.widgets.frame.Frame` the widgets draw.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from core.engine import FOREVER, Engine, EngineView
from core.events import Event, EventKind
from core.migrate import MigrationTask
from core.scenario import Mode, Scenario
from core.timeline import ALSO
from core.tlb import Machine
from tui.screens.inspect import FolioReport
from tui.widgets.frame import EventHistory, Frame

FLASH_FRAMES = 6  # while playing, a CPU that took an IPI stays lit at least this many frames
SPARK_BUCKETS = 256


def spark_base_ns(machine: Machine) -> int:
    """The sparkline's narrowest bucket: one full shootdown round (it doubles as a run grows)."""
    return max(machine.full_round.total_ns, 200)


SPLIT_CHECKPOINT_EVERY = 4000  # a race's lane: a step back replays at most this many events
DEADLINE_EVERY = 64  # events between two looks at the wall clock while advancing


class Lane:
    """One engine and the history derived from its events."""

    def __init__(self, scenario: Scenario, mode: Mode | None, *, split: bool = False) -> None:
        """``split``: a side of the race, which is never stepped back or inspected: it keeps
        two checkpoints (enough to hold back an event that lies ahead) and no event rows."""
        self.scenario = scenario
        # A side of the race steps back only to hold back one event that lies ahead, which it
        # does only while it keeps up: a checkpoint every 4,000 events is enough (a replay of
        # tens of ms), and copying the run's state (the threads' TLBs, the folio list) every
        # 400 was a sixth of its engine's time.
        self.engine = Engine(scenario, mode, max_checkpoints=2,
                             checkpoint_every=SPLIT_CHECKPOINT_EVERY) if split \
            else Engine(scenario, mode)
        self.history = EventHistory(rows=not split, base_ns=spark_base_ns(self.engine.machine))
        # A side of the race that cannot keep up folds each round's IPI receipts into the round
        # (the screen skips those instants anyway); its sparkline and CPU flashes then come
        # from the deliveries the timeline logs, which is where the receipts come from.
        self.deliveries = DeliveryLog(self.engine) if split and \
            isinstance(self.engine.task, MigrationTask) and self.engine.task.flusher.interrupts \
            else None
        self.flash_until: dict[int, int] = {}
        self._done_view: tuple[Engine, EngineView] | None = None
        self.next_at: int | None = None  # a long event lies ahead at this time (not shown yet)
        self.lagging = False
        self.lagging_before = False  # the advance before the last one lagged
        self.hit: Event | None = None  # the breakpoint event the last advance() stopped at

    def record(self, events: list[Event], frame_no: int) -> None:
        if self.deliveries is not None:
            times, cpus = self.deliveries.read()
            self.history.add_ipis(times)
            for cpu in set(cpus.tolist()):
                self.flash_until[cpu] = frame_no + FLASH_FRAMES
            return
        self.history.extend(events)
        for event in events:
            if event.kind is EventKind.IPI_RECV:
                self.flash_until[event.cpu] = frame_no + FLASH_FRAMES

    def seek(self, count: int, frame_no: int) -> None:
        """Show the run after exactly ``count`` events: back, restored exactly (checkpoints and
        replay); forward, run and recorded."""
        engine = self.engine
        if count < engine.events:
            engine.seek(count)
            self.stepped_back()
        elif count > engine.events:
            self.record(engine.run_until(FOREVER, lambda event: event.seq + 1 >= count),
                        frame_no)

    def stepped_back(self) -> None:
        self.history.truncate(self.engine.events)
        self.flash_until.clear()
        self.next_at = None

    def advance(self, target: float, tolerance: float, deadline: float, frame_no: int,
                stop: Callable[[Event], bool] | None = None) -> int:
        """Run the engine to ``target`` ns; returns how many events were applied. Sets
        ``lagging`` when the frame budget ran out before the target was reached, and ``hit`` to
        the event a breakpoint (``stop``) stopped at.

        ``run_until`` applies the first event at or after the target, which for a long step
        (a 2 MiB copy) would show its end far too early; such an event is taken back and
        replayed once simulated time reaches it.
        """
        engine = self.engine
        self.lagging_before, self.lagging = self.lagging, False
        self.hit = None
        if engine.done or engine.clock >= target:
            return 0
        if self.next_at is not None and target + tolerance < self.next_at:
            # Inside a known quiet stretch: move the clock and simulate the workload a frame at a
            # time, so the first view after the gap has no long stretch left to catch up.
            engine.run_until(int(target))
            engine.catch_up()
            return 0
        self.next_at = None
        applied: list[Event] = []
        made = 0
        out_of_time = False

        def enough(event: Event) -> bool:
            """Stop at a breakpoint, or once the frame's time for the engine is spent (looked
            at every DEADLINE_EVERY events: a stretch of simulated time may hold thousands)."""
            nonlocal made, out_of_time
            if stop is not None and stop(event):
                self.hit = event
                return True
            made += 1
            if made % DEADLINE_EVERY == 0 and time.perf_counter() > deadline:
                out_of_time = True
                return True
            return False

        # Fold receipts only while the side lags (it did last frame): at speeds it keeps up
        # with, every receipt is an instant the screen may rest on.
        receipts = not (self.lagging_before and stop is None and self.deliveries is not None)
        while engine.clock < target and not engine.done and self.hit is None:
            applied += engine.run_until(int(target) + 1, enough, receipts=receipts)
            if out_of_time:
                self.lagging = engine.clock < target
                break
        if self.hit is not None:
            pass  # stopped on a breakpoint: show that event now, whatever its time
        elif applied and applied[-1].time_ns > target + tolerance and not engine.done:
            engine.back(1)
            self.next_at = applied[-1].time_ns
            applied.pop()
        elif not engine.done and engine.next_event_not_before() > target + tolerance:
            # The task is busy (isolating, copying a THP, waiting): nothing before this time.
            self.next_at = engine.next_event_not_before()
        self.record(applied, frame_no)
        return len(applied)

    def _view(self) -> EngineView:
        """The engine's view; a finished run's is read once (the race goes on beside it)."""
        engine = self.engine
        cached = self._done_view
        if cached is not None and cached[0] is engine and engine.done \
                and cached[1].events == engine.events \
                and cached[1].pending_mode == engine.pending_mode:
            return cached[1]
        view = engine.view()
        self._done_view = (engine, view) if view.done else None
        return view

    def flash_changes(self, frame_no: int) -> bool:
        """Whether a CPU's IPI flash ends at this frame (the panel must repaint)."""
        return any(until == frame_no - 1 for until in self.flash_until.values())

    def frame(self, *, clock_ns: int | None, playing: bool, speed: float, rate_ns: float,
              now_ns: int, bucket_ns: int, selected: int, frame_no: int,
              fast_forward: bool = False, achieved_ns: float | None = None,
              behind: bool = False, marks: frozenset[str] = frozenset()) -> Frame:
        view = self._view()
        if clock_ns is None or view.done:
            clock_ns = view.clock_ns
        flash = {cpu for cpu, until in self.flash_until.items() if until >= frame_no} \
            if playing else set()
        ipi_round = view.ipi_round
        if ipi_round is not None and not ipi_round.done:
            flash.update(ipi_round.targets[: ipi_round.acked])
        last = view.last_event
        if last is not None and last.kind is EventKind.IPI_RECV:
            flash.add(last.cpu)
        return Frame(
            view=view, scenario=self.scenario, playing=playing, speed=speed, rate_ns=rate_ns,
            flash=frozenset(flash),
            sparkline=self.history.ipi_buckets(now_ns, bucket_ns, SPARK_BUCKETS),
            spark_bucket_ns=bucket_ns, selected=selected,
            fast_forward=fast_forward and playing, clock_ns=max(clock_ns, view.clock_ns),
            achieved_ns=achieved_ns if playing else None, behind=behind and playing,
            marks=marks,
        )

    def report(self, folio: int, view: EngineView | None = None) -> FolioReport | None:
        view = view if view is not None else self.engine.view()
        if not 0 <= folio < view.folio_state.size:
            return None
        rows = tuple(self.history.folio_rows(folio))
        # The rounds that flushed it since it was last unmapped, up to its remap or restore
        # (its first UNMAP after the last one that ended; a large folio has one per PTE).
        unmapped_at: int | None = None
        ended_at: int | None = None
        for row in rows:
            if row.kind is EventKind.UNMAP and (unmapped_at is None or ended_at is not None):
                unmapped_at, ended_at = row.time_ns, None
            elif row.kind in (EventKind.REMAP, EventKind.RESTORE) and unmapped_at is not None:
                ended_at = row.time_ns
        flushes = tuple(self.history.flush_rows_for(folio, unmapped_at, ended_at)) \
            if unmapped_at is not None else ()
        return FolioReport(
            folio=folio, order=int(view.folio_order[folio]), node=int(view.folio_node[folio]),
            state=int(view.folio_state[folio]), alive=bool(view.folio_alive[folio]),
            now_ns=view.clock_ns, mode=view.mode.value, rows=rows, flushes=flushes[:12],
            stalled_cpus=tuple(c for c, f in enumerate(view.cpu_stalled_on) if f == folio),
            tlb=self.engine.folio_tlb(folio), unmapped=unmapped_at is not None and ended_at is None,
            numa=view.numa,
            migrating_cpu=next((cpu for cpu, f in enumerate(view.cpu_migrating) if f == folio), -1),
        )


class DeliveryLog:
    """Reads a migratepages engine's IPI deliveries off its timeline as they are handled.

    The timeline logs a round's deliveries when it is sent, in the order its receipts come
    (one round after another: one migrating task), so the first N deliveries logged are the N
    receipts handled, folded or made one by one: ``nr_tlb_remote_flush_received`` says how many.
    Only for a mechanism that interrupts (a broadcast logs records that are not deliveries, and
    may insert them before others)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.position = 0  # timeline records read
        self.seen = 0  # deliveries among them

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, CPUs) of the deliveries handled since the last read."""
        engine = self.engine
        handled = engine.counters.nr_tlb_remote_flush_received
        if handled <= self.seen:
            return _NONE, _NONE
        timeline = engine.timeline
        start = self.position
        taken = np.flatnonzero(timeline.fl_folio.view(start) > ALSO)[: handled - self.seen]
        self.position = start + int(taken[-1]) + 1
        self.seen = handled
        return timeline.fl_time.view(start)[taken], timeline.fl_cpu.view(start)[taken]


_NONE = np.zeros(0, dtype=np.int64)
