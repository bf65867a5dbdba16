"""The migviz app: owns one engine per view and the timer, pushes one frame per tick.

Data flows one way. A :class:`Lane` wraps one :class:`~core.engine.Engine` and the event history
the screen needs besides the engine's view. Each tick (only while playing; paused means no timer
runs) the app maps wall time to simulated time, advances the lane(s) with ``run_until``, reads one
immutable view per lane and pushes it into the widgets inside ``batch_update()``. Widgets post
messages up (``FolioGrid.Selected``) and never touch the engine.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import Footer, Static

from core import accesses
from core.breakpoints import Breakpoint, stopper
from core.events import Event, explain
from core.scenario import Caller, Mode, Scenario
from core.tlb import Machine
from themes import DEFAULT_THEME
from tui.demo import Demo
from tui.keys import COMMANDS, KEYS, SPLIT_DISABLED, Key, binding_id
from tui.lane import Lane, spark_base_ns
from tui.playback import Playback
from tui.screens.breakpoints import BreakpointChoice, BreakpointScreen
from tui.screens.help import HelpScreen
from tui.screens.inspect import InspectScreen
from tui.themed import ThemedApp
from tui.units import format_ns, format_speed
from tui.widgets.code_panel import CodePanel
from tui.widgets.event_log import EventLog
from tui.widgets.folio_grid import FolioGrid
from tui.widgets.frame import Frame
from tui.widgets.header_bar import HeaderBar, SplitHeader
from tui.widgets.ipi_panel import IpiPanel
from tui.widgets.legend import FolioLegend
from tui.widgets.narration import Narration
from tui.widgets.phase_strip import PhaseStrip
from tui.widgets.split_view import RaceResult, SplitView
from tui.widgets.stats_line import StatsLine
from tui.widgets.tlb_panel import TlbPanel

if TYPE_CHECKING:  # the demo features load when first used: the first screen comes sooner
    from tui.tour import LoadedTour
    from tui.tour_player import TourPlayer

MIN_WIDTH, MIN_HEIGHT = 60, 20
FPS = 30
ROUND_ON_SCREEN_S = 1.2  # at ×1 one full shootdown round stays this long on screen
SPEEDS = tuple(2.0**k for k in range(-4, 15))  # ×1/16 … ×16384, in doublings
SPARK_SPAN = 48  # buckets the whole run should fit in (the sparkline rescales in doublings)
# While the engine cannot keep up (the top speeds), a frame is drawn at most this often: reading
# the views and repainting split view take ~60-90 ms, so drawing every tick left the engine half
# of the time, and a key waited for the whole of a long tick (a key now shows in 0.1-0.5 s).
LAGGING_FRAME_S = 0.5
LOAD_COMPILED_AFTER_S = 1.0  # after the first screen: numba's import holds the GIL a while


def load_compiled_in_background() -> None:
    """Load the workload's compiled access loop (core/accesses.py) in a daemon thread: the
    engine switches to it when a long stretch comes, without a pause then."""
    threading.Thread(target=accesses.compiled, name="migviz-compile", daemon=True).start()


# Keys the footer shows together under one label, so that every key fits 80 columns.
FOOTER_GROUPS = {"step": Binding.Group("step"),
                 "speed": Binding.Group("speed")}


def nearest_speed(speed: float) -> int:
    """Index of the doubling closest to ``speed``."""
    return min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - speed) / SPEEDS[i])


class MigvizApp(ThemedApp):
    """Watch migrate_pages() move folios between NUMA nodes, serial vs batched TLB flushing."""

    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "migviz"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]
    HORIZONTAL_BREAKPOINTS = [(0, "-tight"), (72, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("space", "play", "Play", key_display="space", id="migviz.play",
                tooltip="play: simulated time advances"),
        Binding("space", "pause", "Pause", key_display="space", id="migviz.pause",
                tooltip="pause: no timer runs"),
        *[
            Binding(key.keys, key.action, key.label, show=key.show, key_display=key.key_display,
                    tooltip=key.help, id=binding_id(key.action),
                    group=FOOTER_GROUPS.get(key.group or ""))
            for key in KEYS if key.action != "toggle_play"
        ],
        # A tour's own keys, only while one runs on the main screen (else the keys fall through
        # to stepping and to the screens' escape).
        Binding("right", "tour_next", "Next", key_display="→", priority=True,
                id="migviz.tour-next", show=False, tooltip="tour: the next step"),
        Binding("left", "tour_back", "Back", key_display="←", priority=True,
                id="migviz.tour-back", show=False, tooltip="tour: the step before"),
        Binding("escape", "tour_leave", "Leave tour", key_display="esc", priority=True,
                id="migviz.tour-leave", show=False, tooltip="leave the tour"),
    ]

    playing: reactive[bool] = reactive(False, bindings=True, init=False)
    split: reactive[bool] = reactive(False, bindings=True, init=False)
    code_shown: reactive[bool] = reactive(False, init=False)

    def __init__(self, scenario: Scenario, mode: Mode | None = None, *, paused: bool = False,
                 speed: float = 1.0, theme: str | None = None,
                 breakpoints: frozenset[Breakpoint] = frozenset(),
                 keymap: dict[str, str] | None = None, user_theme: Theme | None = None,
                 versus: Scenario | None = None,
                 versus_labels: tuple[str, str] = ("A", "B"),
                 tour: LoadedTour | None = None, split: bool = False, big: bool = False) -> None:
        """``versus``: race the scenario (A) against this configuration (B) in split view,
        each in its own mode, instead of serial against batched. ``tour``: start this guided
        tour. ``split``: start in split view. ``big``: start in the projector layout."""
        super().__init__()
        self.scenario = scenario
        self.versus = versus
        self.versus_labels = versus_labels
        self.start_mode = Mode(mode) if mode is not None else None
        self._autoplay = not paused
        self._speed_index = nearest_speed(speed if speed > 0 else 1.0)
        self._theme_name = theme
        machine = Machine(scenario)
        self.round_ns = spark_base_ns(machine)
        self.rate_ns = self.round_ns / ROUND_ON_SCREEN_S
        self.lane = Lane(scenario, self.start_mode)
        self.race: tuple[Lane, Lane] | None = None
        self.selected = 0
        self.solo = Playback(self.rate_ns)  # the single lane's pacing
        self.duo = Playback(self.rate_ns)  # the split race's
        self._frame_no = 0
        self._pushed_at = 0.0  # when push_frame() last ran (perf_counter)
        self._timer: Timer | None = None
        self._timer_running = False
        self.last_frame: Frame | None = None
        self.breakpoints = BreakpointChoice(frozenset(breakpoints), None)
        self._keymap = dict(keymap or {})
        self._first_tour = tour
        self.tour: TourPlayer | None = None
        self._start_split = split or versus is not None
        self._start_big = big
        self.demo = Demo(self)  # x, C, g, m and ': their state and actions
        # The theme is chosen before the stylesheet is first parsed and applied: chosen once
        # mounted, it had every widget styled twice before the first screen.
        self._theme_known = self.use_theme(theme, user_theme)

    # ------------------------------------------------------------------------------------------
    # Building

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Vertical(id="single"):
            yield CodePanel(id="code")
            with Horizontal(id="grids"):
                yield FolioGrid(0, id="node-0", classes="node-grid")
                yield FolioGrid(1, id="node-1", classes="node-grid")
            yield FolioLegend(numa=self.scenario.migration.caller is Caller.NUMA_BALANCING,
                              id="legend")
            yield PhaseStrip(id="phase")
            with Horizontal(id="panels"):
                yield TlbPanel(id="tlb")
                yield IpiPanel(id="ipi")
            yield StatsLine(id="stats")
            yield EventLog(id="log")
        yield Static("", id="too-small")
        yield Narration(id="narration")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self._keymap:
            self.set_keymap(self._keymap)
        if not self._theme_known:
            wanted = self._theme_name
            self.notify(f"unknown theme '{wanted}'; using {DEFAULT_THEME}. Themes: "
                        + ", ".join(sorted(self.available_themes)), severity="error")
        self._timer = self.set_interval(1 / FPS, self._tick, pause=True, name="migviz-frames")
        self._apply_size()
        self.push_frame()
        if self._start_big:
            self.screen.add_class("-big")
        if self._start_split:
            self.call_after_refresh(self.action_split)
        if self._first_tour is not None:
            self.call_after_refresh(self.start_tour, self._first_tour)
        elif self._autoplay:
            self.playing = True
        # The workload's compiled access loop takes about a second to load: do it in the
        # background once the first screen is up, not in the middle of playing.
        self.set_timer(LOAD_COMPILED_AFTER_S, load_compiled_in_background)

    # ------------------------------------------------------------------------------------------
    # Size

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int | None = None, height: int | None = None) -> None:
        if width is None or height is None:
            width, height = self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                f"migviz needs at least {MIN_WIDTH}×{MIN_HEIGHT} (now {width}×{height})")
            return
        self.query_one(Footer).show_command_palette = width >= 100
        short = height < 34
        cpus = self.scenario.topology.cpus
        border = 1 if short else 2
        panel_rows = min(cpus + 1, 9 if short else max(10, height // 3))
        self.query_one("#panels").styles.height = panel_rows + border
        log_rows = 3 if height < 26 else (4 if short else max(6, height // 6))
        self.query_one("#log").styles.height = log_rows + border

    # ------------------------------------------------------------------------------------------
    # Frames

    @property
    def speed(self) -> float:
        return SPEEDS[self._speed_index]

    @property
    def playback(self) -> Playback:
        """The pacing of what is on screen: the race's in split view, else the lane's."""
        return self.duo if self.split else self.solo

    @property
    def fast_forward(self) -> bool:
        return self.playback.fast_forward

    def _bucket_ns(self, clock_ns: float) -> int:
        """Sparkline bucket: one shootdown round at first (a live trace), doubling as the run
        grows so that the whole run stays in view (the serial comb vs the batched spikes)."""
        bucket = self.round_ns
        while clock_ns / bucket > SPARK_SPAN:
            bucket *= 2
        return bucket

    def _lane_frame(self, lane: Lane) -> Frame:
        target = self.duo.target if self.split else self.solo.target
        lanes = self.race if (self.split and self.race) else (self.lane,)
        now = max([target if self.playing else 0.0, *(other.engine.clock for other in lanes)])
        achieved, behind = self._achieved()
        return lane.frame(clock_ns=int(target) if self.playing else None, playing=self.playing,
                          speed=self.speed, rate_ns=self.rate_ns, now_ns=int(now),
                          bucket_ns=self._bucket_ns(now),
                          selected=self.selected, frame_no=self._frame_no,
                          fast_forward=self.fast_forward, achieved_ns=achieved, behind=behind,
                          marks=self.tour.marks if self.tour is not None else frozenset())

    def _achieved(self) -> tuple[float | None, bool]:
        return self.playback.achieved(self.speed, self.playing)

    def push_frame(self) -> None:
        """Read one view per lane and push it into the widgets (one batch of repaints)."""
        self._pushed_at = time.perf_counter()
        header = self.query_one(HeaderBar)
        with self.batch_update():
            if self.split and self.race is not None:
                serial, batched = self.race
                s_frame, b_frame = self._lane_frame(serial), self._lane_frame(batched)
                header.show(self._split_header())
                self.query_one(SplitView).show(RaceResult(s_frame, b_frame, self._labels))
                self.last_frame = b_frame
            else:
                frame = self._lane_frame(self.lane)
                self.last_frame = frame
                header.show(frame)
                for grid in self.query(".node-grid").results(FolioGrid):
                    grid.show(frame)
                self.query_one(PhaseStrip).show(frame)
                self.query_one(TlbPanel).show(frame)
                self.query_one(IpiPanel).show(frame)
                self.query_one(StatsLine).show(frame)
                self.query_one(EventLog).show(frame)
                if self.code_shown:
                    self.query_one(CodePanel).show(frame)
            if isinstance(self.screen, InspectScreen) and self.last_frame is not None:
                report = self._active_lane().report(self.selected, self.last_frame.view)
                if report is not None:
                    self.screen.show(report)

    def _split_header(self) -> SplitHeader:
        assert self.race is not None
        serial, batched = self.race
        done = serial.engine.done and batched.engine.done
        clock = max(serial.engine.clock, batched.engine.clock) if done or not self.playing \
            else self.duo.target
        achieved, behind = self._achieved()
        return SplitHeader(scenario=self.scenario.name, clock_ns=int(clock), speed=self.speed,
                           rate_ns=self.rate_ns, playing=self.playing, done=done,
                           fast_forward=self.fast_forward and self.playing,
                           achieved_ns=achieved, behind=behind, versus=self.versus is not None,
                           same_seed=serial.scenario.seed == batched.scenario.seed)

    def _active_lane(self) -> Lane:
        if self.split and self.race is not None:
            return self.race[1]
        return self.lane

    def _tick(self) -> None:
        """One frame: map wall time to simulated time, advance, push what changed."""
        if not self.is_running:
            # Shutting down: Textual prunes the screens before it stops the app's timers, so a
            # tick in between would find no widget to draw on.
            return
        self._frame_no += 1
        lanes = self.race if (self.split and self.race is not None) else (self.lane,)
        tick = self.playback.tick(time.perf_counter(), lanes, self.speed, self._frame_no,
                                  None if self.split else self._stopper())
        if tick.hit is not None:
            self.playing = False  # pushes the frame of the breakpoint's event
            if self.tour is not None and self.tour.target is not None:
                self.tour.arrived()  # where the tour's step stops, not a breakpoint
            elif self.demo.question is not None:
                self.demo.reveal(past_the_unit=True)
            else:
                self._announce_break(tick.hit)
            return
        if tick.done:
            self.playing = False  # pushes the final frame
            if self.demo.question is not None:
                self.demo.reveal()
            if self.tour is not None:
                self.tour.arrived()
            elif self.split and self.versus is None:
                self.action_chart()  # the race is over: the class ends on its chart
            return
        if tick.applied or any(lane.flash_changes(self._frame_no) for lane in lanes):
            if any(lane.lagging for lane in lanes) \
                    and time.perf_counter() - self._pushed_at < LAGGING_FRAME_S:
                return  # the engine cannot keep up: it gets the ticks, the screen a few of them
            self.push_frame()
        else:
            self._push_clock()

    def _push_clock(self) -> None:
        """Nothing happened this frame: only the header's running clock moves."""
        frame = self.last_frame
        if frame is None:
            return
        header = self.query_one(HeaderBar)
        if self.split and self.race is not None:
            header.show(self._split_header())
        else:
            achieved, behind = self._achieved()
            header.show(replace(frame, clock_ns=int(self.solo.target), playing=self.playing,
                                fast_forward=self.fast_forward, achieved_ns=achieved,
                                behind=behind))

    @property
    def timer_running(self) -> bool:
        """True while the frame timer runs (only while playing)."""
        return self._timer_running

    def watch_playing(self, playing: bool) -> None:
        if self._timer is None:
            return
        self.playback.restart(time.perf_counter(), float(self.lane.engine.clock)
                              if playing and not self.split else None)
        if playing:
            self._timer.resume()
        else:
            self._timer.pause()
        self._timer_running = playing
        self.push_frame()

    # ------------------------------------------------------------------------------------------
    # Keys and commands

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.startswith("tour_"):
            # Only while a tour runs and the main screen has the keys (not a dialog's input).
            return self.tour is not None and len(self.screen_stack) == 1
        if action == "play":
            return not self.playing
        if action == "pause":
            return self.playing
        if self.split and action in SPLIT_DISABLED | {"inspect"}:
            return None
        if action in ("step_event", "step_phase", "step_batch"):
            lanes = self.race if (self.split and self.race) else (self.lane,)
            if all(lane.engine.done for lane in lanes):
                return None
        return True

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key in KEYS:
            if key.action == "quit":
                continue
            if self.check_action(key.action, ()) is not True and key.action != "toggle_play":
                continue
            title = f"migviz: {COMMANDS[key.action]}"
            yield SystemCommand(title, f"{key.help} [{self.key_text(key)}]",
                                lambda action=key.action: self.run_action(action))

    def bound_keys(self, binding_id: str, keys: str, display: str | None = None) -> str:
        """The keys a binding answers to now, as shown to the user: the keymap's when it remaps
        the binding, else the default (``display`` or ``keys``)."""
        remapped = self._keymap.get(binding_id)
        if remapped is None:
            return display or "/".join(
                self.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
        return "/".join(self.get_key_display(Binding(k.strip(), ""))
                        for k in remapped.split(",") if k.strip())

    def key_text(self, key: Key) -> str:
        """Every key of one entry of the key table, as remapped (the footer shows fewer)."""
        if key.action == "toggle_play":
            play = self.bound_keys("migviz.play", key.keys)
            pause = self.bound_keys("migviz.pause", key.keys)
            return play if play == pause else f"{play} (play) {pause} (pause)"
        return self.bound_keys(binding_id(key.action), key.keys)

    def action_play(self) -> None:
        if not self._lanes_done():
            self.playing = True

    def action_pause(self) -> None:
        self.playing = False

    def action_toggle_play(self) -> None:
        if self.playing:
            self.action_pause()
        else:
            self.action_play()

    def _lanes_done(self) -> bool:
        lanes = self.race if (self.split and self.race) else (self.lane,)
        return all(lane.engine.done for lane in lanes)

    def _manual(self, step: str) -> None:
        """One manual step: pause, step, show."""
        self.playing = False
        if self.split and self.race is not None:
            # Both sides advance to the earliest time either may have an event (past a copy or
            # an isolation the task is known to be busy for): the lagging side applies one event
            # and the other catches up on the shared clock.
            target = min(max(lane.engine.next_event_not_before(), lane.engine.clock + 1)
                         for lane in self.race if not lane.engine.done) \
                if not self._lanes_done() else self.duo.target
            for lane in self.race:
                lane.next_at = None
                if not lane.engine.done and lane.engine.clock < target:
                    lane.record(lane.engine.run_until(int(target)), self._frame_no)
            self.duo.target = max(self.duo.target, float(target))
        else:
            engine = self.lane.engine
            self.lane.next_at = None
            stop = self._stopper()
            if step == "event":
                events = engine.step()
            elif step == "phase":
                events = engine.step_phase(stop)
            else:
                events = engine.step_batch(stop)
            self.lane.record(events, self._frame_no)
            self.solo.target = float(engine.clock)
            if step != "event" and events and stop is not None and stop(events[-1]):
                self._announce_break(events[-1])
        self.push_frame()

    def action_step_event(self) -> None:
        self._manual("event")

    def action_step_phase(self) -> None:
        self._manual("phase")

    def action_step_batch(self) -> None:
        self._manual("batch")

    def action_step_back(self) -> None:
        self.playing = False
        self.demo.question = None
        lane = self.lane
        if lane.engine.events == 0:
            self.notify("already at the start")
            return
        lane.seek(lane.engine.events - 1, self._frame_no)
        self.solo.target = float(lane.engine.clock)
        self.push_frame()

    def action_toggle_mode(self) -> None:
        engine = self.lane.engine
        wanted = engine.toggle_mode()
        if engine.pending_mode is None:
            self.notify(f"staying {engine.mode.value.upper()}")
        elif engine.done:
            self.notify("the run is over: press r to reset and watch it in the other mode")
        else:
            self.notify(f"→ {wanted.value.upper()} at the next batch boundary: the batch in "
                        f"flight completes as {engine.mode.value}", title="mode switch")
        self.push_frame()

    def _new_race(self) -> tuple[Lane, Lane]:
        """Serial against batched on the scenario, or (--versus) the scenario against another
        configuration, each in its own mode."""
        if self.versus is not None:
            return (Lane(self.scenario, None, split=True), Lane(self.versus, None, split=True))
        return (Lane(self.scenario, Mode.SERIAL, split=True),
                Lane(self.scenario, Mode.BATCHED, split=True))

    @property
    def _labels(self) -> tuple[str, str] | None:
        return self.versus_labels if self.versus is not None else None

    async def action_split(self) -> None:
        if not self.split:
            if self.race is None:
                self.race = self._new_race()
                self.duo.target = 0.0
            if not self.query(SplitView):
                await self.mount(SplitView(id="split"), before=self.query_one("#too-small"))
            self.split = True
        else:
            self.split = False
        self.playback.restart(time.perf_counter())  # the other pacing takes over from now
        self.screen.set_class(self.split, "-split")
        self.push_frame()

    def action_toggle_code(self) -> None:
        self.code_shown = not self.code_shown

    def watch_code_shown(self, shown: bool) -> None:
        self.screen.set_class(shown, "-code")
        self.push_frame()

    # ------------------------------------------------------------------------------------------
    # Guided tours

    @property
    def frame_no(self) -> int:
        return self._frame_no

    def new_lane(self, lane: Lane) -> Lane:
        """Show a fresh lane (a tour's new run) from its start."""
        self.lane = lane
        self.solo.target = 0.0
        self.playback.pace.reset()
        return lane

    def set_speed(self, speed: float) -> None:
        self._speed_index = nearest_speed(speed)
        self.playback.pace.reset()

    async def start_tour(self, tour: LoadedTour) -> None:
        from tui.tour_player import TourPlayer

        if self.tour is not None:
            self.tour.leave()
        self.tour = TourPlayer(self, tour)
        self.refresh_bindings()
        await self.tour.go(0, play=True)

    async def action_tour(self) -> None:
        """t: start the built-in tour, or leave the one running."""
        if self.tour is not None:
            self.action_tour_leave()
            return
        from tui.tour import load_tour

        await self.start_tour(load_tour(None))

    async def action_tour_next(self) -> None:
        tour = self.tour
        if tour is None or not self.is_running:  # (also a step's timer, maybe at shutdown)
            return
        if tour.index + 1 >= len(tour.tour.steps):
            self.notify("the end of the tour: esc leaves it, ← goes back", title="tour")
            return
        await tour.go(tour.index + 1, play=True)

    async def action_tour_back(self) -> None:
        tour = self.tour
        if tour is None:
            return
        if tour.index == 0:
            self.notify("the first step of the tour", title="tour")
            return
        await tour.go(tour.index - 1, play=False)

    def action_tour_leave(self) -> None:
        if self.tour is None:
            return
        self.tour.leave()
        self.tour = None
        self.refresh_bindings()
        self.push_frame()

    # ------------------------------------------------------------------------------------------
    # Demos: predict, the closing chart, jumps and bookmarks (tui/demo.py), the projector layout

    def action_predict(self) -> None:
        self.demo.predict()

    def action_chart(self) -> None:
        self.demo.chart()

    def action_goto(self) -> None:
        self.demo.goto()

    def action_bookmark(self) -> None:
        self.demo.bookmark()

    def action_bookmark_return(self) -> None:
        self.demo.bookmark_return()

    def action_big(self) -> None:
        """z: the projector layout (grids, phase strip, stats and narration), or everything."""
        self.screen.toggle_class("-big")

    def action_faster(self) -> None:
        self._speed_index = min(self._speed_index + 1, len(SPEEDS) - 1)
        self._speed_changed()

    def action_slower(self) -> None:
        self._speed_index = max(self._speed_index - 1, 0)
        self._speed_changed()

    def _speed_changed(self) -> None:
        self.playback.pace.reset()
        self.notify(f"speed {format_speed(self.speed)}: "
                    f"{format_ns(self.rate_ns * self.speed)} of simulated time per second",
                    timeout=1.5)
        self.push_frame()

    def action_reset(self) -> None:
        self.demo.question = None
        if self.split:
            self.race = self._new_race()
            self.duo.target = 0.0
        else:
            engine = self.lane.engine
            # A switch asked for with b (waiting for the next batch boundary) is kept: the
            # start of the run is the next boundary, so the new run starts in that mode.
            mode = engine.pending_mode or engine.mode
            self.lane = Lane(self.scenario, mode)
            self.solo.target = 0.0
            if engine.pending_mode is not None:
                self.notify(f"reset: starting {mode.value.upper()}, the switch you asked for",
                            title="mode switch")
        self.playback.pace.reset()
        self.push_frame()

    def action_inspect(self) -> None:
        report = self._active_lane().report(self.selected)
        if report is None:
            return
        if isinstance(self.screen, InspectScreen):
            self.screen.show(report)
            return
        self.push_screen(InspectScreen(report))

    def _stopper(self) -> Callable[[Event], bool] | None:
        if self.tour is not None and self.tour.target is not None:
            return self.tour.stopper()
        if self.demo.question is not None:
            return self.demo.question.ended
        return stopper(self.breakpoints.kinds, self.breakpoints.folio)

    def _announce_break(self, event: Event) -> None:
        mechanism = self._active_lane().engine.task.flusher.mechanism
        self.notify(explain(event, mechanism), title=f"breakpoint · {event.kind.name.lower()}")

    def action_breakpoints(self) -> None:
        if isinstance(self.screen, BreakpointScreen):
            return

        def chosen(choice: BreakpointChoice | None) -> None:
            if choice is None:
                return
            self.breakpoints = choice
            names = [kind.value for kind in choice.kinds]
            if choice.folio is not None:
                names.append(f"folio {choice.folio}")
            self.notify("stop at: " + ", ".join(names) if names else "no breakpoints",
                        title="breakpoints")

        self.push_screen(BreakpointScreen(self.breakpoints, self.selected), chosen)

    def action_host(self) -> None:
        """This machine's own counters beside the model (migviz host); the model pauses."""
        from tui.screens.host import HostScreen

        if isinstance(self.screen, HostScreen):
            return
        self.playing = False
        self.push_screen(HostScreen())

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        keys = [(self.key_text(key), key.help) for key in KEYS]
        select = " ".join(self.bound_keys(f"grid.{name}", default) for name, default in
                          (("up", "up"), ("down", "down"), ("previous", "h"), ("next", "l")))
        keys += [
            (select, "move the folio selection (grid focused); click selects too"),
            ("tab", "focus the other grid"),
            ("ctrl+p", "command palette: every action as \"migviz: …\", and themes"),
            ("ctrl+q", "quit"),
        ]
        self.push_screen(HelpScreen(keys))

    def action_save_screenshot(self) -> None:
        folder = os.environ.get("MIGVIZ_SCREENSHOT_DIR", ".")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.save_screenshot(f"migviz-{self.scenario.name}-{stamp}.svg", folder)
        self.notify(f"saved {path}", title="screenshot")

    def on_folio_grid_selected(self, message: FolioGrid.Selected) -> None:
        again = message.folio == self.selected and message.clicked
        self.selected = message.folio
        self.push_frame()
        if again and not self.split:
            self.action_inspect()  # a click on the selected folio opens it


def run_app(scenario: Scenario, mode: Mode | None = None, *, paused: bool = False,
            speed: float = 1.0, theme: str | None = None,
            breakpoints: frozenset[Breakpoint] = frozenset(),
            keymap: dict[str, str] | None = None, mouse: bool = True,
            user_theme: Theme | None = None, versus: Scenario | None = None,
            versus_labels: tuple[str, str] = ("A", "B"), tour: LoadedTour | None = None,
            split: bool = False, big: bool = False) -> int:
    """Run the TUI; returns the process exit code."""
    app = MigvizApp(scenario, mode, paused=paused, speed=speed, theme=theme,
                    breakpoints=breakpoints, keymap=keymap, user_theme=user_theme,
                    versus=versus, versus_labels=versus_labels, tour=tour, split=split,
                    big=big)
    app.run(mouse=mouse)
    return int(app.return_code or 0)
