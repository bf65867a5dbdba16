"""PhaseStrip: unmap → flush → move progress of the current batch (serial: of the current
folio), each phase named after the kernel function it mirrors."""

from __future__ import annotations

from textual.content import Content

from core.engine import UnitProgress
from core.events import Phase
from tui.widgets.frame import Frame
from tui.widgets.lines import FrameLine

STEPS = (
    (Phase.UNMAP, "unmap", "migrate_folio_unmap", "$phase-unmap"),
    (Phase.FLUSH, "flush", "try_to_unmap_flush", "$phase-flush"),
    (Phase.MOVE, "move", "migrate_folio_move", "$phase-move"),
)
SERIAL_STEPS = (
    (Phase.UNMAP, "unmap", "try_to_migrate", "$phase-unmap"),
    (Phase.FLUSH, "flush", "ptep_clear_flush", "$phase-flush"),
    (Phase.MOVE, "move", "move_to_new_folio", "$phase-move"),
)


def bar(done: int, total: int, width: int) -> str:
    if width <= 0:
        return ""
    if total <= 0:
        return "·" * width
    filled = min(width, round(done * width / total))
    if done > 0 and filled == 0:
        filled = 1
    return "█" * filled + "░" * (width - filled)


def strip_content(frame: Frame, width: int) -> Content:
    """The strip for a frame at a given width (the widest variant that fits)."""
    for variant in (2, 1, 0, -1, -2):
        content = _strip(frame, width, variant)
        if content.cell_length <= width:
            return content
    return content


def _strip(frame: Frame, width: int, variant: int) -> Content:
    """variant 2: with kernel function names; 1: normal; 0: compact; -1: no bars; -2: no bars
    and no spaces around the arrows (split view on 80 columns)."""
    view = frame.view
    progress: UnitProgress = view.unit
    if view.numa:
        return _numa_strip(frame, variant)
    if view.done:
        return Content.assemble(("all moves done · ", "bold $success"),
                                ("r resets, s races serial against batched", "$text-muted"))
    if not progress.unit:
        return Content.assemble(("between units: ", "$text-muted"),
                                ("migrate_pages() is starting or ending a call", "$text-muted"))
    serial = progress.unit == "folio"
    if variant <= 0:
        head = f"{progress.unit[0]}{progress.index}/{progress.total} "
    elif serial:
        head = f"folio {progress.index}/{progress.total} ({progress.pages} p) "
    else:
        head = f"batch {progress.index}/{progress.total} ({progress.folios} folios) "
    if view.pass_ > 1 and not view.sync:
        head += f"pass {view.pass_} "
    steps = SERIAL_STEPS if serial else STEPS
    total = max(progress.folios, 1)
    figures = {
        Phase.UNMAP: (progress.unmapped, total),
        # A broadcast's round has no acknowledgements, only the sender's wait (DSB, TLBSYNC).
        Phase.FLUSH: (progress.round_acked, max(progress.round_targets, 1)) if view.interrupts
        else (int(progress.round_done), 1),
        Phase.MOVE: (progress.moved, total),
    }
    numbers = sum(len(f" {d}/{o}") for d, o in figures.values()) + 5
    fixed = len(head) + 2 + numbers + 3 * 8 + 4
    if variant == 2:
        fixed += sum(len(fn) + 3 for _, _, fn, _ in steps)
    bar_width = min(24, (width - fixed) // 3)
    if variant < 0:
        bar_width = 0
    elif bar_width < (3 if variant else 2):
        bar_width = 3 if variant else 2
    parts: list[tuple[str, str] | str] = [(head, "bold")]
    if variant > -2:
        parts.append(("│ ", "$text-muted"))
    order = [Phase.UNMAP, Phase.FLUSH, Phase.MOVE]
    current = view.phase if view.phase in order else None
    in_fallback = progress.fallback_folio >= 0
    if in_fallback:
        current = None  # the batch's own phases are over; the fallback runs below
    for index, (phase, name, function, colour) in enumerate(steps):
        done, of = figures[phase]
        active = phase is current
        finished = current is not None and order.index(phase) < order.index(current)
        style = f"bold {colour}" if active else (colour if finished or done else "$text-muted")
        label = f"{name} ({function})" if variant == 2 else name
        mark = "▶" if active else ("" if variant < -1 else " ")
        parts.append((mark + label + " ", style))
        if bar_width:
            parts.append((bar(done, of, bar_width) + " ",
                           colour if (active or done) else "$text-muted"))
        acks = (" acks" if view.interrupts else " waits") \
            if phase is Phase.FLUSH and variant > -2 and variant else ""
        parts.append((f"{done}/{of}{acks}", style))
        if index < 2:
            parts.append((" →" if variant > 0 else "→", "$text-muted"))
    if progress.retries:
        parts.append((f"  {progress.retries} retried in this {progress.unit}" if variant > 0
                      else f"  {progress.retries}↻", "bold $state-retrying"))
    if in_fallback:
        name = PHASE_WORD.get(view.phase, "")
        parts.append(("  │ " if variant > 0 else "│", "$text-muted"))
        parts.append(((f"sync fallback (migrate_pages_sync): folio {progress.fallback_folio} "
                       if variant > 0 else f"sync f{progress.fallback_folio} ") + name,
                      "bold $state-retrying"))
    return Content.assemble(*parts)


PHASE_WORD = {Phase.UNMAP: "unmap", Phase.FLUSH: "flush (per PTE)", Phase.MOVE: "move",
              Phase.UNDO: "undo"}


class PhaseStrip(FrameLine):
    """One line of phase progress."""

    DEFAULT_CSS = """
    PhaseStrip { height: 1; background: $panel; }
    """

    def content_for(self, frame: Frame, width: int) -> Content:
        return strip_content(frame, width)


def _numa_strip(frame: Frame, variant: int) -> Content:
    """NUMA balancing has no batches to follow: the threads' own calls, one folio each, are
    in flight side by side, so the strip names them."""
    view = frame.view
    if view.done:
        return Content.assemble(("NUMA balancing done · ", "bold $success"),
                                ("r resets, s races serial against batched", "$text-muted"))
    calls = [(cpu, folio) for cpu, folio in enumerate(view.cpu_migrating) if folio >= 0]
    if not calls:
        what = ("no call in flight: the threads run, the scanner makes pages PROT_NONE"
                if variant > 0 else "no call in flight")
        return Content.assemble(("NUMA balancing: ", "bold"), (what, "$text-muted"))
    each = [f"cpu{cpu} → folio {folio}" if variant > 0 else f"{cpu}→{folio}"
            for cpu, folio in calls]
    tail = (" · one folio per migrate_pages() call" if variant > 1 else "")
    return Content.assemble(("NUMA balancing: ", "bold"),
                            (f"{len(calls)} call{'s' if len(calls) != 1 else ''} in flight ", ""),
                            ("(" + ", ".join(each) + ")", "bold $accent"), (tail, "$text-muted"))
