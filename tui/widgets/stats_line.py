"""StatsLine: pages migrated, IPI rounds and deliveries, IPIs per page, pages per second of
simulated time, the workload's stall p99 — the figures /proc/vmstat would give."""

from __future__ import annotations

from textual.content import Content

from tui.widgets.frame import Frame, format_count, format_ns
from tui.widgets.lines import FrameLine

# Where the migrating task's time goes (Counters.time_ns, indexed by core.stats.Spend).
SPEND = (
    ("isolate", "$foreground 25%"), ("prepare", "$foreground 70%"), ("unmap", "$phase-unmap"),
    ("flush", "$ipi"), ("copy", "$state-copying"), ("move", "$phase-move"),
    ("wait", "$state-retrying"),
)


# Counted like the seed's profile: CPU time inside migrate_pages(), so isolating folios
# (outside the call) and sleeping on locks or writeback (not cycles) are left out.
INSIDE = ("prepare", "unmap", "flush", "copy", "move")


def time_content(frame: Frame, width: int) -> Content:
    """A bar of migrate_pages() time by kind of work: serial spends most of it flushing."""
    spent = getattr(frame.view.counters, "time_ns", None)
    if spent is None or len(spent) == 0:
        return Content("")
    values = [int(v) if SPEND[i][0] in INSIDE else 0
              for i, v in enumerate(spent[: len(SPEND)])]
    total = sum(values)
    label = "migrate_pages() time " if width >= 90 else "time "
    if total <= 0:
        return Content.assemble((label, "$text-muted"), ("nothing spent yet", "$text-muted"))
    order = sorted(range(len(values)), key=lambda i: -values[i])
    legend: list[tuple[str, str]] = []
    for i in order:
        share = values[i] / total
        if share < 0.01:
            continue
        name, style = SPEND[i]
        legend += [(f" {name} ", style), (f"{share:.0%}", "bold")]
    legend_width = sum(len(text) for text, _ in legend)
    bar_width = max(10, min(60, width - len(label) - legend_width - 2))
    cells: list[tuple[str, str]] = []
    used = 0
    for i in range(len(values)):
        cells_here = round(values[i] * bar_width / total)
        cells_here = min(cells_here, bar_width - used)
        if cells_here > 0:
            cells.append(("█" * cells_here, SPEND[i][1]))
            used += cells_here
    if used < bar_width:
        cells.append(("·" * (bar_width - used), "$text-disabled"))
    content = Content.assemble((label, "$text-muted"), *cells, " ", *legend)
    return content.truncate(width)


def stats_content(frame: Frame, width: int) -> Content:
    """As many figures as fit ``width``, most important first."""
    view = frame.view
    c = view.counters
    seconds = view.clock_ns / 1e9
    rate = frame.pages_done / seconds if seconds > 0 else 0.0
    per_page = c.nr_tlb_remote_flush_received / frame.pages_done if frame.pages_done else 0.0
    p99 = view.workload.percentile(99)
    ok = c.ordering_violations == 0
    items: list[tuple[str, str, str]] = [
        ("pages ", f"{frame.pages_done}/{frame.pages_total}", "bold"),
        ("rounds ", f"{c.nr_tlb_remote_flush}", "bold"),
        ("IPIs ", f"{c.nr_tlb_remote_flush_received}", "bold $ipi"),
        ("IPI/page ", f"{per_page:.3g}", "bold"),
        ("pages/s ", format_count(rate), "bold"),
        ("stall p99 ", format_ns(p99) if p99 else "—", "bold"),
        ("retries ", f"{c.retries}", "bold"),
        ("failed ", f"{c.pgmigrate_fail}", "bold $state-failed" if c.pgmigrate_fail else "bold"),
        ("copy-after-flush ", "✓ held", "bold $success"),
    ]
    if not ok:
        # The teaching scenario without flushes: lead with what went wrong.
        items.insert(0, ("copy-after-flush ", f"✗ broken {c.ordering_violations}× · "
                         f"{view.workload.lost_writes} writes lost", "bold $error"))
        items.pop()
    parts: list[tuple[str, str]] = []
    used = 0
    for label, value, style in items:
        size = len(label) + len(value) + 2
        if used + size > width:
            break
        parts += [(label, "$text-muted"), (value, style), ("  ", "")]
        used += size
    return Content.assemble(*parts)


class StatsLine(FrameLine):
    """One line of counters."""

    DEFAULT_CSS = """
    StatsLine { height: 1; }
    """

    def content_for(self, frame: Frame, width: int) -> Content:
        content = stats_content(frame, width)
        if self.size.height >= 2:
            content = Content.assemble(content, "\n", time_content(frame, width))
        return content
