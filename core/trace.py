"""Engine events as ftrace text, in the kernel's own tracepoint formats (Linux 6.3).

Line layout as /sys/kernel/tracing/trace prints it::

    <comm>-<pid> [<cpu>] <flags> <seconds>.<micros>: <event>: <payload>

Tracepoints and their formats (include/trace/events/migrate.h, tlb.h, thp.h,
arch/x86/include/asm/trace/irq_vectors.h): ``mm_migrate_pages_start``, ``mm_migrate_pages``
(6.3's seven fields), ``set_migration_pte``/``remove_migration_pte`` per PTE,
``set_migration_pmd``/``remove_migration_pmd`` for a PMD-mapped THP, ``tlb_flush`` with 6.3's
lower-case reason strings, ``call_function_entry``/``_exit`` (vector 252) or the ``single``
variant (vector 251) for a one-target IPI. Steps with no tracepoint (a copy, a failed attempt) are
printed only on request (``printk=True``), as ``trace_printk()`` lines naming the kernel function.

Page-table values are schematic: they are derived from a made-up pfn per node so that lines are
stable and distinguishable, not bit-exact x86 encodings.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from core.events import Errno, Event, EventKind, WaitReason
from core.folios import PMD_ORDER
from core.scenario import Scenario
from core.tlb import CpuRole, Machine

MIGRATOR_COMM, MIGRATOR_PID = "migratepages", 4242
WORKLOAD_COMM, WORKLOAD_PID = "pmbench", 4100
USER_BASE = 0x7F3A_0000_0000  # where the workload's map starts
NODE_PFN_BASE = (0x10_0000, 0x90_0000)  # first pfn of each node's pool, schematic
CALL_FUNCTION_VECTOR = 252  # 0xfc
CALL_FUNCTION_SINGLE_VECTOR = 251  # 0xfb
MODE = "MIGRATE_SYNC"  # migratepages → migrate_pages(2) → MIGRATE_SYNC
REASON = "syscall_or_cpuset"  # MR_SYSCALL
TLB_REASON = {
    0: "flush on task switch",
    1: "remote shootdown",
    2: "local shootdown",
    3: "local mm shootdown",
    4: "remote ipi send",
}


def header(cpus: int) -> list[str]:
    """The comment block ftrace puts at the top of the `trace` file."""
    return [
        "# tracer: nop",
        "#",
        f"# simulated by migviz; CPUs: {cpus}",
        "#",
        "#                                _-----=> irqs-off/BH-disabled",
        "#                               / _----=> need-resched",
        "#                              | / _---=> hardirq/softirq",
        "#                              || / _--=> preempt-depth",
        "#                              ||| / _-=> migrate-disable",
        "#                              |||| /     delay",
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
        "#              | |         |   |||||     |         |",
    ]


def prefix(comm: str, pid: int, cpu: int, flags: str, time_ns: int) -> str:
    """``comm-pid [cpu] flags seconds.micros:`` as ftrace lays it out."""
    micros = time_ns // 1000
    return (f"{comm:>16}-{pid:<7} [{cpu:03d}] {flags} "
            f"{micros // 1_000_000:5d}.{micros % 1_000_000:06d}:")


class TraceFormatter:
    """Turns events into ftrace lines. It keeps no state: an event carries its folio's node,
    order, address and PTE index, so a line printed live is the line ``migviz trace`` prints."""

    def __init__(self, scenario: Scenario, *, printk: bool = False) -> None:
        self.printk = printk
        self.machine = Machine(scenario)
        self.handler_ns = scenario.costs.ipi_handler_ns

    def _task(self, cpu: int) -> tuple[str, int]:
        if cpu == self.machine.initiator:
            return MIGRATOR_COMM, MIGRATOR_PID
        if self.machine.roles[cpu] in (CpuRole.WORKLOAD, CpuRole.LAZY):
            return WORKLOAD_COMM, WORKLOAD_PID + cpu
        return "<idle>", 0

    def _line(self, event: Event, name: str, payload: str, *, time_ns: int | None = None,
              flags: str = ".....") -> tuple[int, str]:
        comm, pid = self._task(event.cpu)
        when = event.time_ns if time_ns is None else time_ns
        return when, f"{prefix(comm, pid, event.cpu, flags, when)} {name}: {payload}"

    @staticmethod
    def _pfn(event: Event) -> int:
        """A schematic pfn for the folio's first page on the node the event saw it on."""
        node = event.node
        return NODE_PFN_BASE[node % 2] + event.page + 0x40_0000 * (node // 2)

    def lines(self, event: Event) -> list[tuple[int, str]]:
        """Timestamped lines for one event (none for steps without a tracepoint)."""
        kind = event.kind
        if kind is EventKind.MIGRATE_START:
            return [self._line(event, "mm_migrate_pages_start", f"mode={MODE} reason={REASON}")]
        if kind is EventKind.MIGRATE_END:
            ok, failed, split = event.thp
            return [self._line(
                event, "mm_migrate_pages",
                f"nr_succeeded={event.pages} nr_failed={event.arg} nr_thp_succeeded={ok} "
                f"nr_thp_failed={failed} nr_thp_split={split} mode={MODE} reason={REASON}",
            )]
        if kind is EventKind.UNMAP:
            return self._unmap_lines(event)
        if kind in (EventKind.REMAP, EventKind.RESTORE):
            return self._remap_lines(event)
        if kind is EventKind.FLUSH_SEND:
            return [self._line(event, "tlb_flush", f"pages:{event.pages} reason:{TLB_REASON[4]} (4)")]
        if kind is EventKind.IPI_RECV:
            single = event.arg == 1
            entry = "call_function_single_entry" if single else "call_function_entry"
            exit_ = "call_function_single_exit" if single else "call_function_exit"
            vector = CALL_FUNCTION_SINGLE_VECTOR if single else CALL_FUNCTION_VECTOR
            return [
                self._line(event, entry, f"vector={vector}", flags="d.h1."),
                self._line(event, "tlb_flush", f"pages:{event.pages} reason:{TLB_REASON[1]} (1)",
                           flags="d.h1."),
                self._line(event, exit_, f"vector={vector}", flags="d.h1.",
                           time_ns=event.time_ns + self.handler_ns),
            ]
        if self.printk:
            function, message = _printk(event)
            return [self._line(event, function, message)]
        return []

    @staticmethod
    def _address(event: Event, index: int = 0) -> int:
        return USER_BASE + (event.page + index) * 4096

    def _unmap_lines(self, event: Event) -> list[tuple[int, str]]:
        pfn = self._pfn(event)
        if event.order == PMD_ORDER:
            return [self._line(event, "set_migration_pmd",
                               f"addr={self._address(event):x}, pmd={_migration_entry(pfn):x}")]
        return [
            self._line(event, "set_migration_pte",
                       f"addr={self._address(event, i):x}, pte={_migration_entry(pfn + i):x} "
                       f"order={event.order}")
            for i in range(event.pte, event.pte + event.pages)
        ]

    def _remap_lines(self, event: Event) -> list[tuple[int, str]]:
        pfn = self._pfn(event)
        if event.order == PMD_ORDER:
            return [self._line(event, "remove_migration_pmd",
                               f"addr={self._address(event):x}, pmd={_present(pfn, True):x}")]
        return [
            self._line(event, "remove_migration_pte",
                       f"addr={self._address(event, i):x}, pte={_present(pfn + i):x} "
                       f"order={event.order}")
            for i in range(event.pte, event.pte + event.pages)
        ]


def _printk(event: Event) -> tuple[str, str]:
    """A trace_printk()-style line for a step that has no tracepoint: (function, message)."""
    kind = event.kind
    folio = f"folio={event.folio}"
    if kind is EventKind.BATCH_START:
        return "migrate_pages", f"batch={event.batch} folios={event.arg} pages={event.pages}"
    if kind is EventKind.UNMAP_FAIL:
        return "migrate_folio_unmap", f"{folio} rc=-{Errno(event.arg).name}"
    if kind is EventKind.WAIT:
        what = "folio_lock" if event.arg == WaitReason.LOCK else "folio_wait_writeback"
        return what, folio
    if kind is EventKind.FLUSH_DONE:
        return "native_flush_tlb_multi", f"acked={event.arg} pages={event.pages}"
    if kind is EventKind.COPY:
        return "folio_copy", f"{folio} pages={event.pages}"
    if kind is EventKind.MOVE_FAIL:
        return "folio_migrate_mapping", f"{folio} rc=-EAGAIN"
    if kind is EventKind.SPLIT:
        return "try_split_folio", f"{folio} pieces={event.pages}"
    return "migrate_pages", f"event={kind.name.lower()} {folio}"


def _migration_entry(pfn: int) -> int:
    """A non-present swap-type PTE naming the pfn (inverted, like x86's L1TF-safe encoding)."""
    return 0xF7FF_E000_0000_0000 | ((~pfn & 0xFFF_FFFF) << 9)


def _present(pfn: int, huge: bool = False) -> int:
    """A present, writable, user, accessed, dirty, NX PTE (0x67; a PMD adds PSE 0x80)."""
    return 0x8000_0000_0000_0000 | (pfn << 12) | (0xE7 if huge else 0x67)


def format_event(event: Event, formatter: TraceFormatter) -> list[str]:
    """The ftrace lines of one event, in the order the event gives them."""
    return [line for _, line in formatter.lines(event)]


def lines_until(events: Iterable[Event], formatter: TraceFormatter, now_ns: int
                ) -> list[tuple[Event, str]]:
    """The lines of ``events`` stamped at or before ``now_ns``, in the order ``write_trace``
    puts them (by timestamp; ties in event order), each with the event it belongs to. A live
    log shows these: an IPI handler's exit line appears once the clock has reached it."""
    stamped = [
        (when, index, event, line)
        for index, (event, (when, line)) in enumerate(
            (event, item) for event in events for item in formatter.lines(event))
        if when <= now_ns
    ]
    stamped.sort(key=lambda item: (item[0], item[1]))
    return [(event, line) for _, _, event, line in stamped]


def write_trace(events: Iterable[Event], formatter: TraceFormatter) -> Iterator[str]:
    """ftrace lines for a stream of events, merged in timestamp order like per-CPU buffers are.

    Events arrive in time order; an IPI handler's exit line can lie a little in the future, so
    lines wait in a heap until no later event can come before them.
    """
    pending: list[tuple[int, int, str]] = []
    order = 0
    for event in events:
        while pending and pending[0][0] <= event.time_ns:
            yield heapq.heappop(pending)[2]
        for when, line in formatter.lines(event):
            heapq.heappush(pending, (when, order, line))
            order += 1
    while pending:
        yield heapq.heappop(pending)[2]
