"""TlbPanel: every CPU's role, mm_cpumask membership, TLB entries and what it is doing now.

A CPU that handles a shootdown IPI flashes (the row turns the IPI colour) so a burst is visible
as it sweeps over the targets; a thread that hit a migration entry shows which folio it waits
for (migration_entry_wait).
"""

from __future__ import annotations

from textual.content import Content

from core.engine import CpuActivity
from core.events import Phase
from core.tlb import CpuRole
from tui.widgets.frame import Frame
from tui.widgets.lines import LinesView

ROLE: dict[int, tuple[str, str, str]] = {
    # role: (glyph, short, long)
    CpuRole.INITIATOR: ("⇄", "migr", "migratepages"),
    CpuRole.WORKLOAD: ("●", "work", "pmbench"),
    CpuRole.LAZY: ("◐", "lazy", "pmbench (lazy)"),
    CpuRole.IDLE: ("○", "idle", "idle"),
}

ROLE_MEANING = (
    ("⇄", "initiator: runs the migrating task (migratepages); sends the shootdown IPIs"),
    ("●", "workload thread (pmbench): in mm_cpumask, receives shootdown IPIs"),
    ("◐", "lazy-TLB CPU: in mm_cpumask but skipped by IPIs; flushes when it switches back"),
    ("○", "idle: runs nothing of this process, never interrupted"),
)


COLLAPSE_IDLE_ABOVE = 12  # with more CPUs than this, idle ones share one summary line


