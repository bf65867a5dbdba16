"""InspectScreen: one folio's lifecycle — where it is, its state, and every step it went
through, with the kernel function and the flush round that made it safe to copy."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from core.events import KERNEL_FUNCTION, ROUND_KIND_TEXT, EventKind
from core.folios import FolioState
from tui.units import format_ns
from tui.widgets.folio_grid import GLYPHS, LEGEND
from tui.widgets.frame import HistoryRow
from tui.widgets.legend import GLYPH_STYLE


@dataclass(frozen=True, slots=True)
class FolioReport:
    """Everything the inspect screen shows about one folio at one instant."""

    folio: int
    order: int
    node: int
    state: int
    alive: bool
    now_ns: int
    mode: str
    rows: tuple[HistoryRow, ...]
    flushes: tuple[HistoryRow, ...]  # rounds that flushed it while (last) unmapped
    stalled_cpus: tuple[int, ...]
    tlb: tuple[tuple[int, bool], ...] = ()  # (cpu, stale) for every TLB holding an entry now
    unmapped: bool = False  # its PTEs are migration entries right now
    numa: bool = False  # NUMA balancing: the rows are the threads' calls, one folio each
    migrating_cpu: int = -1  # NUMA balancing: the CPU whose thread is migrating it now


STEP_TEXT = {
    EventKind.UNMAP: "unmapped: PTE → migration entry",
    EventKind.UNMAP_FAIL: "unmap failed",
    EventKind.WAIT: "waited (lock / writeback)",
    EventKind.COPY: "copy started",
    EventKind.MOVE_FAIL: "move failed: -EAGAIN",
    EventKind.REMAP: "remapped on the new node, unlocked",
    EventKind.RESTORE: "restored on the old node",
    EventKind.SPLIT: "split into base pages",
    EventKind.NUMA_FAULT: "NUMA hinting fault (PROT_NONE PTE)",
}


def report_content(report: FolioReport) -> Content:
    meaning = {code: (label, text) for code, label, text in LEGEND}
    label, text = meaning.get(report.state, (FolioState(report.state).name.lower(), ""))
    pages = 1 << report.order
    kind = "THP (PMD-mapped)" if report.order == 9 else ("base page" if report.order == 0
                                                        else f"order-{report.order} folio")
    parts: list[tuple[str, str] | str] = [
        ("folio ", "$text-muted"), (f"{report.folio}", "bold"),
        (f"  {kind}, {pages} page{'s' if pages > 1 else ''} ({pages * 4} KiB)\n", ""),
        ("node  ", "$text-muted"), (f"{report.node}\n", f"bold $node-{report.node % 2}"),
        ("state ", "$text-muted"), (f"{GLYPHS.get(report.state, '?')} ",
                                    GLYPH_STYLE.get(report.state, "")),
        (f"{label}", "bold"), (f" — {text}\n" if text else "\n", ""),
        ("now   ", "$text-muted"), (f"t={format_ns(report.now_ns)}, {report.mode} mode\n", ""),
    ]
    if not report.alive:
        parts.append(("this THP was split; its pieces are new folios, drawn in its place\n", "$warning"))
    if report.migrating_cpu >= 0:
        parts.append((f"cpu{report.migrating_cpu}'s thread faulted on it and migrates it "
                      "(migrate_misplaced_folio, one folio per call)\n", "bold $accent"))
    if report.stalled_cpus:
        cpus = ", ".join(f"cpu{c}" for c in report.stalled_cpus)
        parts.append((f"{cpus} wait for it in migration_entry_wait()\n", "bold $state-unmapped"))
    if report.alive:
        if report.tlb:
            held = ", ".join(f"cpu{cpu}{' (stale)' if stale else ''}" for cpu, stale in report.tlb)
            style = "$state-unmapped" if any(stale for _, stale in report.tlb) else ""
            parts.append((f"TLBs  {held}\n", style))
        else:
            parts.append(("TLBs  no CPU holds an entry for it\n", "$text-muted"))
    parts.append(("\nlifecycle (simulated time, step, where; the kernel function below)\n",
                  "bold $primary"))
    if not report.rows:
        parts.append(("  nothing has happened to it yet in this run\n", "$text-muted"))
    for row in report.rows:
        if report.numa:  # the thread's own call (a fault on a local folio makes none)
            call = "" if row.kind is EventKind.NUMA_FAULT and row.arg else \
                f" · call {row.move + 1}"
            where = f"cpu{row.cpu}{call} · scan pass {row.pass_}"
        else:
            unit = f"folio {row.batch}" if row.serial else f"batch {row.batch}"
            where = f"move {row.move + 1} · {unit} · pass {row.pass_}" + (
                " · sync" if row.sync and not row.serial else "")
        parts += [
            (f"  {format_ns(row.time_ns):>10}  ", "$text-muted"),
            (f"{STEP_TEXT.get(row.kind, row.kind.name.lower()):<38}", "bold"),
            (f"{where}\n", "$text-muted"),
            (f"{'':14}{KERNEL_FUNCTION.get(row.kind, '')}\n", "$accent"),
        ]
    if report.flushes:
        parts.append((("\nshootdown rounds that flushed it since it was unmapped\n"
                       if report.unmapped else
                       "\nshootdown rounds that flushed it while it was last unmapped\n"),
                      "bold $primary"))
        for row in report.flushes:
            if row.pages == -1:
                scope = "full flush"
            elif row.pages == 1 << 9:
                scope = "INVLPG of one 2 MiB PMD entry (a THP)"
            else:
                scope = f"INVLPG {row.pages} page(s)"
            why = ROUND_KIND_TEXT.get(row.round_kind, "")
            parts.append((f"  {format_ns(row.time_ns):>10}  cpu{row.cpu} ⇒ {row.arg} "
                          f"target(s), {scope}" + (f" · {why}" if why else "") + "\n", "$ipi"))
    return Content.assemble(*parts)


class InspectScreen(ModalScreen[None]):
    """Shows a FolioReport; the app refreshes it as the run steps on."""

    # A modal screen hides the app's bindings: these step the run from here (same ids as the
    # app's, so a keymap that remaps them remaps these too), and the report follows.
    BINDINGS = [
        Binding("escape,enter,i", "dismiss", "Close", id="inspect.close"),
        Binding("n,right", "app.step_event", "Step", key_display="n/→", id="migviz.step-event"),
        Binding("p", "app.step_phase", "Phase", id="migviz.step-phase"),
        Binding("B", "app.step_batch", "Batch", id="migviz.step-batch"),
        Binding("u,left", "app.step_back", "Back", key_display="u/←", id="migviz.step-back"),
        Binding("space", "app.toggle_play", "Play/Pause", id="migviz.play"),
    ]

    DEFAULT_CSS = """
    InspectScreen { align: center middle; }
    InspectScreen > VerticalScroll {
        width: 100; max-width: 100%; height: 80%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, report: FolioReport) -> None:
        super().__init__()
        self.report = report

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = self._title()
            yield Static(report_content(self.report), id="report")

    def _title(self) -> str:
        """The title names the keys as they are bound now (a keymap may have moved them)."""
        keys = getattr(self.app, "bound_keys", None)

        def shown(binding_id: str, default: str) -> str:
            return str(keys(binding_id, default)) if keys is not None else default

        step = " ".join(shown(binding_id, default) for binding_id, default in (
            ("migviz.step-event", "n"), ("migviz.step-phase", "p"),
            ("migviz.step-batch", "B"), ("migviz.step-back", "u")))
        return (f"folio {self.report.folio} · {shown('inspect.close', 'escape')} closes · "
                f"{step} step, {shown('migviz.play', 'space')} plays: the report follows")

    def show(self, report: FolioReport) -> None:
        if report != self.report:
            self.report = report
            self.query_one("#report", Static).update(report_content(report))
