"""``migviz replay FILE``: a real kernel trace, played on its own timestamps.

Every panel draws one :class:`~core.replay.ReplayView`, the trace after its first ``i`` lines:
the focus ``migrate_pages()`` call's pages by state, each CPU's shootdowns, IPIs and sends so far,
the call's latest shootdown with its receipts, the counters, and the trace's own lines. The keys
are the model's, with "call" where the model has "batch".
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Footer, SelectionList, Static

from core.kernel_trace import Recording
from core.replay import PageState, Replay, ReplayView, Stop
from tui.keys import Key
from tui.themed import ThemedApp
from tui.units import format_ns

FPS = 30
MIN_WIDTH, MIN_HEIGHT = 60, 16
RATE_NS = 20_000  # trace time per second at speed 1: a shootdown round (a few µs) is visible
SPEEDS = (1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8, 16, 64, 256, 1024, 4096)
GAP_S = 1.0  # a quiet stretch longer than this on screen is skipped, and the header says so
NOTE_S = 2.0  # how long the header keeps saying so
GLYPH = {PageState.WAITING: "·", PageState.UNMAPPED: "▮", PageState.FLUSHED: "▮",
         PageState.RESTORED: "■"}
STATE_CLASS = {PageState.WAITING: "waiting", PageState.UNMAPPED: "unmapped",
               PageState.FLUSHED: "flushed", PageState.RESTORED: "restored"}
STOP_HELP = {
    Stop.CALL_START: "a migrate_pages() call starts (mm_migrate_pages_start)",
    Stop.UNMAP: "a migration entry is set (set_migration_pte/_pmd)",
    Stop.SEND: "a shootdown is sent (tlb_flush reason 4)",
    Stop.SHOOTDOWN: "a CPU handles a shootdown (tlb_flush reason 1 or 5)",
    Stop.FAILURE: "a call returns with nr_failed > 0",
}


# Every key of the replay screen, once: its binding and its help line (the model's Key record).
REPLAY_KEYS: tuple[Key, ...] = (
    Key("space", "toggle_play", "Play/Pause", "play / pause"),
    Key("n,right", "step", "Step", "one line forward", "n"),
    Key("p", "phase", "Phase", "to the next phase of the call (unmap, flush, move)"),
    Key("B", "call", "Call", "to the call's return, or the next call's start"),
    Key("u,left", "step_back", "Back", "one line back, exactly", "u"),
    Key("k", "breakpoints", "Break", "breakpoints: a call, an unmap, a send, a shootdown, a "
        "failure"),
    Key("left_square_bracket", "select(-1)", "Page ←", "select the previous page", "[",
        show=False),
    Key("right_square_bracket", "select(1)", "Page →", "select the next page", "]", show=False),
    Key("enter", "inspect", "Inspect", "inspect the selected page: its lines in the trace and "
        "the shootdowns between its unmap and restore"),
    Key("plus,equals_sign", "faster", "Faster", "double the speed", "+"),
    Key("minus", "slower", "Slower", "halve the speed", "-", show=False),
    Key("r", "reset", "Reset", "back to the start"),
    Key("H", "host", "Host", "this machine's live counters (migviz host)", show=False),
    Key("question_mark", "help", "Help", "this help", "?"),
    Key("q", "quit", "Quit", "quit"),
)


_KEY_NAMES = {"right": "→", "left": "←", "left_square_bracket": "[",
              "right_square_bracket": "]", "plus": "+", "equals_sign": "=", "minus": "-",
              "question_mark": "?"}


def _key_names(keys: str) -> str:
    """A binding's keys as a person types them: `n,right` is `n →`."""
    return " ".join(_KEY_NAMES.get(key, key) for key in keys.split(","))


def _pages(pages: int) -> str:
    return "full flush (pages:-1)" if pages < 0 else f"pages:{pages}"