def cpu_ranges(cpus: list[int]) -> str:
    """"cpu8-23, cpu32-46" for a sorted list of CPU numbers."""
    parts: list[str] = []
    start = prev = None
    for cpu in [*cpus, None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            parts.append(f"cpu{start}" if start == prev else f"cpu{start}-{prev}")
        start = prev = cpu
    return ", ".join(parts)


def shown_cpus(frame: Frame) -> tuple[list[int], list[int]]:
    """(CPUs that get a row, idle CPUs folded into one line). Small machines show every CPU."""
    roles = frame.view.cpu_role
    if len(roles) <= COLLAPSE_IDLE_ABOVE:
        return list(range(len(roles))), []
    idle = [cpu for cpu, role in enumerate(roles) if role == CpuRole.IDLE]
    if len(idle) < 2:
        return list(range(len(roles))), []
    return [cpu for cpu, role in enumerate(roles) if role != CpuRole.IDLE], idle


def idle_line(idle: list[int]) -> Content:
    return Content.assemble(("○ idle: ", "$text-muted"), (cpu_ranges(idle), "$text-disabled"),
                            (" (not in mm_cpumask, never interrupted)", "$text-disabled"))


def _cpu_style(frame: Frame, cpu: int, node: int) -> str:
    """A CPU's name: in its node's colour, or marked when a tour points at it."""
    return "bold reverse $warning" if f"cpu:{cpu}" in frame.marks else f"bold {_node_style(node)}"


def _node_style(node: int) -> str:
    return f"$node-{node}" if node in (0, 1) else "$foreground"


def activity_text(frame: Frame, cpu: int, wide: bool) -> tuple[str, str]:
    """(text, style) saying what a CPU does now."""
    view = frame.view
    activity = view.cpu_activity[cpu]
    if cpu in frame.flash or activity == CpuActivity.IPI:
        # What flush_tlb_func() did here, when the round says (by TLB generation).
        round_ = view.ipi_round
        done = -2
        if round_ is not None and cpu in round_.targets:
            index = round_.targets.index(cpu)
            if index < len(round_.flushed):
                done = round_.flushed[index]
        if done == 0:
            return ("↯ IPI: already current, no flush" if wide else "↯ IPI, no flush",
                    "bold $ipi")
        if done == -1:
            return ("↯ IPI: full TLB flush" if wide else "↯ IPI full flush", "bold $ipi")
        return ("↯ IPI: flushing its TLB" if wide else "↯ IPI flush", "bold $ipi")
    if activity == CpuActivity.STALLED:
        folio = view.cpu_stalled_on[cpu]
        text = f"stalled on folio {folio}" if wide else f"stalled on {folio}"
        return (text, "bold $state-unmapped")
    if activity == CpuActivity.SPINNING:
        round_ = view.ipi_round
        waiting = len(round_.targets) - round_.acked if round_ else 0
        return (f"spinning: waits for {waiting} ack(s)" if wide else f"spin {waiting} acks",
                "bold $ipi")
    if activity == CpuActivity.MIGRATING and view.cpu_migrating[cpu] >= 0:
        # NUMA balancing: the thread moves what it faulted on
        folio = view.cpu_migrating[cpu]
        return (f"migrating folio {folio}" if wide else f"migr {folio}", "bold $accent")
    if activity == CpuActivity.MIGRATING:
        phase = {Phase.UNMAP: "unmapping", Phase.FLUSH: "flushing", Phase.MOVE: "copy+remap",
                 Phase.UNDO: "undoing"}.get(view.phase, "migrating")
        return (phase, "bold $accent")
    if activity == CpuActivity.RUNNING:
        return ("running", "$text-muted")
    return ("idle", "$text-disabled")


def tlb_bar(valid: int, stale: int, scale: int, width: int) -> list[tuple[str, str]]:
    """A mini bar: █ valid entries, ▒ stale ones (never rounded away), · the rest."""
    if width <= 0:
        return []
    scale = max(scale, 1)
    stale_cells = 0 if stale <= 0 else max(1, round(stale * width / scale))
    valid_cells = min(round(valid * width / scale), width - stale_cells)
    if valid > 0 and valid_cells == 0 and stale_cells < width:
        valid_cells = 1
    stale_cells = min(stale_cells, width - valid_cells)
    rest = width - valid_cells - stale_cells
    return [("█" * valid_cells, "$tlb-valid"), ("▒" * stale_cells, "$tlb-stale bold"),
            ("·" * rest, "$text-disabled")]


class TlbPanel(LinesView):
    """One row per CPU."""

    DEFAULT_CSS = """
    TlbPanel { background: $surface; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._frame: Frame | None = None
        self.border_title = "CPUs & TLBs"

    def show(self, frame: Frame) -> None:
        self._frame = frame
        self.set_lines(self.build(frame, self.text_width))

    def on_width(self, width: int) -> None:
        if self._frame is not None:
            self.set_lines(self.build(self._frame, width))

    def build(self, frame: Frame, width: int) -> list[Content]:
        if 0 < width < 40:
            return self.build_tight(frame)
        # The widest layout whose columns (the "now" text in full included) fit the width.
        for wide, medium in ((True, True), (False, True), (False, False)):
            lines = self._build(frame, width, wide, medium)
            if lines is not None:
                return lines
        return self.build_tight(frame)

    def _build(self, frame: Frame, width: int, wide: bool, medium: bool
               ) -> list[Content] | None:
        """The rows at one layout, or None when even a 5-cell TLB bar leaves no room for
        every row's "now" text (width 0: not laid out yet, anything goes)."""
        view = frame.view
        cpus = len(view.cpu_role)
        scale = max(8, max((v + s for v, s in zip(view.tlb_valid, view.tlb_stale,
                                                   strict=True)), default=0))
        role_width = 18 if wide else 7
        # "valid/stale" in the narrow layout: as wide as the longest pair, plus a space.
        pairs_width = 1 + max((len(f"{v}/{s}") for v, s in zip(view.tlb_valid, view.tlb_stale,
                                                                 strict=True)), default=3)
        pairs_width = max(5, pairs_width)
        digits = len(str(cpus - 1))
        rows, idle = shown_cpus(frame)
        texts = {cpu: activity_text(frame, cpu, wide) for cpu in rows}
        now_width = max((len(text) for text, _ in texts.values()), default=3)
        fixed = (4 + digits + (5 if medium else 3) + role_width + (3 if medium else 2) + 1
                 + (12 if wide else pairs_width) + (5 if medium else 0) + now_width)
        if width and width - fixed < 5:
            return None
        bar_width = max(5, min(32, width - fixed))
        ipis = view.counters.tlb_shootdowns
        header = Content.assemble(
            ("cpu ".ljust(4 + digits), "$text-muted"),
            ("node role".ljust(5 + role_width) if medium else "n  role".ljust(3 + role_width),
             "$text-muted"),
            ("mm " if medium else "m ", "$text-muted"),
            ("TLB ".ljust(bar_width + 1), "$text-muted"),
            ("valid stale " if wide else "v/s".ljust(pairs_width), "$text-muted"),
            ("IPIs " if medium else "", "$text-muted"),
            ("now", "$text-muted"),
        )
        lines = [header]
        for cpu in rows:
            role = view.cpu_role[cpu]
            glyph, short, long = ROLE[role]
            node = view.cpu_node[cpu]
            flashing = cpu in frame.flash
            text, style = texts[cpu]
            valid, stale = view.tlb_valid[cpu], view.tlb_stale[cpu]
            if role in (CpuRole.IDLE, CpuRole.INITIATOR):
                bar: list[tuple[str, str]] = [(" " * bar_width, "")]
                counts = "".ljust(12 if wide else pairs_width)
            else:
                bar = tlb_bar(valid, stale, scale, bar_width)
                counts = (f"{valid:>5} {stale:>5} " if wide
                          else f"{valid}/{stale}".ljust(pairs_width))
            name = f"{glyph} {long if wide else short}".ljust(role_width)
            row = Content.assemble(
                (f"cpu{cpu:<{digits}} ", _cpu_style(frame, cpu, node)),
                (f"n{node:<3} " if medium else f"{node:<2} ", _node_style(node)),
                (name, "bold $accent" if role == CpuRole.INITIATOR else ""),
                (("✓  " if medium else "✓ ") if view.cpu_in_mask[cpu] else
                 ("·  " if medium else "· "), "$text-muted"),
                *bar, " ",
                (counts, "$tlb-stale bold" if stale else "$text-muted"),
                (f"{int(ipis[cpu]) if cpu < ipis.size else 0:>4} " if medium else "",
                 "$ipi" if flashing else "$text-muted"),
                (text, style),
            )
            if flashing:
                row = row.stylize("$foreground on $ipi 35%")
            lines.append(row)
        if idle:
            lines.append(idle_line(idle))
        return lines

    @staticmethod
    def build_tight(frame: Frame) -> list[Content]:
        """Very narrow panels: glyphs only (help explains them)."""
        view = frame.view
        cpus = len(view.cpu_role)
        digits = len(str(cpus - 1))
        scale = max(8, max((v + s for v, s in zip(view.tlb_valid, view.tlb_stale,
                                                   strict=True)), default=0))
        lines = [Content.assemble(("cpu ".ljust(4 + digits) + "   TLB   now", "$text-muted"))]
        rows, idle = shown_cpus(frame)
        for cpu in rows:
            role = view.cpu_role[cpu]
            node = view.cpu_node[cpu]
            text, style = activity_text(frame, cpu, False)
            text = text.replace("stalled on", "wait").replace("IPI flush", "IPI")
            text = text.replace("running", "run")
            bar: list[tuple[str, str]] = [("     ", "")] if role in (
                CpuRole.IDLE, CpuRole.INITIATOR) else tlb_bar(view.tlb_valid[cpu],
                                                              view.tlb_stale[cpu], scale, 5)
            row = Content.assemble(
                (f"cpu{cpu:<{digits}} ", _cpu_style(frame, cpu, node)),
                (ROLE[role][0], "bold $accent" if role == CpuRole.INITIATOR else ""),
                ("✓ " if view.cpu_in_mask[cpu] else "  ", "$text-muted"), *bar, " ",
                (text, style))
            if cpu in frame.flash:
                row = row.stylize("$foreground on $ipi 35%")
            lines.append(row)
        if idle:
            lines.append(idle_line(idle))
        return lines
