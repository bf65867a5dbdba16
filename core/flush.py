"""Flush mechanisms: how the migrating task makes other CPUs forget a page it unmapped.

The task calls its mechanism (a :class:`FlushModel`) at the three points where Linux calls the
architecture (mm/rmap.c, mm/migrate.c):

- ``should_defer()``: may ``try_to_migrate_one()`` defer the flush (``should_defer_flush()``,
  ``arch_tlbbatch_should_defer()``)?
- ``add_pending(folio, ptes)``: a PTE-mapped folio was unmapped with the flush deferred
  (``set_tlb_ubc_flush_pending()`` → ``arch_tlbbatch_add_pending()``);
- ``flush_now(folio, pages, kind)``: one PTE or PMD flushed as it is cleared
  (``ptep_clear_flush()``, ``pmdp_invalidate()``);
- ``flush_batch(folios)``: the batch's deferred flush (``try_to_unmap_flush()`` →
  ``arch_tlbbatch_flush()``).

Each mechanism says what is sent, to whom, at what cost, what each CPU's TLB then holds (in the
timeline the workload reads), which counters move and which events appear. A round is always a
FLUSH_SEND ... FLUSH_DONE pair; only a mechanism that interrupts CPUs makes IPI_RECV events.

- :class:`X86Ipi` — x86 up to 6.14: IPIs to the CPUs of ``mm_cpumask``, TLB generations
  (``flush_tlb_func()``), one full flush per batch (docs/kernel.md §5).
- :class:`Arm64Tlbi` — arm64: broadcast ``TLBI VALE1IS`` needs no IPI, but the initiator waits
  for completion with ``DSB ISH``. Serially every PTE costs a TLBI and a DSB
  (``flush_tlb_page()``); batched (Linux 6.5, ``43b3dfdd0455``) each deferred PTE issues its TLBI
  without waiting (``__flush_tlb_page_nosync()``) and the batch's flush is one DSB.
- :class:`X86Invlpgb` — AMD INVLPGB (Linux 6.15, Rik van Riel): a process active on three or
  more CPUs gets a global ASID and its flushes are broadcast (``INVLPGB``, waited for with
  ``TLBSYNC``) instead of IPIs; below that, IPIs as before. Batched, each deferred PTE issues an
  INVLPGB without waiting and ``arch_tlbbatch_flush()`` ends with one ``TLBSYNC``.

A broadcast invalidates the page on every CPU at once and interrupts none: no handler runs, no
/proc/interrupts TLB row moves, no ``nr_tlb_remote_flush`` (x86 counts only the IPI path; arm64
has no such counter) and no ``tlb_flush`` tracepoint (arm64 has none; x86's broadcast path does
not trace one [I]). It is counted in ``tlbi_broadcasts`` (invalidations issued) and
``sync_waits`` (DSB / TLBSYNC waits).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from core.events import IPIS, Event, EventKind, Mechanism, Phase, RoundKind
from core.scenario import Arch
from core.stats import Spend
from core.timeline import ALSO, FULL

if TYPE_CHECKING:
    from core.kernel import TaskBase
    from core.tlb import Machine

INVLPGB_MIN_CPUS = 3  # consider_global_asid(): a global ASID once active on 3 or more CPUs


class FlushModel(ABC):
    """A TLB-shootdown mechanism, as the migrating task uses it."""

    arch: Arch
    mechanism: Mechanism  # how its rounds are named and drawn (IPI arrows only if interrupts)

    @property
    def interrupts(self) -> bool:
        """Targets run a handler: IPIs."""
        return self.mechanism.interrupts

    def __init__(self, task: TaskBase) -> None:
        self.task = task

    @abstractmethod
    def should_defer(self) -> bool:
        """May the unmap of a PTE-mapped folio defer its flush to the batch?"""

    def needs_flush(self) -> bool:
        """Must an immediate unmap flush anything beyond the local TLB?"""
        return self.task.machine.has_remote_cpus

    @abstractmethod
    def add_pending(self, folio: int, ptes: int) -> None:
        """The folio's ``ptes`` PTEs were cleared with the flush deferred."""

    @abstractmethod
    def flush_now(self, folio: int, send_pages: int, kind: RoundKind) -> Iterator[Event]:
        """Flush one PTE (or one PMD: ``send_pages`` 512) as it is cleared."""

    @abstractmethod
    def flush_batch(self, folios: list[int]) -> Iterator[Event]:
        """The batch's deferred flush, covering ``folios``."""


