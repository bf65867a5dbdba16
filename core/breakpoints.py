"""Breakpoints: kinds of events a run can stop at, the way one stops a kernel in a debugger."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum

from core.events import Errno, Event, EventKind


class Breakpoint(StrEnum):
    """A kind of event to stop at."""

    FLUSH = "flush"  # a shootdown round is sent (tlb_flush: remote ipi send)
    RETRY = "retry"  # an attempt got -EAGAIN: busy lock, or an extra reference at move time
    FAILURE = "failure"  # -EBUSY or -ENOMEM, or a folio restored to its old mapping
    SPLIT = "split"  # a THP is split after -ENOMEM
    BATCH = "batch"  # migrate_pages() cuts a new batch
    CALL = "call"  # a migrate_pages() call starts or ends


DESCRIPTIONS: dict[Breakpoint, str] = {
    Breakpoint.FLUSH: "a TLB-shootdown round is sent (native_flush_tlb_multi)",
    Breakpoint.RETRY: "an attempt gets -EAGAIN (busy folio lock, extra reference)",
    Breakpoint.FAILURE: "-EBUSY, -ENOMEM, or a folio restored to its old mapping",
    Breakpoint.SPLIT: "a THP is split into base pages (try_split_folio)",
    Breakpoint.BATCH: "migrate_pages() cuts a new batch",
    Breakpoint.CALL: "a migrate_pages() call starts or ends",
}


def matches(breakpoint: Breakpoint, event: Event) -> bool:
    """Does this event trigger this breakpoint?"""
    kind = event.kind
    if breakpoint is Breakpoint.FLUSH:
        return kind is EventKind.FLUSH_SEND
    if breakpoint is Breakpoint.RETRY:
        return (kind is EventKind.UNMAP_FAIL and event.arg == Errno.EAGAIN) or \
            kind is EventKind.MOVE_FAIL
    if breakpoint is Breakpoint.FAILURE:
        return (kind is EventKind.UNMAP_FAIL and event.arg in (Errno.EBUSY, Errno.ENOMEM)) or \
            kind is EventKind.RESTORE
    if breakpoint is Breakpoint.SPLIT:
        return kind is EventKind.SPLIT
    if breakpoint is Breakpoint.BATCH:
        return kind is EventKind.BATCH_START
    return kind in (EventKind.MIGRATE_START, EventKind.MIGRATE_END)


def stopper(breakpoints: Iterable[Breakpoint], folio: int | None = None
            ) -> Callable[[Event], bool] | None:
    """A predicate for Engine.run_until(stop=...): any of the kinds, or any event of ``folio``.
    None when there is nothing to stop at."""
    kinds = tuple(breakpoints)
    if not kinds and folio is None:
        return None

    def stop(event: Event) -> bool:
        if folio is not None and event.folio == folio:
            return True
        return any(matches(kind, event) for kind in kinds)

    return stop
