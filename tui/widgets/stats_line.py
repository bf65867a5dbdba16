"""StatsLine: pages migrated, IPI rounds and deliveries, IPIs per page, pages per second of
simulated time, the workload's stall p99 — the figures /proc/vmstat would give."""

from __future__ import annotations

from textual.content import Content

from tui.units import format_count, format_ns
from tui.widgets.frame import Frame
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
    # The legend names the biggest shares first, as many whole entries as fit beside a bar of
    # at least 10 cells (never a name cut in half).
    room = width - len(label) - 10 - 2
    for i in order:
        share = values[i] / total
        if share < 0.01:
            continue
        name, style = SPEND[i]
        entry = [(f" {name} ", style), (f"{share:.0%}", "bold")]
        if sum(len(text) for text, _ in legend + entry) > room:
            break
        legend += entry
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


SHORT_LABEL = {"copy-after-flush ": "flush→copy "}


def stats_content(frame: Frame, width: int) -> Content:
    """As many figures as fit ``width``: the least important drop first, the rest keep their
    order. The copy-after-flush check is never dropped while anything else is shown."""
    view = frame.view
    c = view.counters
    p99 = view.workload.percentile(99)
    # (priority: higher drops first, label, value, style)
    # A broadcast mechanism (arm64 TLBI, AMD INVLPGB) sends no IPI rounds: its waits and its
    # invalidations stand where the rounds and IPIs per page would.
    rounds = (1, "rounds ", f"{c.nr_tlb_remote_flush}", "bold") if view.interrupts else \
        (1, f"{view.mechanism.wait} waits ", f"{c.sync_waits}", "bold")
    per_page = (3, "IPI/page ", f"{view.ipis_per_page:.3g}", "bold") if view.interrupts else \
        (3, f"{view.mechanism.issue} ", f"{c.tlbi_broadcasts}", "bold")
    items: list[tuple[int, str, str, str]] = [
        (0, "pages ", f"{view.pages_done}/{view.pages_total}", "bold"),
        rounds,
        (0, "IPIs ", f"{c.nr_tlb_remote_flush_received}", "bold $ipi"),
        per_page,
        (1, "pages/s ", format_count(view.pages_per_sec), "bold"),
        (4, "stall p99 ", format_ns(p99) if p99 else "—", "bold"),
        (2, "retries ", f"{c.retries}", "bold"),
        (2, "failed ", f"{c.pgmigrate_fail}",
         "bold $state-failed" if c.pgmigrate_fail else "bold"),
    ]
    broken, lost = c.ordering_violations, view.workload.lost_writes
    if broken:
        # The teaching scenario without flushes: lead with what went wrong.
        items.insert(0, (0, "copy-after-flush ", f"✗ broken {broken}× · {lost} writes lost",
                         "bold $error"))
    else:
        items.append((0, "copy-after-flush ", "✓ held", "bold $success"))
    if sum(len(label) + len(value) + 2 for rank, label, value, _ in items if rank == 0) > width:
        # Narrow (a split-view column): the checks keep their place in a shorter form.
        short = {"✓ held": "✓", f"✗ broken {broken}× · {lost} writes lost": f"✗{broken}× {lost} lost"}
        items = [(rank, SHORT_LABEL.get(label, label), short.get(value, value), style)
                 for rank, label, value, style in items]
    alive = [True] * len(items)

    def size() -> int:
        return sum(len(label) + len(value) + 2
                   for keep, (_, label, value, _) in zip(alive, items, strict=True) if keep)

    for drop in sorted(range(len(items)), key=lambda i: (-items[i][0], -i)):
        if size() <= width or items[drop][0] == 0:
            break
        alive[drop] = False
    parts: list[tuple[str, str]] = []
    used = 0
    for keep, (_, label, value, style) in zip(alive, items, strict=True):
        if not keep:
            continue
        if used + len(label) + len(value) > width:
            break
        if f"counter:{label.strip()}" in frame.marks:  # a tour points at it
            parts += [(label, "bold reverse $warning"), (value, "bold reverse $warning"),
                      ("  ", "")]
        else:
            parts += [(label, "$text-muted"), (value, style), ("  ", "")]
        used += len(label) + len(value) + 2
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