class ReplayHeader(Static):
    def show(self, view: ReplayView, source: str, playing: bool, rate: float,
             note: str, lost: int = 0) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("migviz replay ", style="bold")
        text.append(f"{Path(source).name} · +{format_ns(view.time_ns)} of "
                    f"{format_ns(view.duration_ns)} · line {view.position:,}/{view.lines:,} · "
                    f"{'▶' if playing else '❚❚'} {format_ns(rate)}/s")
        if view.done:
            text.append(" · end of trace", style="bold")
        if lost:
            text.append(f" · the trace lost {lost:,} events", style="bold")
        if note:
            text.append(f" · {note}", style="bold")
        self.update(text)


class PagesPanel(Static):
    COMPONENT_CLASSES = {"pages--waiting", "pages--unmapped", "pages--flushed",
                         "pages--restored", "pages--selected"}
    DEFAULT_CSS = """
    PagesPanel > .pages--waiting { color: $state-absent; }
    PagesPanel > .pages--unmapped { color: $state-unmapped; text-style: bold; }
    PagesPanel > .pages--flushed { color: $state-flushed; text-style: bold; }
    PagesPanel > .pages--restored { color: $state-remapped; }
    PagesPanel > .pages--selected { text-style: reverse; }
    """

    def show(self, view: ReplayView, selected: int, calls: int) -> None:
        call = view.call
        self.border_title = (f"call {call.index + 1}/{calls} · {call.comm}-{call.pid} on CPU "
                             f"{call.cpu} · {call.mode} {call.reason} · {view.phase.value}"
                             if call else "no migrate_pages() call yet")
        if call is None or not view.page_state.size:
            self.border_subtitle = ""
            self.update(Text("No migration entry in this call (yet)." if call else
                             "No migrate_pages() call yet: press n or space.",
                             style="italic"))
            return
        text = Text()
        counts = {state: int((view.page_state == state).sum()) for state in PageState}
        for index, state in enumerate(view.page_state):
            style = self.get_component_rich_style(f"pages--{STATE_CLASS[PageState(state)]}")
            if index == selected:
                style += self.get_component_rich_style("pages--selected")
            text.append(GLYPH[PageState(state)], style=style)
        self.border_subtitle = (f"{view.page_state.size} migration entries: "
                                f"{counts[PageState.UNMAPPED]} unmapped · "
                                f"{counts[PageState.FLUSHED]} flushed · "
                                f"{counts[PageState.RESTORED]} restored · "
                                f"{counts[PageState.WAITING]} to come")
        self.update(text)


class CpuPanel(Static):
    def show(self, view: ReplayView) -> None:
        text = Text()
        last = view.last
        wide = max((len(f"{n:,}") for cpu in view.cpus for n in (
            cpu.shootdowns, cpu.vectors, cpu.sends, cpu.local_flushes)), default=1)
        for cpu in view.cpus:
            lit = last is not None and last.cpu == cpu.cpu
            role = "migrating" if cpu.migrating else ""
            text.append(f"CPU {cpu.cpu:<3}", style="bold" if lit else "")
            text.append(f" {role:<9} {cpu.shootdowns:>{wide},} shootdowns · {cpu.vectors:>{wide},}"
                        f" IPIs · {cpu.sends:>{wide},} sends · {cpu.local_flushes:>{wide},} "
                        "local\n")
            text.append(f"  {cpu.last or '(no line yet)'}\n", style="bold" if lit else "dim")
        text.rstrip()
        self.update(text)


class RoundPanel(Static):
    def show(self, view: ReplayView) -> None:
        text = Text()
        shot = view.round
        call = view.call
        if call is None:
            text.append("no call yet")
        elif shot is None:
            text.append(f"call {call.index + 1} has sent no shootdown yet")
        else:
            text.append(f"send {view.call_rounds} of call {call.index + 1}: CPU {shot.cpu} "
                        f"({shot.comm}-{shot.pid}), {_pages(shot.pages)}\n", style="bold")
            shown = [r for r in shot.receipts if r.line < view.position]
            if not shown:
                text.append("no CPU has logged a shootdown for it yet\n")
            for receipt in shown:
                vector = f", vector {receipt.vector}" if receipt.vector is not None else ""
                reason = "remote wrong CPU (5)" if receipt.reason == 5 else "remote shootdown (1)"
                text.append(f"  CPU {receipt.cpu}: {_pages(receipt.pages)}, {reason}{vector}, "
                            f"+{format_ns(receipt.time_ns - shot.time_ns)}\n")
            if len(shown) == len(shot.receipts) and view.position > shot.line + 1:
                text.append(f"{len(shown)} CPU(s) answered in the trace\n", style="dim")
        text.append(f"\ntrace so far: {view.sends:,} sends, {view.shootdowns:,} remote "
                    "shootdowns", style="dim")
        self.update(text)


