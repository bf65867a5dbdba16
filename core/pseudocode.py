"""The two shapes of migrate_pages() as pseudo-code, and which line an event is on.

The listings are ours, in plain words, and follow the kernel's structure: Linux 6.2's pass loop
around ``unmap_and_move()`` (mm/migrate.c), and Linux 6.3's ``migrate_pages()`` cutting batches
for ``migrate_pages_batch()`` (unmap every folio, flush once, move every folio), with
``migrate_pages_sync()``'s one-by-one fallback for what the asynchronous passes could not move.
The code panel lights the line of the latest event; :func:`line_of` says which that is, from
the event alone, so a view of any instant (stepping back included) lights the same line.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.events import Event, EventKind, RoundKind
from core.kernel import NR_MAX_MIGRATE_ASYNC_RETRY, NR_MAX_MIGRATE_PAGES_RETRY, NR_MAX_MIGRATE_SYNC_RETRY


@dataclass(frozen=True, slots=True)
class CodeLine:
    """One line of a listing: an id the engine's events map to, its indent and its words."""

    id: str
    depth: int
    text: str
    function: str  # the kernel function the line stands for


BATCHED: tuple[CodeLine, ...] = (
    CodeLine("call", 0, "migrate_pages(from, node):", "migrate_pages"),
    CodeLine("cut", 1, "cut a batch: up to 512 base pages", "migrate_pages"),
    CodeLine("unmap-pass", 2, f"up to {NR_MAX_MIGRATE_ASYNC_RETRY} passes, never sleeping:",
             "migrate_pages_batch"),
    CodeLine("lock", 3, "trylock it, allocate the new folio", "migrate_folio_unmap"),
    CodeLine("unmap", 3, "PTEs → migration entries, flush deferred", "try_to_migrate_one"),
    CodeLine("pmd", 4, "a THP's PMD: flushed at once", "pmdp_invalidate"),
    CodeLine("split", 3, "no memory for a THP: split it", "try_split_folio"),
    CodeLine("flush", 2, "ONE flush: a round to all of mm_cpumask", "try_to_unmap_flush"),
    CodeLine("move-pass", 2, f"up to {NR_MAX_MIGRATE_ASYNC_RETRY} passes:", "migrate_pages_batch"),
    CodeLine("copy", 3, "copy the folio to the new one", "folio_copy"),
    CodeLine("move-fail", 3, "extra reference: -EAGAIN, stays unmapped", "migrate_folio_move"),
    CodeLine("remap", 3, "migration entries → new folio; unlock", "remove_migration_ptes"),
    CodeLine("undo", 2, "still unmapped: restore the old PTEs", "migrate_folio_undo_src"),
    CodeLine("fallback", 2, f"each failed folio alone, sync ({NR_MAX_MIGRATE_SYNC_RETRY} passes):",
             "migrate_pages_sync"),
    CodeLine("fb-lock", 3, "lock it (may sleep: lock, writeback)", "migrate_folio_unmap"),
    CodeLine("fb-unmap", 3, "unmap, a flush round per PTE", "ptep_clear_flush"),
    CodeLine("fb-move", 3, "copy, remap, unlock", "migrate_folio_move"),
    CodeLine("end", 1, "count pages moved and failed", "mm_migrate_pages"),
)

SERIAL: tuple[CodeLine, ...] = (
    CodeLine("call", 0, "migrate_pages(from, node):", "migrate_pages"),
    CodeLine("pass", 1, f"up to {NR_MAX_MIGRATE_PAGES_RETRY} passes while a folio must retry:",
             "migrate_pages"),
    CodeLine("folio", 2, "for each folio in from:", "unmap_and_move"),
    CodeLine("lock", 3, "lock it (passes 1-3 only try)", "__unmap_and_move"),
    CodeLine("ptes", 3, "for each PTE that maps it:", "try_to_migrate_one"),
    CodeLine("flush", 4, "clear + flush NOW: IPI all, wait", "ptep_clear_flush"),
    CodeLine("unmap", 4, "write a migration entry", "set_pte_at"),
    CodeLine("split", 3, "no memory for a THP: split it", "try_split_folio"),
    CodeLine("copy", 3, "copy it to the new folio", "folio_copy"),
    CodeLine("move-fail", 3, "extra reference: restore, retry", "remove_migration_ptes"),
    CodeLine("remap", 3, "migration entries → new folio; unlock", "remove_migration_ptes"),
    CodeLine("end", 1, "count pages moved and failed", "mm_migrate_pages"),
)


def listing(serial: bool) -> tuple[CodeLine, ...]:
    """The pseudo-code of one shape: Linux 6.2's (serial) or Linux 6.3's (batched)."""
    return SERIAL if serial else BATCHED


def line_of(event: Event | None) -> str:
    """The id of the line the task is on once ``event`` has happened (the listing is the one of
    the event's own shape: ``event.serial``). Before any event: the call's first line."""
    if event is None:
        return "call"
    kind = event.kind
    if kind is EventKind.MIGRATE_START:
        return "call"
    if kind is EventKind.MIGRATE_END:
        return "end"
    if kind is EventKind.SPLIT:
        return "split"
    if event.serial:
        return _serial_line(event)
    if event.sync:  # migrate_pages_sync()'s one-by-one fallback
        if kind in (EventKind.WAIT, EventKind.UNMAP_FAIL):
            return "fb-lock"
        if kind in (EventKind.COPY, EventKind.REMAP, EventKind.MOVE_FAIL, EventKind.RESTORE):
            return "fb-move"
        return "fb-unmap"
    if kind is EventKind.BATCH_START:
        return "cut"
    if kind in (EventKind.WAIT, EventKind.UNMAP_FAIL):
        return "lock"
    if kind is EventKind.UNMAP:
        return "unmap"
    if kind in (EventKind.FLUSH_SEND, EventKind.IPI_RECV, EventKind.FLUSH_DONE,
                EventKind.LOCAL_FLUSH):
        return "pmd" if event.round_kind is RoundKind.PMD else "flush"
    if kind is EventKind.COPY:
        return "copy"
    if kind is EventKind.MOVE_FAIL:
        return "move-fail"
    if kind is EventKind.REMAP:
        return "remap"
    if kind is EventKind.RESTORE:
        return "undo"
    return "cut"


def _serial_line(event: Event) -> str:
    kind = event.kind
    if kind is EventKind.BATCH_START:
        return "folio"
    if kind in (EventKind.WAIT, EventKind.UNMAP_FAIL):
        return "lock"
    if kind is EventKind.UNMAP:
        return "unmap"
    if kind in (EventKind.FLUSH_SEND, EventKind.IPI_RECV, EventKind.FLUSH_DONE,
                EventKind.LOCAL_FLUSH):
        return "flush"
    if kind is EventKind.COPY:
        return "copy"
    if kind in (EventKind.MOVE_FAIL, EventKind.RESTORE):
        return "move-fail"
    if kind is EventKind.REMAP:
        return "remap"
    return "folio"
