"""TourPlayer: plays a guided tour on the app's real widgets, a step at a time.

Entering a step forward plays it (at the step's speed) until the event where it stops, found
once on a fresh engine; going back, or jumping, rebuilds that instant at once. Highlights are
drawn on the widgets themselves: a panel gets the ``-tour-mark`` class, a folio is selected, a
CPU row or a counter is marked in the frame the widgets draw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from core.engine import FOREVER
from core.events import Event
from tui.lane import Lane
from tui.tour import LoadedTour, TourStep
from tui.widgets.narration import Narration

if TYPE_CHECKING:
    from textual.timer import Timer

    from tui.app import MigvizApp

KEYS = "→ next  ← back  esc leaves"


class TourPlayer:
    """Where the tour is, and how to get to a step."""

    def __init__(self, app: MigvizApp, tour: LoadedTour) -> None:
        self.app = app
        self.tour = tour
        self.index = -1
        self.target: int | None = None  # the event count the step stops at, while running to it
        self._stops: dict[int, int | None] = {}
        self._timer: Timer | None = None

    @property
    def step(self) -> TourStep:
        return self.tour.steps[self.index]

    @property
    def marks(self) -> frozenset[str]:
        """What the frame marks for the step: CPU rows and counters."""
        if self.index < 0:
            return frozenset()
        return frozenset(mark for mark in self.step.highlight
                         if mark.startswith(("cpu:", "counter:")))

    def stop_at(self, index: int) -> int | None:
        if index not in self._stops:
            self._stops[index] = self.tour.stop_at(index)
        return self._stops[index]

    def stopper(self) -> Callable[[Event], bool] | None:
        """While running to the step's stop: true at that event."""
        target = self.target
        if target is None:
            return None
        return lambda event: event.seq + 1 >= target

    # ------------------------------------------------------------------------------------------

    async def go(self, index: int, *, play: bool) -> None:
        """Enter step ``index``: play it from where the previous one stopped (``play``), or
        rebuild the instant it stops at."""
        app = self.app
        self._cancel_timer()
        follows = play and index == self.index + 1 and not self.tour.starts_fresh(index)
        self.index = index
        step, setup = self.step, self.tour.setups[index]
        app.playing = False
        if step.speed is not None:
            app.set_speed(step.speed)
        if setup.split:
            await self._race(index, play=play)
        else:
            if app.split:
                await app.action_split()
            target = self.stop_at(index) or 0
            lane = app.lane
            engine = lane.engine
            # A run the presenter changed (another scenario, a mode switch) is not the tour's.
            if not follows or engine.events > target or lane.scenario != setup.scenario \
                    or engine.mode is not setup.mode or engine.pending_mode is not None:
                app.scenario = setup.scenario
                lane = app.new_lane(Lane(setup.scenario, setup.mode))
            if lane.engine.events < target:
                if play:
                    self.target = target
                    app.playing = True
                else:
                    lane.seek(target, app.frame_no)
        code = next((earlier.code for earlier in reversed(self.tour.steps[: index + 1])
                     if earlier.code is not None), None)
        if code is not None:  # the code panel as the steps so far left it
            app.code_shown = code
        self._highlight()
        self.tell()
        if not app.playing:
            self.arrived()

    async def _race(self, index: int, *, play: bool) -> None:
        app = self.app
        step, setup = self.step, self.tour.setups[index]
        app.scenario = setup.scenario
        app.versus = setup.versus
        if setup.versus is not None:
            app.versus_labels = (f"A: {' '.join(step.set) or setup.scenario.name}",
                                 f"B: {' '.join(step.versus_set)}")
        app.race = None
        if app.split:
            await app.action_split()  # leave, so that entering builds the new race
        await app.action_split()
        if step.run_to is None or not step.run_to.end:
            return
        if play:
            app.playing = True
        elif app.race is not None:  # the race's end, at once
            for lane in app.race:
                lane.record(lane.engine.run_until(FOREVER), app.frame_no)
            app.duo.target = float(max(lane.engine.clock for lane in app.race))
            app.push_frame()

    def arrived(self) -> None:
        """The step has stopped where it should (or the run ended): wait, or go on later."""
        self.target = None
        if self.step.chart:
            self.app.action_chart()
        after = self.step.after_s
        if after is not None and self.index + 1 < len(self.tour.steps):
            self._timer = self.app.set_timer(after, self.app.action_tour_next)
        self.tell()

    def tell(self) -> None:
        step = self.step
        if self.target is not None or (self.app.split and self.app.playing):
            status = "playing…"
        elif step.after_s is not None and self.index + 1 < len(self.tour.steps):
            status = f"goes on in {step.after_s:g} s"
        else:
            status = ""
        narration = self.app.query_one(Narration)
        narration.display = True
        narration.tell(self.index, len(self.tour.steps), step.title, step.narration, KEYS, status)

    def _highlight(self) -> None:
        app = self.app
        self._unmark()
        for mark in self.step.highlight:
            kind, _, name = mark.partition(":")
            if kind == "panel":
                for widget in app.query(f"#{name}"):
                    # Marked, and shown even where the projector layout folds it (its row).
                    widget.add_class("-tour-mark", "-tour-open")
                    if widget.parent is not None and getattr(widget.parent, "id", None) == "panels":
                        widget.parent.add_class("-tour-open")
            elif kind == "folio":
                app.selected = int(name)
        app.push_frame()

    def leave(self) -> None:
        self._cancel_timer()
        self.target = None
        self._unmark()
        self.app.query_one(Narration).display = False

    def _unmark(self) -> None:
        for widget in self.app.query(".-tour-mark, .-tour-open"):
            widget.remove_class("-tour-mark", "-tour-open")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
