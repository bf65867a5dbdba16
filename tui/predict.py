"""Predict, then reveal, in the app (`x`): stop before the next batch (serial: the next folio),
ask the room how many IPIs it will send, play it, and say who was right.

The question gives what a student needs (the unit's folios and pages, the CPUs the process runs
on, where migratepages runs); the answer is the engine's own count of IPIs delivered while the
unit ran, read when the next unit begins.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.engine import EngineView
from core.events import Event, EventKind
from core.tlb import CpuRole
from tui.widgets.tlb_panel import cpu_ranges


@dataclass(frozen=True, slots=True)
class Question:
    """A prediction asked for one unit of a run."""

    move: int
    unit: int  # batch k (serial: folio k) of the call
    serial: bool
    ipis_before: int  # IPIs delivered when the unit began
    rounds_before: int
    prediction: int

    def ended(self, event: Event) -> bool:
        """Whether ``event`` is past the unit: the next unit's first event, or the call's end."""
        if event.kind is EventKind.MIGRATE_END or event.move != self.move:
            return True
        if self.serial:
            return event.batch != self.unit
        return event.kind is EventKind.BATCH_START and event.batch != self.unit


def starts_unit(event: Event, serial: bool, unit: int | None) -> bool:
    """Whether ``event`` is the first of a new unit that migrates folios (a batch cut off the
    list; serial: the first step on the next folio)."""
    if serial:
        return event.kind not in (EventKind.MIGRATE_START, EventKind.MIGRATE_END) and \
            event.folio >= 0 and event.batch != unit
    return event.kind is EventKind.BATCH_START


def question_text(view: EngineView, first: Event) -> str:
    """The question for the unit ``first`` begins (the view: the run just before it)."""
    mask = [cpu for cpu, inside in enumerate(view.cpu_in_mask) if inside]
    where = f"mm_cpumask holds {cpu_ranges(mask)}"
    lazy = [cpu for cpu in mask if view.cpu_role[cpu] is CpuRole.LAZY]
    if lazy:
        where += f" ({cpu_ranges(lazy)} in lazy-TLB mode)"
    where += f"; migratepages runs on cpu{first.cpu}."
    if first.serial:
        size = "a 2 MiB THP" if first.order >= 9 else (
            "one 4 KiB page" if first.order == 0 else f"{1 << first.order} pages")
        unit = f"Serial (Linux 6.2), folio {first.batch} of this call: {size}."
    else:
        folios, pages = first.arg, first.pages
        thps, rest = divmod(pages - folios, 511)
        what = f"{folios - thps} base pages and {thps} THP{'s' if thps > 1 else ''} (2 MiB)" \
            if thps and not rest else f"{folios} folios, {pages} base pages"
        unit = f"Batched (Linux 6.3), batch {first.batch} of this call: {what}."
    return f"{unit} {where}\n\nHow many TLB-shootdown IPIs will it send?"


def verdict(question: Question, ipis: int, rounds: int, score: tuple[int, int]) -> str:
    """What the reveal says."""
    what = "folio" if question.serial else "batch"
    told = f"{what} {question.unit} sent {ipis} IPI{'s' if ipis != 1 else ''} in " \
        f"{rounds} round{'s' if rounds != 1 else ''}"
    right, asked = score
    off = abs(question.prediction - ipis)
    mark = f"✗ off by {off}" if off else "✓ right"
    return f"{told}. You said {question.prediction}: {mark}. Score {right}/{asked}."
