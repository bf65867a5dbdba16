"""Engine events as ftrace text, in the kernel's own tracepoint formats (Linux 6.3 or 6.18).

Line layout as /sys/kernel/tracing/trace prints it (both versions; ``perf script`` prints another,
docs/kernel.md §7.1)::

    <comm>-<pid> [<cpu>] <flags> <seconds>.<micros>: <event>: <payload>

Tracepoints and their formats (include/trace/events/migrate.h, tlb.h, thp.h,
arch/x86/include/asm/trace/irq_vectors.h): ``mm_migrate_pages_start``, ``mm_migrate_pages``,
``set_migration_pte``/``remove_migration_pte`` per PTE, ``set_migration_pmd``/``remove_migration_pmd``
for a PMD-mapped THP, ``tlb_flush``, ``call_function_entry``/``_exit`` (vector 252) or the
``single`` variant (vector 251) for a one-target IPI. What differs between the kernel versions
migviz can print is one table per version (``KERNELS``): the ``tlb_flush`` reason strings and the
fields of ``mm_migrate_pages`` (docs/kernel.md §7.2, §7.3). Steps with no tracepoint (a copy, a
failed attempt) are printed only on request (``printk=True``), as ``trace_printk()`` lines naming
the kernel function.

Page-table values are schematic: they are derived from a made-up pfn per node so that lines are
stable and distinguishable, not bit-exact x86 encodings.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from core.events import Errno, Event, EventKind, WaitReason
from core.flush import broadcasts
from core.folios import PMD_ORDER
from core.scenario import Arch, Caller, Scenario
from core.tlb import CpuRole, Machine

MIGRATOR_COMM, MIGRATOR_PID = "migratepages", 4242
WORKLOAD_COMM, WORKLOAD_PID = "pmbench", 4100
USER_BASE = 0x7F3A_0000_0000  # where the workload's map starts
NODE_PFN_BASE = (0x10_0000, 0x90_0000)  # first pfn of each node's pool, schematic
CALL_FUNCTION_VECTOR = 252  # 0xfc
CALL_FUNCTION_SINGLE_VECTOR = 251  # 0xfb
MODE = "MIGRATE_SYNC"  # migratepages → migrate_pages(2) → MIGRATE_SYNC
REASON = "syscall_or_cpuset"  # MR_SYSCALL


class TlbReason(IntEnum):
    """enum tlb_flush_reason (include/linux/mm_types.h): the number tlb_flush prints in (%d)."""

    FLUSH_ON_TASK_SWITCH = 0
    REMOTE_SHOOTDOWN = 1  # flush_tlb_func() in a target's IPI handler
    LOCAL_SHOOTDOWN = 2  # flush_tlb_func() on the initiator for a batch flush (mm == NULL)
    LOCAL_MM_SHOOTDOWN = 3  # flush_tlb_func() on the initiator for flush_tlb_mm_range()
    REMOTE_SEND_IPI = 4  # native_flush_tlb_multi(), before the IPIs go out
    REMOTE_WRONG_CPU = 5  # newer kernels only: an IPI to a CPU that left mm_cpumask


@dataclass(frozen=True)
class KernelFormats:
    """The tracepoint text of one kernel version, where it differs between versions.

    ``tlb_reasons[n]`` is the string __print_symbolic() gives reason n in tlb_flush;
    ``migrate_pages`` is the payload of mm_migrate_pages as a str.format() template with the
    fields ``succeeded failed thp_succeeded thp_failed thp_split split mode reason``.
    """

    version: str
    tlb_reasons: tuple[str, ...]
    migrate_pages: str

    def reason(self, reason: int) -> str:
        """``<string> (<n>)`` as tlb_flush prints a reason. A number the version's table lacks
        prints in hex, as __print_symbolic() does (kernels with 2815a56e4b72 but not
        2d130eeeaff6 printed reason 5 as ``0x5 (5)``)."""
        text = self.tlb_reasons[reason] if 0 <= reason < len(self.tlb_reasons) else f"0x{reason:x}"
        return f"{text} ({reason})"


_MIGRATE_PAGES_HEAD = ("nr_succeeded={succeeded} nr_failed={failed} nr_thp_succeeded={thp_succeeded} "
                       "nr_thp_failed={thp_failed} nr_thp_split={thp_split} ")
_MIGRATE_PAGES_TAIL = "mode={mode} reason={reason}"

# Everything else migviz prints reads the same in both versions, so it is not in the table:
# mm_migrate_pages_start (`mode=%s reason=%s`), set/remove_migration_pte (`addr=%lx, pte=%lx
# order=%d`; the 6.18 sample's lines have that grammar), set/remove_migration_pmd
# (include/trace/events/thp.h, `addr=%lx, pmd=%lx`), call_function*_entry/_exit (`vector=%d`,
# vectors 0xfc/0xfb in arch/x86/include/asm/irq_vectors.h; the sample holds no irq_vectors
# line), and the tracefs line layout and header.
KERNELS: dict[str, KernelFormats] = {
    # include/trace/events/tlb.h and migrate.h as of 6.3 (docs/kernel.md §7.2, §7.3).
    "6.3": KernelFormats(
        version="6.3",
        tlb_reasons=("flush on task switch", "remote shootdown", "local shootdown",
                     "local mm shootdown", "remote ipi send"),
        migrate_pages=_MIGRATE_PAGES_HEAD + _MIGRATE_PAGES_TAIL,
    ),
    # As tests/data/compaction-6.18.perf.txt shows them. The reason strings: tip commit
    # 2d130eeeaff6 "x86/mm/tlb/trace: Export the TLB_REMOTE_WRONG_CPU enum in
    # <trace/events/tlb.h>" (Dec 2025; a Fixes: of 2815a56e4b72, which added reason 5) named
    # reason 5 and capitalised "MM" and "IPI"; the sample's 6.18 kernel prints them, so it
    # carries that fix.
    # nr_split=: Zi Yan, "mm/migrate: add nr_split to trace_mm_migrate_pages stats."
    # (20231017163129.2025214-2-zi.yan@sent.com), after 6.3.
    "6.18": KernelFormats(
        version="6.18",
        tlb_reasons=("flush on task switch", "remote shootdown", "local shootdown",
                     "local MM shootdown", "remote IPI send", "remote wrong CPU"),
        migrate_pages=_MIGRATE_PAGES_HEAD + "nr_split={split} " + _MIGRATE_PAGES_TAIL,
    ),
}
DEFAULT_KERNEL = "6.3"  # the kernel migviz models (docs/kernel.md §4)


def header(cpus: int, kernel: str = DEFAULT_KERNEL) -> list[str]:
    """The comment block ftrace puts at the top of the `trace` file."""
    return [
        "# tracer: nop",
        "#",
        f"# simulated by migviz; CPUs: {cpus}; tracepoint formats of Linux {kernel}",
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

    def __init__(self, scenario: Scenario, *, printk: bool = False,
                 kernel: str = DEFAULT_KERNEL) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel {kernel!r}: migviz prints the formats of {', '.join(KERNELS)}")
        self.printk = printk
        self.formats = KERNELS[kernel]
        self.machine = Machine(scenario)
        self.handler_ns = scenario.costs.ipi_handler_ns
        self.arch = scenario.topology.arch
        self.broadcast = broadcasts(self.machine, self.arch)
        # migratepages calls migrate_pages(2) (MIGRATE_SYNC, MR_SYSCALL); a NUMA hinting fault
        # calls migrate_misplaced_folio() (MIGRATE_ASYNC, MR_NUMA_MISPLACED).
        numa = scenario.migration.caller is Caller.NUMA_BALANCING
        self.mode, self.reason = ("MIGRATE_ASYNC", "numa_misplaced") if numa else (MODE, REASON)

    def _task(self, cpu: int) -> tuple[str, int]:
        if cpu == self.machine.initiator and not self.machine.numa:
            return MIGRATOR_COMM, MIGRATOR_PID
        if self.machine.roles[cpu] in (CpuRole.WORKLOAD, CpuRole.LAZY):
            return WORKLOAD_COMM, WORKLOAD_PID + cpu
        return "<idle>", 0

    def _line(self, event: Event, name: str, payload: str, *, time_ns: int | None = None,
              flags: str = ".....", task: tuple[str, int] | None = None) -> tuple[int, str]:
        comm, pid = self._task(event.cpu) if task is None else task
        when = event.time_ns if time_ns is None else time_ns
        return when, f"{prefix(comm, pid, event.cpu, flags, when)} {name}: {payload}"

    def _tlb_flush(self, pages: int, reason: int) -> str:
        """tlb_flush's payload, ``pages:%ld reason:%s (%d)``: pages signed, so a full flush is -1."""
        return f"pages:{pages} reason:{self.formats.reason(reason)}"

    @staticmethod
    def _pfn(event: Event) -> int:
        """A schematic pfn for the folio's first page on the node the event saw it on."""
        node = event.node
        return NODE_PFN_BASE[node % 2] + event.page + 0x40_0000 * (node // 2)

    def lines(self, event: Event) -> list[tuple[int, str]]:
        """Timestamped lines for one event (none for steps without a tracepoint)."""
        kind = event.kind
        if kind is EventKind.MIGRATE_START:
            return [self._line(event, "mm_migrate_pages_start",
                               f"mode={self.mode} reason={self.reason}")]
        if kind is EventKind.MIGRATE_END:
            ok, failed, thp_split = event.thp
            # 6.18's nr_split counts every large folio split, of any order; only PMD-sized THPs
            # split in migviz (its large folios are THPs), so nr_split = nr_thp_split.
            return [self._line(event, "mm_migrate_pages", self.formats.migrate_pages.format(
                succeeded=event.pages, failed=event.arg, thp_succeeded=ok, thp_failed=failed,
                thp_split=thp_split, split=thp_split, mode=self.mode, reason=self.reason))]
        if kind is EventKind.UNMAP:
            return self._unmap_lines(event)
        if kind in (EventKind.REMAP, EventKind.RESTORE):
            return self._remap_lines(event)
        if kind is EventKind.FLUSH_SEND and not self.broadcast:
            return [self._line(event, "tlb_flush", self._tlb_flush(event.pages, TlbReason.REMOTE_SEND_IPI))]
        if kind in (EventKind.FLUSH_SEND, EventKind.FLUSH_DONE) and self.broadcast:
            # A broadcast flush has no tracepoint: with --printk, what the CPU executes.
            if not self.printk:
                return []
            arm64 = self.arch is Arch.ARM64_TLBI
            if kind is EventKind.FLUSH_SEND:
                what = ("dsb ish" if arm64 else "tlbsync") + (
                    ": waits for the batch's broadcasts" if event.pages == -1 else
                    f": {'tlbi vale1is' if arm64 else 'invlpgb'} pages={event.pages}, then waits")
                function = "arch_tlbbatch_flush" if event.pages == -1 else "flush_tlb_page"
                return [self._line(event, function, what)]
            return [self._line(event, "tlb_sync_done", f"pages={event.pages}")]
        if kind is EventKind.LOCAL_FLUSH:
            # The initiating task runs flush_tlb_func() on its own CPU: interrupts are off
            # (flush_tlb_func() requires it; its callers use local_irq_disable()) and preemption
            # is off (get_cpu()), so `d..1.`. ``arg`` is reason 2 or 3.
            # Under NUMA balancing the initiating task is a thread of the workload.
            comm_pid = None if self.machine.numa else (MIGRATOR_COMM, MIGRATOR_PID)
            return [self._line(event, "tlb_flush", self._tlb_flush(event.pages, event.arg),
                               flags="d..1.", task=comm_pid)]
        if kind is EventKind.IPI_RECV:
            single = event.arg == 1
            entry = "call_function_single_entry" if single else "call_function_entry"
            exit_ = "call_function_single_exit" if single else "call_function_exit"
            vector = CALL_FUNCTION_SINGLE_VECTOR if single else CALL_FUNCTION_VECTOR
            return [
                self._line(event, entry, f"vector={vector}", flags="d.h1."),
                self._line(event, "tlb_flush",
                           self._tlb_flush(event.pages, TlbReason.REMOTE_SHOOTDOWN), flags="d.h1."),
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
    if kind is EventKind.NUMA_SCAN:
        return "change_prot_numa", f"pages={event.arg} updated={event.pages}"
    if kind is EventKind.NUMA_FAULT:
        return "do_numa_page", f"{folio} local={event.arg}"
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
