"""A run's figures as one typed, frozen record: what `migviz run --json` prints, what `bench`,
`compare` and the app read (by field, never by key)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """Counters and derived figures of a run (or of the part run so far). The field names are
    the keys of `migviz run --json`; counters named after the kernel's mean what its do."""

    scenario: str
    mode: str  # the mode the run started in: "serial" or "batched"
    sim_time_ns: int

    # /proc/vmstat
    pgmigrate_success: int
    pgmigrate_fail: int
    thp_migration_success: int
    thp_migration_fail: int
    thp_migration_split: int
    nr_tlb_remote_flush: int  # rounds sent with IPIs
    nr_tlb_remote_flush_received: int  # IPIs handled
    nr_tlb_local_flush_all: int
    nr_tlb_local_flush_one: int
    numa_pte_updates: int
    numa_hint_faults: int
    numa_hint_faults_local: int
    numa_pages_migrated: int

    # the flush mechanism
    arch: str  # topology.arch
    tlbi_broadcasts: int  # broadcast invalidations issued (TLBI, INVLPGB)
    sync_waits: int  # waits for them (DSB ISH, TLBSYNC)
    tlb_shootdowns: tuple[int, ...]  # /proc/interrupts' TLB row, per CPU

    # migrate_pages()
    migrate_calls: int
    batches: int
    passes: int
    retries: int
    eagain_unmap: int
    eagain_move: int
    ebusy: int
    enomem: int
    lock_waits: int
    writeback_waits: int
    sync_fallback_folios: int
    fallback_flush_rounds: int
    batch_flush_rounds: int
    pmd_flush_rounds: int
    ordering_violations: int
    pages_per_sec: float  # simulated
    ipis_per_page: float

    # the workload
    accesses: int
    workload_accesses_per_sec: float
    tlb_hits: int
    tlb_misses: int
    stale_hits: int
    stale_writes: int
    lost_writes: int
    stalls: int
    stall_p50_ns: int
    stall_p99_ns: int
    stall_max_ns: int

    # where the migrating task's time went
    events: int
    migrate_pages_ns: int  # CPU time inside migrate_pages(): no isolation, no sleeping
    flush_share_pct: float
    copy_share_pct: float
    unmap_flush_share_pct: float
    flush_cpu_ns: int  # flushing on every CPU: the sender's time plus each IPI's handler
    time_isolate_ns: int
    time_prepare_ns: int
    time_unmap_ns: int
    time_flush_ns: int
    time_copy_ns: int
    time_move_ns: int
    time_wait_ns: int

    def as_json(self) -> dict[str, Any]:
        """The record as `--json` prints it (a list for the per-CPU row)."""
        out = asdict(self)
        out["tlb_shootdowns"] = list(self.tlb_shootdowns)
        return out

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The field names, in `--json` order."""
        return tuple(field.name for field in fields(cls))


def to_json(value: object) -> Any:
    """A ``json.dumps(default=...)`` hook: records with ``as_json()`` become their objects."""
    as_json = getattr(value, "as_json", None)
    if as_json is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return as_json()
