"""EventLog: what the current step is (one or two sentences naming the kernel function it
mirrors) above the recent events as ftrace lines, newest at the bottom.

The lines are derived from the view's recent events alone, and are the lines `migviz trace
--printk` prints up to this instant, in its order, so stepping back shows exactly the log that was
on screen before, and the live log never disagrees with an exported trace. Steps that have no
tracepoint (a copy, a failed attempt, the end of a round) are shown dimmed with a ``#`` so the
kernel's own format stays recognisable.
"""

from __future__ import annotations

import re

from textual.content import Content

from core.events import EventKind, explain, kernel_function
from core.scenario import Scenario
from core.trace import TraceFormatter, lines_until
from tui.widgets.frame import Frame
from tui.widgets.lines import LinesView

NAME_STYLE = {
    "set_migration_pte": "$state-unmapped", "set_migration_pmd": "$state-unmapped",
    "remove_migration_pte": "$state-remapped", "remove_migration_pmd": "$state-remapped",
    "tlb_flush": "$ipi", "call_function_entry": "$ipi", "call_function_exit": "$ipi",
    "call_function_single_entry": "$ipi", "call_function_single_exit": "$ipi",
    "mm_migrate_pages_start": "$accent", "mm_migrate_pages": "$accent",
}
# Steps with no tracepoint: shown as trace_printk() lines, dimmed and marked "(no tracepoint)".
UNTRACED = frozenset({
    EventKind.BATCH_START, EventKind.UNMAP_FAIL, EventKind.WAIT, EventKind.FLUSH_DONE,
    EventKind.COPY, EventKind.MOVE_FAIL, EventKind.SPLIT,
})
_LINE = re.compile(r"^\s*(?P<task>\S+-\d+)\s+(?P<cpu>\[\d+\])\s+(?P<flags>\S+)\s+"
                   r"(?P<ts>[\d.]+):\s+(?P<name>[a-z_]+):\s?(?P<payload>.*)$")


def log_lines(frame: Frame, formatter: TraceFormatter, count: int) -> list[str]:
    """The last ``count`` lines of the run so far, exactly as `migviz trace --printk` prints
    them up to this instant (lines of steps without a tracepoint start with "# ")."""
    if count <= 0:
        return []
    view = frame.view
    recent = view.recent_events
    # Enough events for `count` lines (an event gives at least one line with --printk), and
    # more: an IPI handler's exit line is stamped after later events' lines.
    window = 4 * count + 64
    lines = lines_until(recent[-window:], formatter, view.clock_ns)
    return [("# " + line if event.kind in UNTRACED else line) for event, line in lines[-count:]]


def style_line(text: str, newest: bool, width: int) -> Content:
    """Colour one trace line; drop the task column when the panel is narrow. Lines of steps
    without a tracepoint (marked "# ") are dimmed and italic."""
    untraced = text.startswith("# ")
    if untraced:
        text = text[2:]
    bold = "bold " if newest else ""
    match = _LINE.match(text)
    if match is None:
        return Content.assemble((text.strip(), bold + ("$text-muted italic" if untraced else "")))
    name = match["name"]
    lead = f"{match['task']:>17} {match['cpu']} {match['flags']} " if width >= 120 else \
        f"{match['cpu']} "
    if untraced:
        rest = f"{match['ts']}: {name}: {match['payload']}  (no tracepoint)"
        return Content.assemble((lead, "$text-muted"), (rest, bold + "$text-muted italic"))
    return Content.assemble(
        (lead, "$text-muted"), (f"{match['ts']}: ", "bold" if newest else "$text-muted"),
        (f"{name}: ", bold + NAME_STYLE.get(name, "")),
        (match["payload"], "bold" if newest else ""),
    )


class EventLog(LinesView):
    """The explanation of the current step, then the recent events."""

    DEFAULT_CSS = """
    EventLog { background: $surface; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._frame: Frame | None = None
        self._formatter: TraceFormatter | None = None
        self._scenario: Scenario | None = None
        self._key: tuple[int, int, int, int, str] | None = None
        self.border_title = "what happens now · recent events (ftrace)"

    def show(self, frame: Frame) -> None:
        self._frame = frame
        self._rebuild()

    def on_width(self, width: int) -> None:
        self._key = None
        self._rebuild()

    def _rebuild(self) -> None:
        frame = self._frame
        if frame is None:
            return
        width, height = self.text_width, self.size.height
        view = frame.view
        key = (view.events, view.clock_ns, width, height, view.scenario)
        if key == self._key:
            return
        self._key = key
        self.set_lines(self.build(frame, width, height))

    def formatter(self, scenario: Scenario) -> TraceFormatter:
        """The trace formatter for a scenario (printk lines included)."""
        if self._formatter is None or self._scenario is not scenario:
            self._formatter = TraceFormatter(scenario, printk=True)
            self._scenario = scenario
        return self._formatter

    def build(self, frame: Frame, width: int, height: int) -> list[Content]:
        view = frame.view
        event = view.last_event
        lines: list[Content] = []
        if event is None:
            lines += Content.assemble(
                ("do_migrate_pages()  ", "bold $accent"),
                ("first isolates the folios from the LRU (queue_pages_range → "
                 "isolate_lru_folio); then migrate_pages() starts. ", ""),
                ("space plays, n steps one event, t starts a guided tour, ? explains every key.",
                 "$text-muted"),
            ).wrap(max(width - 1, 20))[: max(1, height - 1)]
        else:
            mechanism = frame.view.mechanism
            function = kernel_function(event, mechanism)
            explanation = Content.assemble((f"{function}  ", "bold $accent"),
                                           (explain(event, mechanism), ""))
            wrapped = explanation.wrap(max(width - 1, 20))
            keep = max(1, min(3, height - 2)) if height > 2 else 1
            if len(wrapped) > keep:
                wrapped = wrapped[:keep]
                wrapped[-1] = wrapped[-1].truncate(max(width - 2, 10)) + Content("…")
            lines.extend(wrapped)
        room = max(height - len(lines), 0)
        texts = log_lines(frame, self.formatter(frame.scenario), room)
        # Long lines (mm_migrate_pages has seven fields) wrap under their payload instead of
        # being cut; the newest lines are kept whole, older ones give way.
        rows: list[Content] = []
        for index in range(len(texts) - 1, -1, -1):
            styled = style_line(texts[index], index == len(texts) - 1, width)
            wrapped = wrap_line(styled, width)
            left = room - len(rows)
            if len(wrapped) > left:
                if left > 0:  # an older line's first rows, marked as cut, rather than a gap
                    head = wrapped[:left]
                    head[-1] = head[-1].truncate(max(width - 1, 1)) + Content("…")
                    rows[:0] = head
                break
            rows[:0] = wrapped
        return lines + rows


def wrap_line(line: Content, width: int, indent: int = 4) -> list[Content]:
    """A log line cut into rows of ``width`` cells, continuation rows indented."""
    if width <= indent + 10 or line.cell_length <= width:
        return [line]
    first, *rest = line.wrap(width)
    if not rest:
        return [first]
    tail = Content(" ").join(rest).wrap(width - indent)
    return [first, *(Content(" " * indent) + part for part in tail)]
