"""The folio table: every folio's order, node, mapping state and display state, as numpy arrays.

Folios are numbered in address order as the scenario lists them. A THP that is split gets
``1 << order`` new base folios appended at the end of the table (the table is sized for that), and
the page-to-folio map is updated so the workload's accesses find the pieces.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from core.scenario import Memory

PMD_ORDER = 9  # HPAGE_PMD_ORDER on x86-64 with 4 KiB pages: a PMD maps 512 base pages
PMD_PAGES = 1 << PMD_ORDER  # a PMD-mapped THP: one TLB entry for its 2 MiB


class FolioState(IntEnum):
    """What a folio is doing, as the folio grid shows it."""

    MAPPED = 0  # mapped, not being migrated right now
    UNMAPPED = 1  # migration entry installed, TLB flush still pending: stale entries may exist
    FLUSHED = 2  # migration entry installed and every TLB flushed: safe to copy
    COPYING = 3  # folio_copy() in progress
    REMAPPED = 4  # migrated in this move, mapped on the destination node
    RETRYING = 5  # got -EAGAIN (or was given up by the async batch): will be tried again
    FAILED = 6  # could not be migrated in this move; mapped on its old node
    SPLIT = 7  # a THP that was split; its pieces are new folios (this entry is dead)
    PROT_NONE = 8  # NUMA balancing made its PTE PROT_NONE: the next touch takes a hinting fault


_UNMAPPED, _FLUSHED = int(FolioState.UNMAPPED), int(FolioState.FLUSHED)


class FolioTable:
    """Per-folio numpy arrays plus the page-to-folio map."""

    def __init__(self, memory: Memory) -> None:
        orders: list[int] = []
        for group in memory.folios:
            orders.extend([group.order] * group.count)
        count = len(orders)
        spare = sum((1 << o) for o in orders if o > 0)  # room for every large folio to split
        capacity = count + spare
        self.count = count
        self.capacity = capacity
        self.order = np.zeros(capacity, dtype=np.int8)
        self.order[:count] = orders
        self.node = np.zeros(capacity, dtype=np.int8)
        self.state = np.zeros(capacity, dtype=np.int8)
        self.alive = np.zeros(capacity, dtype=bool)
        self.alive[:count] = True
        self.unmapped = np.zeros(capacity, dtype=bool)  # PTE holds a migration entry
        self.flush_pending = np.zeros(capacity, dtype=bool)  # stale TLB entries may exist
        self.first_page = np.zeros(capacity, dtype=np.int64)
        pages = np.left_shift(1, self.order[:count].astype(np.int64))
        self.first_page[:count] = np.concatenate(([0], np.cumsum(pages)[:-1]))
        self.total_pages = int(pages.sum())
        self.page_folio = np.repeat(np.arange(count, dtype=np.int32), pages)
        # Python lists of what changes only at a split, for the task's folio-at-a-time reads
        # (a numpy element read costs several times a list's).
        self.orders: list[int] = self.order.tolist()
        self.first_pages: list[int] = self.first_page.tolist()

    def nr_pages(self, folio: int) -> int:
        """folio_nr_pages()."""
        return 1 << self.orders[folio]

    def is_pmd_mapped(self, folio: int) -> bool:
        """A PMD-sized THP is mapped by one PMD (one TLB entry, one immediate flush)."""
        return self.orders[folio] == PMD_ORDER

    def ptes(self, folio: int) -> int:
        """Page-table entries mapping the folio: one PMD for a THP, else one PTE per page."""
        order = self.orders[folio]
        return 1 if order == PMD_ORDER else 1 << order

    def flushed(self, folios: list[int]) -> None:
        """A flush covering ``folios`` has completed: no stale entries are left, and those
        unmapped are now flushed (safe to copy)."""
        # (Plain ints: an IntEnum member makes numpy probe its class for array interfaces.)
        if len(folios) < 16:  # one at a time is cheaper than numpy's fancy indexing
            for folio in folios:
                self.flush_pending[folio] = False
                if self.state[folio] == _UNMAPPED:
                    self.state[folio] = _FLUSHED
            return
        ids = np.asarray(folios, dtype=np.int64)
        self.flush_pending[ids] = False
        self.state[ids[self.state[ids] == _UNMAPPED]] = _FLUSHED

    def on_node(self, node: int) -> list[int]:
        """Alive folios on a node, in address order (what queue_pages_range() isolates)."""
        ids = np.flatnonzero(self.alive[: self.count] & (self.node[: self.count] == node))
        ordered: list[int] = ids[np.argsort(self.first_page[ids], kind="stable")].tolist()
        return ordered

    def split(self, folio: int) -> list[int]:
        """Split a large folio into base folios appended to the table; returns the new ids."""
        pages = self.nr_pages(folio)
        start = self.count
        ids = np.arange(start, start + pages)
        self.count += pages
        self.order[ids] = 0
        self.node[ids] = self.node[folio]
        self.state[ids] = FolioState.MAPPED
        self.alive[ids] = True
        self.first_page[ids] = self.first_page[folio] + np.arange(pages)
        self.orders[start : start + pages] = [0] * pages
        first = int(self.first_page[folio])
        self.first_pages[start : start + pages] = range(first, first + pages)
        self.page_folio[first : first + pages] = ids
        self.alive[folio] = False
        self.state[folio] = FolioState.SPLIT
        return ids.tolist()

    def copy(self) -> FolioTable:
        """An independent copy (for checkpoints)."""
        clone = FolioTable.__new__(FolioTable)
        for name, value in vars(self).items():
            setattr(clone, name, value.copy() if isinstance(value, np.ndarray | list) else value)
        return clone

    def frozen(self, name: str) -> npt.NDArray[Any]:
        """A read-only copy of the live part of one array (for drawing)."""
        view: npt.NDArray[Any] = getattr(self, name)[: self.count].copy()
        view.flags.writeable = False
        return view