class CountersLine(Static):
    def show(self, view: ReplayView) -> None:
        self.update(f"calls started {view.calls_started:,} · returned {view.calls_finished:,} · "
                    f"nr_succeeded {view.pgmigrate_success:,} · nr_failed "
                    f"{view.pgmigrate_fail:,} · sends {view.sends:,} · remote shootdowns "
                    f"{view.shootdowns:,}")


class TraceLog(Static):
    """The trace's own lines up to this instant, the last one lit; as many as fit."""

    _view: ReplayView | None = None

    def on_resize(self) -> None:
        if self._view is not None:
            self.show(self._view)

    def show(self, view: ReplayView) -> None:
        self._view = view
        rows = self.size.height or 40
        text = Text(no_wrap=True, overflow="ellipsis")
        recent = view.recent[-rows:] if rows > 0 else ()
        for index, line in enumerate(recent):
            last = index == len(recent) - 1
            text.append(line.text.strip() + ("" if last else "\n"),
                        style="bold reverse" if last else "")
        self.update(text if recent else Text("(no line yet)", style="dim"))


class BreakScreen(ModalScreen[frozenset[Stop]]):
    BINDINGS = [Binding("escape", "done", "Done"), Binding("k", "done", "Done")]
    DEFAULT_CSS = """
    BreakScreen { align: center middle; }
    BreakScreen > Vertical { width: 70; height: auto; border: round $primary;
                             background: $surface; padding: 0 1; }
    """

    def __init__(self, stops: frozenset[Stop]) -> None:
        super().__init__()
        self.stops = stops

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Stop playing right after (space toggles, escape closes):")
            yield SelectionList[Stop](*[(STOP_HELP[stop], stop, stop in self.stops)
                                        for stop in Stop])

    def action_done(self) -> None:
        self.dismiss(frozenset(self.query_one(SelectionList).selected))


class PageScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "app.pop_screen", "Close")]
    DEFAULT_CSS = """
    PageScreen { align: center middle; }
    PageScreen > VerticalScroll { width: 90%; height: 80%; border: round $primary;
                                  background: $surface; padding: 0 1; }
    """

    def __init__(self, body: Text) -> None:
        super().__init__()
        self.body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.body)


