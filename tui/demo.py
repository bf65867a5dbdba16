"""The demo keys: predict, then reveal (x), the closing chart (C), go to (g) and bookmarks
(m, '). Each works on the app's lane and pushes frames through it; the state they keep (the
question waiting for its unit, the score, the bookmarks, the complete runs the chart shows)
lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.engine import FOREVER
from core.scenario import Caller, Mode, Scenario
from tui.units import format_ns

if TYPE_CHECKING:
    from core.summary import RunSummary
    from tui.app import MigvizApp
    from tui.navigation import Goto
    from tui.predict import Question


class Demo:
    """State and actions of the demo keys."""

    def __init__(self, app: MigvizApp) -> None:
        self.app = app
        self.question: Question | None = None  # x: the unit whose IPIs the room predicted
        self.score = (0, 0)  # predictions right, asked
        self.bookmarks: list[int] = []  # m: event counts of the run
        self._bookmark_at = -1  # ': the bookmark last returned to
        self._complete: dict[tuple[Scenario, Mode], RunSummary] = {}  # C: headless runs

    def predict(self) -> None:
        """x: stop before the next batch (serial: folio), ask, then play it and reveal."""
        from tui.predict import Question, question_text, starts_unit
        from tui.screens.predict import PredictScreen

        app = self.app
        if self.question is not None:
            app.notify("a prediction is already waiting for its batch: space plays it")
            return
        if app.tour is not None and app.tour.target is not None:
            app.notify("the tour's step is still running: x once it has stopped")
            return
        if app.scenario.migration.caller is Caller.NUMA_BALANCING:
            app.notify("x asks about one migratepages batch; under NUMA balancing the threads' "
                       "one-folio calls and the scans' flushes overlap", severity="warning")
            return
        if not app.lane.engine.view().interrupts:
            app.notify("this machine flushes by broadcast (no IPIs): x asks about IPIs",
                       severity="warning")
            return
        app.playing = False
        engine = app.lane.engine
        unit = engine.last_event.batch if engine.last_event is not None else None
        while True:  # to the first event of the next unit that migrates folios
            events = engine.step()
            if not events:
                app.lane.stepped_back()
                app.push_frame()
                app.notify("the run is over: r resets it", title="predict")
                return
            app.lane.record(events, app.frame_no)
            first = events[0]
            if starts_unit(first, first.serial, unit):
                break
        if first.serial:  # the folio's first step already shows its round: ask before it
            app.lane.seek(engine.events - 1, app.frame_no)
        app.solo.target = float(engine.clock)
        app.push_frame()
        view = engine.view()
        counters = view.counters

        def answered(prediction: int | None) -> None:
            if prediction is None:
                return
            self.question = Question(
                move=first.move, unit=first.batch, serial=first.serial,
                ipis_before=counters.nr_tlb_remote_flush_received,
                rounds_before=counters.nr_tlb_remote_flush, prediction=prediction)
            app.playing = True

        app.push_screen(PredictScreen(question_text(view, first)), answered)

    def reveal(self, *, past_the_unit: bool = False) -> None:
        """The unit has run: say how many IPIs it sent and who was right. ``past_the_unit``:
        playback stopped at the next unit's first event, which is taken back so that the
        screen shows the unit's end."""
        from tui.predict import verdict

        app = self.app
        question = self.question
        if question is None:
            return
        self.question = None
        if past_the_unit:
            app.lane.seek(app.lane.engine.events - 1, app.frame_no)
            app.solo.target = float(app.lane.engine.clock)
            app.push_frame()
        counters = app.lane.engine.view().counters
        ipis = counters.nr_tlb_remote_flush_received - question.ipis_before
        rounds = counters.nr_tlb_remote_flush - question.rounds_before
        right, asked = self.score
        self.score = (right + (question.prediction == ipis), asked + 1)
        app.notify(verdict(question, ipis, rounds, self.score), title="predict, then reveal",
                   timeout=12)

    def chart(self) -> None:
        """C: serial vs batched as bar charts: the race as it stands in split view, else both
        modes' complete runs of the scenario (headless, as migviz compare runs them)."""
        from tui.screens.chart import ChartScreen

        app = self.app
        if isinstance(app.screen, ChartScreen):
            return
        if app.split and app.race is not None and app.versus is None:
            serial, batched = app.race
            done = serial.engine.done and batched.engine.done
            clock = max(serial.engine.clock, batched.engine.clock)
            caption = f"{app.scenario.name}: the race " + (
                "over" if done else f"at {format_ns(clock)} (so far)")
            app.playing = False
            app.push_screen(ChartScreen(serial.engine.summary(), batched.engine.summary(),
                                        caption))
            return
        if any(worker.group == "chart" and worker.is_running for worker in app.workers):
            app.notify("the chart is on its way", timeout=2)  # C pressed again meanwhile
            return
        scenario = app.scenario
        wanted = [mode for mode in (Mode.SERIAL, Mode.BATCHED)
                  if (scenario, mode) not in self._complete]
        app.playing = False
        if wanted:
            app.notify(f"running {scenario.name} in both modes for the chart…", timeout=3)
        app.run_worker(lambda: self._chart_runs(scenario, wanted), thread=True, group="chart")

    def _chart_runs(self, scenario: Scenario, wanted: list[Mode]) -> None:
        """In a worker thread: the complete runs the chart needs, then the chart."""
        from core.bench import run_once
        from tui.screens.chart import ChartScreen

        app = self.app
        for mode in wanted:
            self._complete[(scenario, mode)] = run_once(scenario, mode)
        caption = f"{scenario.name}: complete runs" + (
            f" ({app.versus_labels[0]})" if app.versus is not None else "")
        chart = ChartScreen(self._complete[(scenario, Mode.SERIAL)],
                            self._complete[(scenario, Mode.BATCHED)], caption)
        app.call_from_thread(app.push_screen, chart)

    def goto(self) -> None:
        from tui.navigation import GotoScreen

        app = self.app
        engine = app.lane.engine
        where = f"now: event {engine.events}, t={format_ns(engine.clock)}"

        def chosen(goto: Goto | None) -> None:
            if goto is not None:
                self.go(goto)

        app.push_screen(GotoScreen(where), chosen)

    def go(self, goto: Goto) -> None:
        """Go to a target: an event count, the first event at or after a time, or the next
        event of a kind. Back: rebuilt exactly (checkpoints and replay); forward: run."""
        app = self.app
        engine = app.lane.engine
        app.playing = False
        self.question = None
        if goto.event is not None:
            self.seek(goto.event)
        else:
            if goto.time_ns is not None and goto.time_ns <= engine.clock:
                self.seek(0)
            start = engine.events
            if goto.time_ns is None and engine.done:
                app.notify("the run is over: nothing comes after", title="go to")
                return
            events = engine.run_until(FOREVER, goto.matches)
            app.lane.record(events, app.frame_no)
            if goto.kind is not None and not (events and goto.matches(events[-1])):
                app.notify(f"no {goto.kind.name.lower()} after event {start}: at the end",
                           title="go to")
        app.solo.target = float(engine.clock)
        app.push_frame()

    def seek(self, count: int) -> None:
        app = self.app
        app.lane.seek(count, app.frame_no)
        app.solo.target = float(app.lane.engine.clock)

    def bookmark(self) -> None:
        app = self.app
        engine = app.lane.engine
        if engine.events not in self.bookmarks:
            self.bookmarks.append(engine.events)
        self._bookmark_at = self.bookmarks.index(engine.events)
        app.notify(f"bookmark {self._bookmark_at + 1}: event {engine.events}, "
                   f"t={format_ns(engine.clock)} · ' returns here", title="bookmark")

    def bookmark_return(self) -> None:
        app = self.app
        if not self.bookmarks:
            app.notify("no bookmark yet: m sets one", title="bookmark")
            return
        engine = app.lane.engine
        index = len(self.bookmarks) - 1
        if self.bookmarks[self._bookmark_at if self._bookmark_at >= 0 else index] == engine.events:
            index = (self._bookmark_at - 1) % len(self.bookmarks)  # here already: the one before
        self._bookmark_at = index
        app.playing = False
        self.question = None
        self.seek(self.bookmarks[index])
        app.push_frame()
        app.notify(f"bookmark {index + 1}: event {engine.events}, t={format_ns(engine.clock)}",
                   title="bookmark")