class X86Ipi(FlushModel):
    """IPIs and TLB generations, as arch/x86/mm/tlb.c does them up to 6.14."""

    arch = Arch.X86_IPI
    mechanism = IPIS

    def should_defer(self) -> bool:
        # should_defer_flush(): only when mm_cpumask holds a CPU other than this one.
        return self.task.machine.has_remote_cpus

    def add_pending(self, folio: int, ptes: int) -> None:
        # arch_tlbbatch_add_mm() for every PTE cleared: inc_mm_tlb_gen(). The CPUs of the mask
        # fall behind by one generation per deferred PTE.
        self.task.s.mm_tlb_gen += ptes

    def flush_now(self, folio: int, send_pages: int, kind: RoundKind) -> Iterator[Event]:
        s = self.task.s
        # flush_tlb_mm_range(): a one-page (one-PMD) range, the next generation.
        s.mm_tlb_gen += 1
        yield from self.task.flush_round(folio, send_pages, [folio], kind,
                                         request_gen=s.mm_tlb_gen)

    def flush_batch(self, folios: list[int]) -> Iterator[Event]:
        # arch_tlbbatch_flush(): a full-flush request (new_tlb_gen invalid, end =
        # TLB_FLUSH_ALL) to the CPUs the batch's PTEs were mapped on.
        yield from self.task.flush_round(FULL, -1, folios, RoundKind.BATCH, request_gen=None)


class _Broadcast(FlushModel):
    """Hardware broadcast invalidation: an instruction per page that reaches every CPU, and a
    wait for completion. No IPIs."""

    issue_cost = "tlbi_ns"  # Costs field: one broadcast invalidation, issued
    sync_cost = "dsb_ns"  # Costs field: waiting until every invalidation issued has completed

    def _issue(self, folio: int, entries: int) -> None:
        """Issue ``entries`` broadcast invalidations of the folio's pages: from now on no CPU's
        TLB holds them (the workload's timeline learns it, for every CPU running a thread)."""
        task = self.task
        s = task.s
        task._spend(Spend.FLUSH, getattr(task.costs, self.issue_cost) * entries)
        task.counters.tlbi_broadcasts += entries
        cpus = np.asarray(task.machine.running_threads, dtype=np.int64)
        if cpus.size:
            # ALSO records: invalidations that are not deliveries (no handler runs).
            task.timeline.insert_flushes(cpus, np.full(cpus.size, ALSO - folio, dtype=np.int64),
                                         np.full(cpus.size, s.now, dtype=np.int64))

    def _wait(self, folio: int, send_pages: int, covered: list[int],
              kind: RoundKind) -> Iterator[Event]:
        """The sync (DSB ISH, TLBSYNC) as a round with no targets: sent, waited for, done."""
        task = self.task
        s = task.s
        counters = task.counters
        previous = s.phase
        s.phase = Phase.FLUSH
        counters.rounds_by_kind[kind] += 1
        counters.sync_waits += 1
        s.round_kind, s.round_pages = kind, send_pages
        yield task._event(EventKind.FLUSH_SEND, pages=send_pages, folio=folio, round_kind=kind)
        task._spend(Spend.FLUSH, self.sync_ns())
        table = task.folios
        table.flushed(covered)
        s.round_kind = RoundKind.NONE
        yield task._event(EventKind.FLUSH_DONE, folio=folio, pages=send_pages, round_kind=kind)
        s.phase = previous

    def sync_ns(self) -> int:
        """The wait for completion: every CPU of the machine (the inner-shareable domain, every
        core for INVLPGB) acknowledges, those of the other node(s) across the interconnect."""
        costs = self.task.costs
        return int(getattr(costs, self.sync_cost)) + costs.broadcast_remote_ns

    def should_defer(self) -> bool:
        return True

    def add_pending(self, folio: int, ptes: int) -> None:
        # arch_tlbbatch_add_pending(): the invalidation goes out now, unwaited for.
        self._issue(folio, ptes)

    def flush_now(self, folio: int, send_pages: int, kind: RoundKind) -> Iterator[Event]:
        self._issue(folio, 1)
        yield from self._wait(folio, send_pages, [folio], kind)

    def flush_batch(self, folios: list[int]) -> Iterator[Event]:
        yield from self._wait(FULL, -1, folios, RoundKind.BATCH)


