"""Jumps for demos: `g` goes to a time, an event number or the next event of a kind; `m` sets a
bookmark and `'` returns to it. A target is an event count of the run, so going there forward
runs the engine and going back rebuilds the run up to it (the engine is deterministic)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from core.events import Event, EventKind
from tui.screens.ask import AskScreen

KINDS = {kind.name.lower(): kind for kind in EventKind}
UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_TIME = re.compile(r"^(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ns|us|µs|ms|s)$")
GOTO_HINT = ("a time (120us, 1.5ms), an event number (#250 or 250), or the next event of a kind "
        "(flush_send, remap, …)")


class GotoError(ValueError):
    """Text that names no target."""


@dataclass(frozen=True, slots=True)
class Goto:
    """Where to go: the first event at or after ``time_ns``, the state after ``event`` events,
    or the next event of ``kind``."""

    time_ns: int | None = None
    event: int | None = None
    kind: EventKind | None = None

    def matches(self, event: Event) -> bool:
        """Whether a time or kind target is reached at ``event``."""
        if self.time_ns is not None:
            return event.time_ns >= self.time_ns
        return event.kind is self.kind


def parse_goto(text: str) -> Goto:
    """Read what was typed into the go-to box."""
    text = text.strip().lower().replace(" ", "")
    if not text:
        raise GotoError("type a target: " + GOTO_HINT)
    if text.startswith("#"):
        text = text[1:]
        if not text.isdigit():
            raise GotoError(f"'#{text}': an event number is digits, e.g. #250")
    if text.isdigit():
        return Goto(event=int(text))
    match = _TIME.match(text)
    if match:
        return Goto(time_ns=round(float(match["value"]) * UNITS[match["unit"]]))
    if text in KINDS:
        return Goto(kind=KINDS[text])
    close = difflib.get_close_matches(text, list(KINDS), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise GotoError(f"'{text}' is not a time, an event number or an event kind{hint}")


class GotoScreen(AskScreen[Goto]):
    """Asks where to go; dismisses with the target (enter) or None (escape)."""

    NAME = "goto"
    TITLE = "go to · enter goes · esc cancels"
    HINT = GOTO_HINT
    PLACEHOLDER = "120us · #250 · flush_send"

    def parse(self, text: str) -> Goto:
        return parse_goto(text)
