"""Who gets a TLB-shootdown IPI, in what order, and what a round costs (x86 semantics).

Mirrors arch/x86/mm/tlb.c as of Linux 6.2/6.3: ``native_flush_tlb_multi()`` sends one round to
the CPUs of ``mm_cpumask(mm)`` other than the sender, skipping lazy-TLB CPUs
(``tlb_is_not_lazy``), and waits for every target to acknowledge. What each target then does
(one INVLPG, a full flush or nothing) follows its TLB generation (``flush_tlb_func``, in
core/kernel.py); how long the round takes follows x86's send-all-then-wait shape (round_plan).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from core.scenario import Caller, Scenario


class CpuRole(IntEnum):
    """What a CPU is in the scenario."""

    IDLE = 0  # runs nothing of interest; not in the workload's mm_cpumask
    WORKLOAD = 1  # runs a workload thread: in mm_cpumask, gets shootdown IPIs
    LAZY = 2  # in mm_cpumask but in lazy-TLB mode: skipped by IPIs, catches up at switch
    INITIATOR = 3  # runs the migrating task


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """Timing of one shootdown round: when each target handles its IPI, when all have acked."""

    targets: tuple[int, ...]
    offsets_ns: tuple[int, ...]  # handler entry on each target, from the send
    total_ns: int  # send to last acknowledgement: the initiator's wait
    target_array: npt.NDArray[np.int64]
    offset_array: npt.NDArray[np.int64]
    traced: tuple[int, ...]  # what each target's flush_tlb_func() does, in handling order
    traced_array: npt.NDArray[np.int64]
    all_partial: bool  # every target invalidates just the requested entry (traced 1)
    target_mask: npt.NDArray[np.int64]  # per CPU of the machine: 1 if a target (they are distinct)


class Machine:
    """The CPUs of a scenario, the workload's mm_cpumask and the cost of shootdown rounds."""

    def __init__(self, scenario: Scenario) -> None:
        topo = scenario.topology
        work = scenario.workload
        costs = scenario.costs
        self.cpus = topo.cpus
        self.nodes = topo.nodes
        self.node_of_cpu = tuple(topo.node_of_cpu(c) for c in range(topo.cpus))
        self.initiator = scenario.migration.initiator_cpu
        lazy = set(work.lazy_cpus)
        roles = [CpuRole.IDLE] * topo.cpus
        for cpu in work.thread_cpus:
            roles[cpu] = CpuRole.LAZY if cpu in lazy else CpuRole.WORKLOAD
        # The migrating task runs its own mm on the initiator CPU: on x86 up to 6.12,
        # switch_mm_irqs_off() clears that CPU from the workload's mm_cpumask, and a workload
        # thread there waits for the CPU. So the initiator is never in the mask. Under NUMA
        # balancing there is no such task: the threads migrate, from inside the mask.
        self.numa = scenario.migration.caller is Caller.NUMA_BALANCING
        if not self.numa:
            roles[self.initiator] = CpuRole.INITIATOR
        self.roles = tuple(roles)
        self.mm_cpumask = tuple(c for c, r in enumerate(roles) if r in (CpuRole.WORKLOAD, CpuRole.LAZY))
        self.targets = tuple(c for c, r in enumerate(roles) if r is CpuRole.WORKLOAD)
        # CPUs whose workload thread runs and touches memory.
        self.running_threads = self.targets
        self.costs = costs
        self._orders: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self.handling_order, self._entry_ns = self._order(self.initiator)
        self._plans: dict[tuple[int, tuple[int, ...]], RoundPlan] = {}

    def targets_from(self, sender: int) -> tuple[int, ...]:
        """The CPUs a round from ``sender`` interrupts: the non-lazy CPUs of the mask but it."""
        return tuple(cpu for cpu in self.targets if cpu != sender)

    def _order(self, sender: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The order the targets of a round from ``sender`` handle their IPIs in (sends go out
        in cpumask order, one after another; a target on the other socket is reached later),
        and when, from the send."""
        cached = self._orders.get(sender)
        if cached is not None:
            return cached
        costs = self.costs
        home = self.node_of_cpu[sender]
        entries = []
        for index, cpu in enumerate(self.targets_from(sender)):
            sent = costs.ipi_send_ns + (index + 1) * costs.ipi_target_ns
            entries.append((sent + self.latency_ns(cpu, home), cpu))
        entries.sort()
        order = (tuple(cpu for _, cpu in entries), tuple(entry for entry, _ in entries))
        self._orders[sender] = order
        return order

    def latency_ns(self, cpu: int, home: int | None = None) -> int:
        """One-way latency between the sender (the initiator unless ``home`` names another
        node) and a CPU: an IPI's delivery, or the acknowledgement's way back (dearer across the
        socket interconnect)."""
        home = self.node_of_cpu[self.initiator] if home is None else home
        costs = self.costs
        return costs.ipi_latency_ns if self.node_of_cpu[cpu] == home else \
            costs.ipi_remote_latency_ns

    def flush_work_ns(self, traced: int) -> int:
        """What a target's flush_tlb_func() does, by what it traces: n > 0 that many INVLPGs
        (one per page, or per PMD), -1 a full flush, 0 nothing."""
        if traced == -1:
            return self.costs.full_flush_ns
        return self.costs.invlpg_ns * max(traced, 0)

    def round_plan(self, traced: dict[int, int], sender: int | None = None) -> RoundPlan:
        """The timing of a round as x86 runs it (smp_call_function_many_cond with wait): the
        initiator sets the round up, sends one IPI per target in turn, then waits until every
        target has handled it and the acknowledgement has come back. ``traced`` gives what each
        target's flush_tlb_func() does (pages as traced: 1, -1, 0); the slowest target, its
        distance and its flush decide the wait. With no target left (all lazy), the round is
        only the mask scan. ``sender``: another CPU than the initiator (NUMA balancing)."""
        sender = self.initiator if sender is None else sender
        handling, entry_ns = self._order(sender)
        key = (sender, tuple(map(traced.__getitem__, handling)))
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        costs = self.costs
        home = self.node_of_cpu[sender]
        if not handling:
            total = costs.ipi_target_ns
        else:
            total = max(
                entry + costs.ipi_handler_ns + self.flush_work_ns(traced[cpu])
                + self.latency_ns(cpu, home)
                for entry, cpu in zip(entry_ns, handling, strict=True)
            )
        values = key[1]
        plan = RoundPlan(handling, entry_ns, total, np.array(handling, dtype=np.int64),
                         np.array(entry_ns, dtype=np.int64), values,
                         np.array(values, dtype=np.int64), all(v == 1 for v in values),
                         np.bincount(np.array(handling, dtype=np.int64), minlength=self.cpus))
        self._plans[key] = plan
        return plan

    @property
    def full_round(self) -> RoundPlan:
        """A batch's round: every target flushes its whole TLB."""
        return self.round_plan(dict.fromkeys(self.targets, -1))

    @property
    def has_remote_cpus(self) -> bool:
        """should_defer_flush(): mm_cpumask holds a CPU other than the current one."""
        return bool(self.mm_cpumask)
