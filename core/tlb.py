"""Who gets a TLB-shootdown IPI, in what order, and what a round costs (x86 semantics).

Mirrors arch/x86/mm/tlb.c as of Linux 6.2/6.3: ``native_flush_tlb_multi()`` sends one round to
the CPUs of ``mm_cpumask(mm)`` other than the sender, skipping lazy-TLB CPUs
(``tlb_is_not_lazy``), and waits for every target to acknowledge. A PTE flush makes each target
INVLPG one page; the batched flush (``arch_tlbbatch_flush``) makes each target flush the whole
process (``TLB_FLUSH_ALL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from core.costs import Costs
from core.scenario import Scenario


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
        # thread there waits for the CPU. So the initiator is never in the mask.
        roles[self.initiator] = CpuRole.INITIATOR
        self.roles = tuple(roles)
        self.mm_cpumask = tuple(c for c, r in enumerate(roles) if r in (CpuRole.WORKLOAD, CpuRole.LAZY))
        self.targets = tuple(c for c, r in enumerate(roles) if r is CpuRole.WORKLOAD)
        # CPUs whose workload thread runs and touches memory.
        self.running_threads = self.targets
        self.costs = costs
        self.page_round = self._plan(costs.invlpg_ns, costs)
        self.full_round = self._plan(costs.full_flush_ns, costs)
        self.idle_round = self._plan(0, costs)

    def round_plan(self, traced: list[int]) -> RoundPlan:
        """The timing of a round whose targets flush as ``traced`` says (pages per target: 1
        partial, -1 full, 0 nothing): the initiator waits for the slowest flush."""
        if -1 in traced:
            return self.full_round
        if 1 in traced:
            return self.page_round
        return self.idle_round

    def _plan(self, flush_work_ns: int, costs: Costs) -> RoundPlan:
        home = self.node_of_cpu[self.initiator]
        offsets = []
        spent = costs.ipi_base_ns // 2
        for cpu in self.targets:
            spent += costs.round_target_ns(self.node_of_cpu[cpu] == home)
            offsets.append(spent)
        total = costs.ipi_base_ns + (spent - costs.ipi_base_ns // 2) + flush_work_ns
        return RoundPlan(self.targets, tuple(offsets), total,
                         np.array(self.targets, dtype=np.int64), np.array(offsets, dtype=np.int64))

    @property
    def has_remote_cpus(self) -> bool:
        """should_defer_flush(): mm_cpumask holds a CPU other than the current one."""
        return bool(self.mm_cpumask)
