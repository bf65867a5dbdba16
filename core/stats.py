"""Counters, named as the kernel names them, and the figures derived from them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from core.events import RoundKind


class Spend(IntEnum):
    """Kinds of work the migrating task's time is booked to (``Counters.time_ns``)."""

    ISOLATE = 0  # isolating and putting back folios, outside migrate_pages()
    PREPARE = 1  # get_new_folio(), folio_trylock() and the anon_vma reference
    UNMAP = 2  # try_to_migrate_one(): clear PTEs, set migration entries (without the flush)
    FLUSH = 3  # shootdown rounds: sending IPIs and spinning until every ack
    COPY = 4  # folio_copy()
    MOVE = 5  # folio_migrate_mapping/flags, LRU, remove_migration_ptes(), unlock; undo
    WAIT = 6  # sleeping on a folio lock or writeback (sync passes): not CPU cycles


@dataclass(slots=True)
class MigrateStats:
    """``struct migrate_pages_stats`` (mm/migrate.c): one per migrate_pages() call, in base pages."""

    nr_succeeded: int = 0
    nr_failed_pages: int = 0
    nr_thp_succeeded: int = 0
    nr_thp_failed: int = 0
    nr_thp_split: int = 0


@dataclass(slots=True)
class Counters:
    """What /proc/vmstat and /proc/interrupts would show, plus the engine's own tallies.

    The ``nr_tlb_*`` names follow vm_event_item.h (they exist with CONFIG_DEBUG_TLBFLUSH);
    ``tlb_shootdowns`` is the per-CPU "TLB" row of /proc/interrupts.
    """

    pgmigrate_success: int = 0
    pgmigrate_fail: int = 0
    thp_migration_success: int = 0
    thp_migration_fail: int = 0
    thp_migration_split: int = 0
    nr_tlb_remote_flush: int = 0  # shootdown rounds sent (native_flush_tlb_multi calls)
    nr_tlb_remote_flush_received: int = 0  # IPIs handled by targets (sum of the TLB row)
    nr_tlb_local_flush_all: int = 0
    nr_tlb_local_flush_one: int = 0
    migrate_calls: int = 0  # migrate_pages() calls (one per one-way move)
    batches: int = 0  # batches cut by migrate_pages() (serial mode: none)
    passes: int = 0  # unmap passes over a list (async batch passes, sync passes, serial passes)
    retries: int = 0  # attempts that returned -EAGAIN (tried again while passes remain)
    eagain_unmap: int = 0
    eagain_move: int = 0
    ebusy: int = 0
    enomem: int = 0
    lock_waits: int = 0
    writeback_waits: int = 0
    sync_fallback_folios: int = 0  # folios retried one by one by migrate_pages_sync()
    fallback_flush_rounds: int = 0  # shootdown rounds sent from the one-by-one fallback
    pmd_flush_rounds: int = 0  # immediate rounds for PMD-mapped THPs
    batch_flush_rounds: int = 0  # try_to_unmap_flush() rounds (one per async batch pass at most)
    ordering_violations: int = 0  # copies started while a flush was still pending (must be 0)
    numa_pte_updates: int = 0  # PTEs made PROT_NONE by the NUMA scanner (/proc/vmstat)
    numa_hint_faults: int = 0  # NUMA hinting faults taken
    numa_hint_faults_local: int = 0  # ... on a folio already on the faulting CPU's node
    numa_pages_migrated: int = 0  # pages migrate_misplaced_folio() moved
    tlbi_broadcasts: int = 0  # broadcast invalidations issued (arm64 TLBI, AMD INVLPGB)
    sync_waits: int = 0  # waits for them to complete (DSB ISH, TLBSYNC)
    rounds_by_kind: npt.NDArray[np.int64] = field(  # indexed by events.RoundKind; sums to rounds
        default_factory=lambda: np.zeros(len(RoundKind), dtype=np.int64)
    )
    tlb_shootdowns: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    # Indexed by Spend. A list: the task adds to it at every step, and adding to a numpy
    # element costs several times as much.
    time_ns: list[int] = field(default_factory=lambda: [0] * len(Spend))

    def copy(self) -> Counters:
        """An independent copy (arrays included)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["tlb_shootdowns"] = self.tlb_shootdowns.copy()
        values["time_ns"] = list(self.time_ns)
        values["rounds_by_kind"] = self.rounds_by_kind.copy()
        return Counters(**values)

    def add_migrate_stats(self, stats: MigrateStats) -> None:
        """count_vm_events() at the end of migrate_pages()."""
        self.pgmigrate_success += stats.nr_succeeded
        self.pgmigrate_fail += stats.nr_failed_pages
        self.thp_migration_success += stats.nr_thp_succeeded
        self.thp_migration_fail += stats.nr_thp_failed
        self.thp_migration_split += stats.nr_thp_split


@dataclass(slots=True, frozen=True)
class WorkloadStats:
    """What the workload's threads experienced."""

    accesses: int
    tlb_hits: int
    tlb_misses: int  # refills: page walks after an entry was absent or flushed
    stale_hits: int  # accesses through a stale entry to a folio that was already unmapped
    faults: int  # accesses that hit a migration entry and waited in migration_entry_wait()
    lost_writes: int  # writes through a stale entry after the copy began (only without flushes)
    stall_ns: npt.NDArray[np.int64]  # one duration per completed wait

    def percentile(self, q: float) -> int:
        """A stall percentile in ns (0 when nothing stalled)."""
        if self.stall_ns.size == 0:
            return 0
        return int(np.percentile(self.stall_ns, q, method="higher"))


def pages_per_second(pages: int, sim_ns: int) -> float:
    """Pages migrated per simulated second, as `migviz run` and the app both report it."""
    return round(pages / (sim_ns / 1e9), 1) if sim_ns > 0 else 0.0


def ipis_per_page(ipis: int, pages: int) -> float:
    """Shootdown IPIs delivered per page migrated."""
    return round(ipis / pages, 4) if pages else 0.0
