"""Every key of the app: its binding, its help line and its command-palette entry, in one table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Key:
    """One key: its binding, its help line and its command-palette entry."""

    keys: str
    action: str
    label: str
    help: str
    key_display: str | None = None  # the footer's (short) form; help and palette list every key
    show: bool = True
    group: str | None = None  # the footer shows a group's keys together, with one label


KEYS: tuple[Key, ...] = (
    Key("space", "toggle_play", "Play/Pause", "play / pause (paused means idle: no timer runs)",
        "space"),
    Key("n,right", "step_event", "Step", "step one event", "n", group="step"),
    Key("p", "step_phase", "Phase", "step one phase (unmap → flush → move; serial: one folio)",
        group="step"),
    Key("B", "step_batch", "Batch", "step one batch (serial: one folio)", "B", group="step"),
    Key("u,left", "step_back", "Back", "step back one event, exactly", "u", group="step"),
    Key("b", "toggle_mode", "Mode",
        "toggle serial/batched (applies at the next batch boundary)"),
    Key("s", "split", "Split", "split view: serial and batched race on one clock"),
    Key("k", "breakpoints", "Break", "breakpoints: stop at a flush, a retry, a failure, a folio"),
    Key("t", "tour", "Tour", "guided tour: narrated steps from one TLB entry to the race "
        "(→ next, ← back, esc leaves)", show=False),
    Key("c", "toggle_code", "Code", "code panel: the running shape's pseudo-code, the current "
        "line lit", show=False),
    Key("x", "predict", "Predict", "predict, then reveal: stop before the next batch, type how "
        "many IPIs it will send, watch it, see who was right (score kept)", show=False),
    Key("C", "chart", "Chart", "closing chart: serial vs batched as bar charts (IPIs, time, "
        "pages/s, where the time went, stall p99)", show=False),
    Key("g", "goto", "Go to", "go to a time (120us), an event number (#250) or the next event of "
        "a kind (flush_send)", show=False),
    Key("m", "bookmark", "Mark", "bookmark this instant", show=False),
    Key("apostrophe", "bookmark_return", "Return", "return to the latest bookmark (again: the one "
        "before)", "'", show=False),
    Key("z", "big", "Big", "projector layout: the grids, the phase strip and the narration, the "
        "rest folded (again: everything)", show=False),
    Key("H", "host", "Host", "this machine's live shootdown and migration counters "
        "(migviz host); escape returns", show=False),
    Key("question_mark", "help", "Help", "help: every key and glyph", "?"),
    Key("q", "quit", "Quit", "quit"),
    Key("plus,equals_sign", "faster", "Faster", "double the speed", "+", group="speed"),
    Key("minus", "slower", "Slower", "halve the speed", "-", group="speed"),
    Key("r", "reset", "Reset", "reset to the start"),
    Key("enter", "inspect", "Inspect", "inspect the selected folio (click one to select)",
        "enter", show=False),
    Key("ctrl+s", "save_screenshot", "Screenshot", "save an SVG screenshot", show=False),
)


def binding_id(action: str) -> str:
    """The id of an action's binding, as keymaps name it (``migviz.step-event``)."""
    return f"migviz.{action.replace('_', '-')}"


COMMANDS = {
    "toggle_play": "play/pause", "step_event": "step event", "step_phase": "step phase",
    "step_batch": "step batch", "step_back": "step back", "toggle_mode": "toggle serial/batched",
    "split": "split view", "breakpoints": "breakpoints", "toggle_code": "code panel",
    "tour": "guided tour", "predict": "predict, then reveal", "chart": "closing chart",
    "goto": "go to", "bookmark": "bookmark", "bookmark_return": "return to bookmark",
    "big": "projector layout", "faster": "faster", "slower": "slower",
    "reset": "reset",
    "inspect": "inspect folio", "host": "host counters (live)", "help": "help",
    "save_screenshot": "screenshot", "quit": "quit",
}
SPLIT_DISABLED = {"step_phase", "step_batch", "step_back", "toggle_mode", "breakpoints",
                  "toggle_code", "predict", "goto", "bookmark", "bookmark_return"}
