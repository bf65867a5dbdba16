"""CodePanel: the pseudo-code of the shape that is running, its current line lit.

The listing and the line come from ``core.pseudocode`` and the view's latest event alone, so
stepping back lights the line that was lit before, and the panel never disagrees with the event
log beside it.
"""

from __future__ import annotations

from textual.content import Content

from core.pseudocode import CodeLine, line_of, listing
from core.scenario import Mode
from tui.widgets.frame import Frame
from tui.widgets.lines import LinesView

INDENT = 2


def where(frame: Frame, line: str) -> str:
    """The loop variables of the lit line, from the view: which batch or folio, which pass."""
    view = frame.view
    event = view.last_event
    unit = view.unit
    if line in ("call", "end") or event is None:
        return f"move {view.move + 1}/{view.moves}" if view.moves else ""
    parts: list[str] = []
    if line == "cut" and unit.unit:
        parts.append(f"batch {unit.index}/{unit.total}, {unit.pages} pages")
    elif event.folio >= 0:
        parts.append(f"folio {event.folio}")
    if view.pass_ and not line.startswith("fb-"):
        parts.append(f"pass {view.pass_}")
    return ", ".join(parts)


def shape_of(frame: Frame) -> bool:
    """True for the serial listing: the shape of the latest event (before any: the mode)."""
    event = frame.view.last_event
    return event.serial if event is not None else frame.view.mode is Mode.SERIAL


def lit_line(frame: Frame) -> CodeLine:
    """The line of the latest event (at the end: the count of what moved)."""
    view = frame.view
    wanted = "end" if view.done else line_of(view.last_event)
    return next(code for code in listing(shape_of(frame)) if code.id == wanted)


def code_lines(frame: Frame, width: int) -> list[Content]:
    """The listing, the line of the latest event lit."""
    lit = lit_line(frame)
    return [_line(code, code is lit, width) for code in listing(shape_of(frame))]


def _line(code: CodeLine, lit: bool, width: int) -> Content:
    text = " " * (INDENT * code.depth) + code.text
    room = width - 2
    if len(text) > room:
        text = text[: max(room - 1, 0)] + "…"
    if lit:
        return Content.assemble(("▶ ", "bold $accent"), (text, "bold reverse $accent"))
    return Content.assemble(("  ", ""), (text, "" if code.depth else "bold"))


class CodePanel(LinesView):
    """The running shape's pseudo-code, the current line lit (toggled with c)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._frame: Frame | None = None

    def show(self, frame: Frame) -> None:
        self._frame = frame
        serial = shape_of(frame)
        self.border_title = "code · " + ("Linux 6.2, serial" if serial else "Linux 6.3, batched")
        lit = lit_line(frame)
        note = where(frame, lit.id)
        self.border_subtitle = f"{lit.function}()" + (f" · {note}" if note else "")
        self.set_lines(code_lines(frame, max(self.text_width, 20)))

    def on_width(self, width: int) -> None:
        if self._frame is not None:
            self.set_lines(code_lines(self._frame, max(width, 20)))

    @property
    def lit(self) -> int:
        """The index of the lit line (for tests), or -1."""
        for index, line in enumerate(self.lines):
            if line.plain.startswith("▶"):
                return index
        return -1
