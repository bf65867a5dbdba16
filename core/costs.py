"""The cost model: what every simulated action takes, in nanoseconds, and where each number comes from.

Every default lives here, next to its source (``docs §N`` = section N of ``docs/kernel.md``; the
derivations are in ``docs/calibration.md``). A scenario's ``[costs]`` table overrides any of them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Costs(BaseModel):
    """Nanosecond costs of the actions the engine simulates (x86-64, 2-socket defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    isolate_call_ns: int = Field(
        20_000, ge=0,
        description="Per migrate_pages(2) call, before isolating: do_migrate_pages() disables "
        "the per-CPU LRU caches and drains them on every CPU (lru_cache_disable -> "
        "lru_add_drain_all: work queued on each CPU and waited for); tens of us on a "
        "2-socket server ([I], docs §2).",
    )
    walk_pte_ns: int = Field(
        25, ge=0,
        description="queue_pages_range() per page-table entry of the process it walks (the whole "
        "mapping, on either node): present?, vm_normal_folio(), which node? (tens of ns, [I], "
        "docs §2).",
    )
    isolate_folio_ns: int = Field(
        120, ge=0,
        description="Per folio queued: folio_isolate_lru() under the LRU lock and the list add "
        "(~0.1 us, [I], docs §2).",
    )
    putback_folio_ns: int = Field(
        120, ge=0,
        description="Per folio that did not migrate: putback_movable_pages() puts it back on the "
        "LRU after the call (like isolating it, [I]). A migrated source folio is freed inside "
        "migrate_pages() instead, booked to move_ns.",
    )
    alloc_ns: int = Field(
        150, ge=0,
        description="get_new_folio(): allocate the destination folio from the target node's free "
        "lists (~0.1-0.2 us, [I]). With move_ns and remap_pte_ns it makes the non-copy work ~0.45 "
        "us per page, which the post-series profile implies (copy = 43.7% of migrate_pages cycles "
        "at ~0.38 us per copy, docs §8.3, §9).",
    )
    lock_ns: int = Field(
        20, ge=0,
        description="folio_trylock() of src and dst plus the anon_vma reference, uncontended (part "
        "of the ~0.45 us of non-copy work, docs §9, [I]).",
    )
    unmap_pte_ns: int = Field(
        70, ge=0,
        description="try_to_migrate_one() per PTE: rmap walk, clear PTE, set migration entry, "
        "without the flush. After the series try_to_migrate_one, which then defers the flush, was "
        "8.3% of migrate_pages cycles (docs §8.1, §9: ~0.05-0.1 us).",
    )
    move_ns: int = Field(
        150, ge=0,
        description="migrate_folio_move() besides the copy: folio_migrate_mapping() (refcount "
        "check), folio_migrate_flags() (memcg, NUMA), folio_add_lru() ([I], same derivation as "
        "alloc_ns).",
    )
    remap_pte_ns: int = Field(
        60, ge=0,
        description="remove_migration_pte() per PTE plus unlocking src/dst (docs §4.5, [I]).",
    )
    copy_page_ns: int = Field(
        380, ge=0,
        description="folio_copy() per 4 KiB base page, cross-socket, one CPU: 0.35-0.4 us for 4 KiB "
        "and 180-200 us for 2 MiB, i.e. ~10.7 GB/s (Shivank Garg's RFC v3 tables, docs §9.1).",
    )
    invlpg_ns: int = Field(
        100, ge=0,
        description="INVLPG of one page on a CPU: 'Each single flush is about 100 ns' "
        "(arch/x86/mm/tlb.c comment, docs §5.5, §9).",
    )
    full_flush_ns: int = Field(
        300, ge=0,
        description="Full flush of the process's TLB entries on a CPU (CR3 write / INVPCID); "
        "a few hundred ns plus refills later (Documentation/x86/tlb.txt says so only qualitatively; "
        "docs §9, [I]).",
    )
    tlb_refill_ns: int = Field(
        150, ge=0,
        description="Page walk paid by the first access after an entry was flushed (10 ns warm to "
        "~250 ns cold; docs §9, low confidence). Counted as workload time lost, not migration time.",
    )
    ipi_send_ns: int = Field(
        400, ge=0,
        description="Setting a shootdown round up on the initiator before the first IPI leaves: "
        "flush_tlb_info, the cpumask scan of on_each_cpu_cond_mask(), the call-function queue "
        "(a few hundred ns, [I]; docs §9.2).",
    )
    ipi_target_ns: int = Field(
        60, ge=0,
        description="Per target, on the initiator: queueing its call-function entry and writing "
        "the IPI to the APIC; the IPIs go out one after another, then the initiator waits for "
        "all (smp_call_function_many_cond, docs §5.3, §9.2; tens of ns, [I]).",
    )
    ipi_latency_ns: int = Field(
        450, ge=0,
        description="One way between the initiator and a CPU of its own socket: an IPI's delivery "
        "and interrupt entry, or the acknowledgement's cache line coming back (an IPI round trip "
        "is ~1 us on one socket, docs §9, low confidence).",
    )
    ipi_remote_latency_ns: int = Field(
        900, ge=0,
        description="The same across the socket interconnect: a cross-socket IPI round trip is "
        "about twice a local one (docs §9, low confidence); with ipi_send_ns, ipi_target_ns and "
        "ipi_handler_ns it makes pmbench-2s's serial round ~3.8 us, inside the seed's 2.9-4.2 us "
        "(docs §8.3, docs/calibration.md).",
    )
    ipi_handler_ns: int = Field(
        500, ge=0,
        description="Time a target CPU spends in the shootdown interrupt besides the flush itself "
        "(entry, flush_tlb_func bookkeeping, exit); the workload thread there is paused, and the "
        "initiator waits for the slowest target's handler (>= 1000 cycles, docs §9, [I]).",
    )
    fault_ns: int = Field(
        1000, ge=0,
        description="Minor fault that finds a migration entry and enters migration_entry_wait() "
        "(0.6-1 us median, docs §9).",
    )
    lock_wait_ns: int = Field(
        2000, ge=0,
        description="Sleeping in folio_lock() on a contended folio in a synchronous pass "
        "(a few us, [I]).",
    )
    writeback_wait_ns: int = Field(
        20000, ge=0,
        description="folio_wait_writeback() in MIGRATE_SYNC when a folio is under writeback "
        "(I/O bound; tens of us, [I]).",
    )

    tlbi_ns: int = Field(
        30, ge=0,
        description="arm64: issuing one broadcast TLBI VALE1IS, not waited for (tens of ns, "
        "[I], docs §10.1).",
    )
    dsb_ns: int = Field(
        1_000, ge=0,
        description="arm64: DSB ISH, waiting until every TLBI issued has completed on every CPU "
        "of one node (~1 us; 95% of ptep_clear_flush() time per Barry Song's profile on an "
        "8-core phone; [I], docs §10.1); broadcast_remote_ns adds the other node.",
    )
    broadcast_remote_ns: int = Field(
        900, ge=0,
        description="Added to a broadcast invalidation's wait (dsb_ns, tlbsync_ns): the "
        "invalidation reaches every CPU of the machine, so its completion comes back from the "
        "other node across the interconnect, one cross-node round trip beyond a local one: 2 x "
        "(ipi_remote_latency_ns - ipi_latency_ns) at the defaults ([I], derived from the IPI "
        "latencies, not fitted to a published figure; docs §10.1).",
    )
    invlpgb_ns: int = Field(
        50, ge=0,
        description="AMD INVLPGB: issuing one broadcast invalidation, not waited for (tens of ns, "
        "[I], docs §10.1).",
    )
    tlbsync_ns: int = Field(
        1_000, ge=0,
        description="AMD TLBSYNC: waiting for this CPU's INVLPGBs to complete on every CPU of "
        "one node (one broadcast plus TLBSYNC ~ 1 us; [I], docs §10.1); broadcast_remote_ns "
        "adds the other node.",
    )

    copy_setup_ns: int = Field(
        5_000, ge=0,
        description="A batched offloaded copy (migration.copy = mtcopy:N or dma:N), once per "
        "batch: queueing the work on N threads and waiting for them, or mapping the batch for "
        "DMA and taking its completion interrupt (a few us, [I], docs §9.1).",
    )

    def copy_ns(self, order: int) -> int:
        """folio_copy() of a folio of this order (copy is linear in pages)."""
        return self.copy_page_ns << order


def cost_sources() -> dict[str, tuple[int, str]]:
    """Each cost field with its default and its source, for documentation and `scenarios show`."""
    return {
        name: (int(field.default), field.description or "")
        for name, field in Costs.model_fields.items()
    }