class Arm64Tlbi(_Broadcast):
    """arm64: TLBI VALE1IS per page, DSB ISH to wait (arch/arm64/include/asm/tlbflush.h).
    arch_tlbbatch_should_defer() returns true on current arm64 (6.5 had a CPU-count gate and a
    sysctl, docs/kernel.md §10.1): the base's should_defer()."""

    arch = Arch.ARM64_TLBI
    mechanism = Mechanism("arm64 broadcast TLBI", False,
                          "TLB shootdowns: broadcast TLBI + DSB, no IPIs", "TLBI VALE1IS",
                          "DSB ISH", "flush_tlb_page", "arch_tlbbatch_flush", "dsb(ish)")

    def needs_flush(self) -> bool:
        # flush_tlb_page() broadcasts whatever the mask holds: the TLBI and its DSB are paid.
        return True


class X86Invlpgb(_Broadcast):
    """AMD INVLPGB for a process with a global ASID (flush_model() gives X86Ipi to one on
    fewer than 3 CPUs): INVLPGB per page, TLBSYNC to wait."""

    arch = Arch.X86_INVLPGB
    mechanism = Mechanism("AMD INVLPGB", False,
                          "TLB shootdowns: broadcast INVLPGB + TLBSYNC, no IPIs", "INVLPGB",
                          "TLBSYNC", "flush_tlb_mm_range", "arch_tlbbatch_flush", "tlbsync")
    issue_cost = "invlpgb_ns"
    sync_cost = "tlbsync_ns"

    def should_defer(self) -> bool:
        return self.task.machine.has_remote_cpus  # should_defer_flush(), as on x86

    def needs_flush(self) -> bool:
        return self.task.machine.has_remote_cpus


def broadcasts(machine: Machine, arch: Arch) -> bool:
    """Whether a mechanism flushes by broadcast on this machine (no IPIs, no tlb_flush lines).
    INVLPGB: only for a global ASID, which mm_active_cpus_exceeds(mm, 3) gives [I: active = in
    mm_cpumask; the migrating task's own CPU is not in it]."""
    if arch is Arch.X86_INVLPGB:
        return len(machine.mm_cpumask) >= INVLPGB_MIN_CPUS
    return arch is Arch.ARM64_TLBI


MECHANISMS: dict[Arch, type[FlushModel]] = {
    Arch.X86_IPI: X86Ipi,
    Arch.ARM64_TLBI: Arm64Tlbi,
    Arch.X86_INVLPGB: X86Invlpgb,
}


def model_class(machine: Machine, arch: Arch) -> type[FlushModel]:
    """The mechanism a scenario's flushes take. INVLPGB without a global ASID is the IPI path."""
    if arch is Arch.X86_INVLPGB and not broadcasts(machine, arch):
        return X86Ipi
    return MECHANISMS[arch]


def flush_model(task: TaskBase) -> FlushModel:
    """The mechanism of the task's scenario, for the task."""
    return model_class(task.machine, task.scenario.topology.arch)(task)
