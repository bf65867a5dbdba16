"""EventLog: what the current step is (one or two sentences naming the kernel function it
mirrors) above the recent events as ftrace lines, newest at the bottom.

The lines are derived from the view's recent events alone, so stepping back shows exactly the
log that was on screen before. Steps that have no tracepoint (a copy, a failed attempt, the end
of a round) are shown dimmed with a ``#`` so the kernel's own format stays recognisable.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from textual.content import Content

from core.events import KERNEL_FUNCTION, Event, EventKind, explain
from core.folios import FolioTable
from core.scenario import Scenario
from tui.widgets.frame import Frame
from tui.widgets.lines import LinesView

try:  # the trace module lands separately; fall back to a local formatter until it does
    from core import trace as _trace
except ImportError:  # pragma: no cover - depends on the state of core/
    _trace = None  # type: ignore[assignment]

NAME_STYLE = {
    "set_migration_pte": "$state-unmapped", "set_migration_pmd": "$state-unmapped",
    "remove_migration_pte": "$state-remapped", "remove_migration_pmd": "$state-remapped",
    "tlb_flush": "$ipi", "call_function_entry": "$ipi", "call_function_exit": "$ipi",
    "call_function_single_entry": "$ipi", "call_function_single_exit": "$ipi",
    "mm_migrate_pages_start": "$accent", "mm_migrate_pages": "$accent",
}
UNTRACED = {
    EventKind.BATCH_START: "batch_start",
    EventKind.UNMAP_FAIL: "migrate_folio_unmap_fail",
    EventKind.WAIT: "folio_wait",
    EventKind.FLUSH_DONE: "flush_acked",
    EventKind.COPY: "folio_copy",
    EventKind.MOVE_FAIL: "migrate_folio_move_fail",
    EventKind.SPLIT: "try_split_folio",
}
_LINE = re.compile(r"^\s*(?P<task>\S+-\d+)\s+(?P<cpu>\[\d+\])\s+(?P<flags>\S+)\s+"
                   r"(?P<ts>[\d.]+):\s+(?P<name>[a-z_]+):\s?(?P<payload>.*)$")


def _prefix(cpu: int, time_ns: int) -> str:
    micros = time_ns // 1000
    return f"[{cpu:03d}] {micros // 1_000_000}.{micros % 1_000_000:06d}:"


class TraceLines:
    """Turns events into ftrace text with core.trace, or a minimal local format without it."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.table = FolioTable(scenario.memory)
        self._format: Callable[[Event], list[str]] | None = None
        self.restart()

    def restart(self) -> None:
        """A fresh formatter (it numbers the PTEs of a folio as it goes)."""
        if _trace is not None and hasattr(_trace, "TraceFormatter"):
            try:  # trace_printk() lines for steps without a tracepoint, if core offers them
                formatter = _trace.TraceFormatter(self.scenario, self.table, printk=True)
            except TypeError:
                formatter = _trace.TraceFormatter(self.scenario, self.table)
            self._format = lambda event: _trace.format_event(event, formatter)

    def sync(self, frame: Frame) -> None:
        """Copy folio placement from the view (the formatter derives pfns from it)."""
        view = frame.view
        n = min(view.folio_node.size, self.table.capacity)
        self.table.count = n
        self.table.node[:n] = view.folio_node[:n]
        self.table.order[:n] = view.folio_order[:n]

    def lines(self, event: Event) -> list[str]:
        """ftrace lines; those of steps without a tracepoint start with "# " (shown dimmed)."""
        if self._format is not None:
            try:
                traced = self._format(event)
            except (KeyError, IndexError, ValueError, AttributeError):
                traced = []
            if traced:
                if event.kind in UNTRACED:
                    return ["# " + line for line in traced]
                return traced
        elif event.kind in (EventKind.UNMAP, EventKind.REMAP, EventKind.FLUSH_SEND,
                            EventKind.IPI_RECV, EventKind.MIGRATE_START,
                            EventKind.MIGRATE_END, EventKind.RESTORE):
            return [f"{_prefix(event.cpu, event.time_ns)} {self._fallback(event)}"]
        name = UNTRACED.get(event.kind)
        if name is None:
            return []
        detail = f"folio={event.folio}" if event.folio >= 0 else ""
        if event.kind is EventKind.BATCH_START:
            detail = f"batch={event.batch} folios={event.arg} pages={event.pages}"
        elif event.kind is EventKind.COPY:
            detail += f" pages={event.pages}"
        elif event.kind in (EventKind.UNMAP_FAIL, EventKind.MOVE_FAIL):
            detail += f" errno=-{event.arg}"
        return [f"# {_prefix(event.cpu, event.time_ns)} {name}: {detail.strip()}"]

    # (the local format is only used until core.trace is importable)

    @staticmethod
    def _fallback(event: Event) -> str:
        kind = event.kind
        if kind is EventKind.UNMAP:
            return f"set_migration_pte: folio={event.folio} ptes={event.pages}"
        if kind in (EventKind.REMAP, EventKind.RESTORE):
            return f"remove_migration_pte: folio={event.folio} ptes={event.pages}"
        if kind is EventKind.FLUSH_SEND:
            return f"tlb_flush: pages:{event.pages} reason:remote ipi send (4)"
        if kind is EventKind.IPI_RECV:
            return f"tlb_flush: pages:{event.pages} reason:remote shootdown (1)"
        if kind is EventKind.MIGRATE_START:
            return "mm_migrate_pages_start: mode=MIGRATE_SYNC reason=syscall_or_cpuset"
        return f"mm_migrate_pages: nr_succeeded={event.pages} nr_failed={event.arg}"


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
        self._trace: TraceLines | None = None
        self._key: tuple[int, int, int, str] | None = None
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
        width, height = self.size.width, self.size.height
        key = (frame.view.events, width, height, frame.view.scenario)
        if key == self._key:
            return
        self._key = key
        if self._trace is None or self._trace.scenario is not frame.scenario:
            self._trace = TraceLines(frame.scenario)
        self.set_lines(self.build(frame, width, height))

    def build(self, frame: Frame, width: int, height: int) -> list[Content]:
        view = frame.view
        event = view.last_event
        lines: list[Content] = []
        if event is None:
            lines += Content.assemble(
                ("do_migrate_pages()  ", "bold $accent"),
                ("first isolates the folios from the LRU (queue_pages_range → "
                 "isolate_lru_folio); then migrate_pages() starts. ", ""),
                ("space plays, n steps one event, ? explains every key.", "$text-muted"),
            ).wrap(max(width - 1, 20))[: max(1, height - 1)]
        else:
            function = KERNEL_FUNCTION.get(event.kind, "")
            explanation = Content.assemble((f"{function}  ", "bold $accent"),
                                           (explain(event), ""))
            wrapped = explanation.wrap(max(width - 1, 20))
            keep = max(1, min(3, height - 2)) if height > 2 else 1
            if len(wrapped) > keep:
                wrapped = wrapped[:keep]
                wrapped[-1] = wrapped[-1].truncate(max(width - 2, 10)) + Content("…")
            lines.extend(wrapped)
        room = max(height - len(lines), 0)
        trace = self._trace
        assert trace is not None
        trace.sync(frame)
        trace.restart()
        collected: list[list[str]] = []
        count = 0
        for recent in reversed(view.recent_events):
            texts = trace.lines(recent)
            if texts:
                collected.append(texts)
                count += len(texts)
            if count >= room:
                break
        if room == 0:
            collected = []
        flat = [text for texts in reversed(collected) for text in texts][-room:]
        for index, text in enumerate(flat):
            lines.append(style_line(text, index == len(flat) - 1, width))
        return lines