class ReplayApp(ThemedApp):
    """The replay screen."""

    TITLE = "migviz replay"
    CSS = """
    Screen { layout: vertical; background: $background; }
    #header { height: 1; background: $panel; }
    #pages { height: auto; min-height: 3; max-height: 45%; border: round $node-0;
             border-title-style: bold; }
    #middle { height: auto; max-height: 50%; }
    #cpus { width: 3fr; height: auto; border: round $primary 60%; text-wrap: nowrap;
            text-overflow: ellipsis; }
    #round { width: 2fr; height: auto; border: round $ipi 70%; }
    #counters { height: 1; color: $text-muted; }
    #log { height: 1fr; min-height: 3; border: round $primary 60%; text-wrap: nowrap;
           text-overflow: ellipsis; }
    #too-small { display: none; }
    Screen.-too-small > * { display: none; }
    Screen.-too-small > #too-small { display: block; height: 1fr; content-align: center middle; }
    """
    BINDINGS = [Binding(key.keys, key.action, key.label, show=key.show,
                        key_display=key.key_display) for key in REPLAY_KEYS]

    def __init__(self, recording: Recording, *, paused: bool = False, speed: float = 1.0,
                 theme: str | None = None, keymap: dict[str, str] | None = None) -> None:
        super().__init__()
        self.recording = recording
        self.replay = Replay(recording)
        self._speed = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - speed))
        self._autoplay = not paused
        self._theme_name = theme
        self._keymap = dict(keymap or {})
        self.playing = False
        self.stops: frozenset[Stop] = frozenset()
        self.selected = 0
        self.note = ""
        self._note_until = 0.0
        self.view = self.replay.view()
        self._target = 0.0
        self._last_tick = 0.0
        self._timer: Timer | None = None

    @property
    def rate_ns(self) -> float:
        return RATE_NS * SPEEDS[self._speed]

    def compose(self) -> ComposeResult:
        yield ReplayHeader(id="header")
        yield PagesPanel(id="pages")
        with Horizontal(id="middle"):
            yield CpuPanel(id="cpus")
            yield RoundPanel(id="round")
        yield CountersLine(id="counters")
        yield TraceLog(id="log")
        yield Static("", id="too-small")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self._keymap:
            self.set_keymap(self._keymap)
        self.use_theme(self._theme_name)
        self.query_one("#cpus").border_title = "CPUs: so far in the trace"
        self.query_one("#round").border_title = "the call's latest shootdown"
        self.query_one("#log").border_title = "the trace"
        self._timer = self.set_interval(1 / FPS, self._tick, pause=True)
        self._apply_size(*self.size)
        self.refresh_view()
        if self._autoplay and not self.replay.done:
            self.action_toggle_play()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                f"migviz replay needs at least {MIN_WIDTH}×{MIN_HEIGHT} (now {width}×{height})")
            return
        self.query_one(Footer).show_command_palette = width >= 140  # else it overlaps the keys
        self.refresh_view()

    # ------------------------------------------------------------------------------------------
    # Drawing: every panel from the one view

    def refresh_view(self) -> None:
        view = self.replay.view()
        self.view = view
        if view.page_state.size:
            self.selected = min(self.selected, view.page_state.size - 1)
        self.query_one(ReplayHeader).show(view, self.recording.source, self.playing,
                                          self.rate_ns, self.note, self.recording.lost_events)
        self.query_one(PagesPanel).show(view, self.selected, len(self.recording.calls))
        self.query_one(CpuPanel).show(view)
        self.query_one(RoundPanel).show(view)
        self.query_one(CountersLine).show(view)
        self.query_one(TraceLog).show(view)

    # ------------------------------------------------------------------------------------------
    # Playing

    def _tick(self) -> None:
        if not self.is_running:  # shutting down: the screens are gone before the timers stop
            return
        now = time.monotonic()
        elapsed = min(max(now - self._last_tick, 0.0), 0.1)
        self._last_tick = now
        replay = self.replay
        self._target = max(self._target, float(replay.time_ns)) + elapsed * self.rate_ns
        upcoming = replay.next_time_ns()
        if now > self._note_until:
            self.note = ""
        if upcoming is not None and upcoming - self._target > GAP_S * self.rate_ns:
            self.note = f"skipped {format_ns(upcoming - self._target)} with no line"
            self._note_until = now + NOTE_S
            self._target = float(upcoming)
        start = replay.position
        replay.run_until(self._target)
        if self.stops:
            for index in range(start, replay.position):
                if replay.stops_at(index, self.stops):
                    replay.position = index + 1
                    self.note = f"break: {replay.recording.lines[index].event}"
                    self._pause()
                    break
        if replay.done:
            self._pause()
        self.refresh_view()

    def _pause(self) -> None:
        self.playing = False
        if self._timer is not None:
            self._timer.pause()

    def action_toggle_play(self) -> None:
        if self.playing:
            self._pause()
        elif not self.replay.done:
            self.playing = True
            self._target = float(self.replay.time_ns)
            self._last_tick = time.monotonic()
            if self._timer is not None:
                self._timer.resume()
        self.refresh_view()

    def _stepped(self) -> None:
        self._pause()
        self.note = ""
        self._target = float(self.replay.time_ns)
        self.refresh_view()

    def action_step(self) -> None:
        self.replay.step()
        self._stepped()

    def action_step_back(self) -> None:
        self.replay.back()
        self._stepped()

    def action_phase(self) -> None:
        self.replay.step_phase()
        self._stepped()

    def action_call(self) -> None:
        self.replay.step_call()
        self._stepped()

    def action_reset(self) -> None:
        self.replay.reset()
        self._stepped()

    def action_faster(self) -> None:
        self._speed = min(self._speed + 1, len(SPEEDS) - 1)
        self.refresh_view()

    def action_slower(self) -> None:
        self._speed = max(self._speed - 1, 0)
        self.refresh_view()

    def action_select(self, delta: int) -> None:
        size = self.view.page_state.size
        if size:
            self.selected = (self.selected + delta) % size
        self.refresh_view()

    def action_breakpoints(self) -> None:
        self._pause()

        def chosen(stops: frozenset[Stop] | None) -> None:
            self.stops = stops or frozenset()
            names = ", ".join(stop.value for stop in Stop if stop in self.stops) or "none"
            self.notify(f"breakpoints: {names}")
            self.refresh_view()

        self.push_screen(BreakScreen(self.stops), chosen)

    def action_inspect(self) -> None:
        view = self.view
        call = view.call
        if call is None or not view.page_state.size:
            self.notify("no page to inspect in this call yet")
            return
        page = call.pages[self.selected]
        lines = self.recording.lines
        body = Text()
        state = PageState(int(view.page_state[self.selected]))
        body.append(f"address {page.addr:#x} · order {page.order}"
                    f"{' (PMD-mapped)' if page.pmd else ''} · call {call.index + 1} · "
                    f"{STATE_CLASS[state]} at +{format_ns(view.time_ns)}\n\n", style="bold")
        body.append("Its migration-entry lines in the whole trace:\n")
        for line in self.replay.page_lines(page.addr):
            mark = "▶ " if line.number <= (view.last.number if view.last else 0) else "  "
            body.append(f"{mark}{line.text.strip()}\n")
        end = page.remap_line if page.remap_line >= 0 else len(lines)
        rounds = [self.recording.rounds[n] for n in call.rounds
                  if page.unmap_line < self.recording.rounds[n].line < end]
        body.append(f"\nShootdowns of the call between its unmap and its restore: "
                    f"{len(rounds)}\n")
        for shot in rounds:
            body.append(f"  {lines[shot.line].text.strip()}\n")
            for receipt in shot.receipts:
                body.append(f"    {lines[receipt.line].text.strip()}\n")
        self.push_screen(PageScreen(body))

    def action_host(self) -> None:
        """This machine's live counters (migviz host) over the replay; escape returns."""
        from tui.screens.host import HostScreen

        if not isinstance(self.screen, HostScreen):
            self._pause()
            self.push_screen(HostScreen())

    def action_help(self) -> None:
        keys = "\n".join(f"{_key_names(key.keys):<9}{key.help}" for key in REPLAY_KEYS)
        self.push_screen(PageScreen(Text(
            "migviz replay: a real kernel trace on its own timestamps\n\n" + keys + "\n\n"
            "The header's rate is trace time per second; quiet stretches longer than a second "
            "on screen are skipped, and the header says so.\n"
            "Pages: · not yet unmapped  ▮ red: migration entry  ▮ yellow: the call has sent a "
            "shootdown since  ■ green: restored (remove_migration_pte).\n"
            "CPUs count what the trace shows so far: shootdowns handled (the TLB row of "
            "/proc/interrupts), IPI vectors, sends and local flushes.\n\nescape closes.")))


def run_replay(recording: Recording, *, paused: bool = False, speed: float = 1.0,
               theme: str | None = None, keymap_file: str | None = None,
               mouse: bool = True) -> int:
    """Open the replay screen; returns the exit code."""
    keymap: dict[str, str] = {}
    if keymap_file:
        from tui.keymap import KeymapError, load_keymap

        try:
            keymap = load_keymap(Path(keymap_file))
        except KeymapError as err:
            from core.errors import InputError

            raise InputError(str(err)) from None
    app = ReplayApp(recording, paused=paused, speed=speed, theme=theme, keymap=keymap)
    app.run(mouse=mouse)
    return int(app.return_code or 0)
