"""Real kernel traces: read them, and rebuild the migrations and shootdowns they record.

A trace is text in one of four layouts, plain or gzip:

- ``perf script``: ``comm pid [cpu] seconds: subsystem:event: payload``;
- tracefs ``trace`` / ``trace_pipe``: ``comm-pid [cpu] flags seconds: event: payload``;
- ``trace-cmd report``: as tracefs, the flags column optional, a ``cpus=N`` line first; with
  ``-R`` the raw fields (struct names, enums as numbers: mapped to the format's), with ``-l``
  the latency layout (the CPU number runs into the flags, no brackets);
- ``migviz trace``: tracefs layout, ``# ... CPUs: N`` in its header, and with ``--printk``
  ``trace_printk()`` lines for the steps that have no tracepoint (read, and shown, not counted).

The events read are the ones ``migviz record`` enables: ``migrate:mm_migrate_pages_start``,
``migrate:mm_migrate_pages``, ``migrate:set_migration_pte`` / ``remove_migration_pte`` (and the
``_pmd`` pair of a PMD-mapped THP), ``tlb:tlb_flush``, ``irq_vectors:call_function_entry`` and
``call_function_single_entry``. The tracepoint strings of Linux 6.3 and of newer kernels both
parse: ``mm_migrate_pages`` with or without ``nr_split=``, ``tlb_flush`` reasons in either
spelling (the number in parentheses is what counts). Any other tracepoint is kept for the log and
counted as ``other_events``; a line that is not a tracepoint line at all is counted as unparsed,
never fatal. A file in which no line is a tracepoint line is not a trace: one clear error.

What the rebuild knows, it knows from the lines alone:

- A ``migrate_pages()`` call is a ``mm_migrate_pages_start`` and the next ``mm_migrate_pages`` of
  the same task (pid); its unmaps, remaps and shootdown sends are the lines that task logs in
  between. Compaction runs on several CPUs at once, so calls are told apart by task.
- A shootdown is a ``tlb_flush`` with reason 4 (``remote ipi send``) on the sender; each receiver
  logs reason 1 (``remote shootdown``), or 5 (``remote wrong CPU``) on newer kernels, after it.
  A receipt belongs to the latest send before it, from another CPU, that this CPU has not yet
  answered; a ``call_function*_entry`` on the receiver just before it is its IPI vector.
- A page is known by its address. Within one call an address is unmapped once and restored once;
  should two processes of one call share an address, their lines pair in order.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from core.errors import InputError
from core.folios import PMD_ORDER

REMOTE_SEND = 4  # TLB_REMOTE_SEND_IPI
REMOTE_SHOOTDOWN = 1  # TLB_REMOTE_SHOOTDOWN
REMOTE_WRONG_CPU = 5  # TLB_REMOTE_WRONG_CPU (newer kernels)
LOCAL_SHOOTDOWN = 2
LOCAL_MM_SHOOTDOWN = 3
TASK_SWITCH = 0

UNMAP_EVENTS = ("set_migration_pte", "set_migration_pmd")
REMAP_EVENTS = ("remove_migration_pte", "remove_migration_pmd")
VECTOR_EVENTS = ("call_function_entry", "call_function_single_entry")
KNOWN_EVENTS = frozenset(("mm_migrate_pages_start", "mm_migrate_pages", "tlb_flush",
                          *UNMAP_EVENTS, *REMAP_EVENTS, *VECTOR_EVENTS))

# Every layout has the CPU as `[ddd]` after the task and before the time, so a line is cut there.
# Before it: `comm-pid` (tracefs, trace-cmd; the comm may hold spaces and dashes, the pid is the
# digits after the last dash), optionally followed by `(tgid)`; or `comm pid` / `comm pid/tid`
# (perf script). After it: optional flags (tracefs), the time, perf's optional period, the event
# (`subsystem:event` in perf script) and the payload.
_CPU = re.compile(r"\s\[(\d+)\]\s")
_TGID = re.compile(r"\s+\(\s*[\d-]+\)$")
_FTRACE_TASK = re.compile(r"^(.*)-(\d+)$")
_PERF_TASK = re.compile(r"^(.*?)\s+(\d+)(?:/\d+)?$")
_REST = re.compile(r"\s*(?:[\w.]{4,6}\s+)?(\d+)\.(\d+):\s+(?:\d+\s+)?(\w+(?::\w+)?):(?:\s(.*)|$)")
# Lines that belong to a trace without being a tracepoint: perf script's call-chain frames
# (`\t    ffffffff81234567 func+0x1f ([kernel.kallsyms])`), trace-cmd's `CPU 3 is empty`, its
# buffer headers, and tracefs's `CPU:2 [LOST 12 EVENTS]`.
_NOISE = re.compile(r"^\s+[0-9a-f]{6,16}\s|^CPU \d+ is empty|^\s*CPU:\d+ \[LOST \d+ EVENTS\]"
                    r"|^\s*\[LOST \d+ EVENTS\]|^\s*buffer: ")
_LOST = re.compile(r"\[LOST (\d+) EVENTS\]")
_CPUS_HEADER = (re.compile(r"^cpus=(\d+)\s*$"), re.compile(r"^#.*\bCPUs: (\d+)\b"),
                re.compile(r"^# entries-in-buffer/entries-written: .* #P:(\d+)"))
_FIELD = re.compile(r"(\w+)[=:]\s*([^\s,]+)")
_REASON = re.compile(r"\((\d+)\)\s*$")
_RAW_REASON = re.compile(r"\breason=(\d+)\b")
# `trace-cmd report -l` (latency layout): no brackets round the CPU, which runs into the flags
# (`sh-16637   0d..1. 42537.714026: tlb_flush: ...`).
_LATENCY = re.compile(r"^\s*(.*)-(\d+)\s+(\d+)[dXb.][\w.]{2,5}\s+(\d+)\.(\d+):\s+(\w+):(?:\s(.*)|$)")

# `trace-cmd report -R` prints the raw fields: the struct's names and enum values as numbers.
_RAW_NAMES = {"succeeded": "nr_succeeded", "failed": "nr_failed",
              "thp_succeeded": "nr_thp_succeeded", "thp_failed": "nr_thp_failed",
              "thp_split": "nr_thp_split", "large_folio_split": "nr_split"}
# enum migrate_mode and enum migrate_reason, in include/linux/migrate_mode.h and
# include/linux/migrate.h order (the names include/trace/events/migrate.h prints).
MIGRATE_MODES = ("MIGRATE_ASYNC", "MIGRATE_SYNC_LIGHT", "MIGRATE_SYNC", "MIGRATE_SYNC_NO_COPY")
MIGRATE_REASONS = ("compaction", "memory_failure", "memory_hotplug", "syscall_or_cpuset",
                   "mempolicy_mbind", "numa_misplaced", "contig_range", "longterm_pin",
                   "demotion", "damon")

_MAGIC = {
    b"PERFILE2": "a perf.data file (binary): turn it into text with 'perf script -i FILE > "
                 "FILE.txt' and replay that",
    b"\x17\x08\x44tracing": "a trace-cmd .dat file (binary): turn it into text with "
                            "'trace-cmd report -i FILE > FILE.txt' and replay that",
}


class Line(NamedTuple):
    """One tracepoint hit: where it is in the file, when, where, and what it says."""

    number: int  # line number in the file, from 1
    time_ns: int
    cpu: int
    comm: str
    pid: int
    event: str  # without its subsystem: ``tlb_flush``, not ``tlb:tlb_flush``
    payload: str
    text: str  # the line as the file has it

    def fields(self) -> dict[str, str]:
        """``key=value`` and ``key:value`` pairs of the payload (raw fields under the names
        the kernel's own format prints)."""
        found = dict(_FIELD.findall(self.payload))
        if self.event in ("mm_migrate_pages", "mm_migrate_pages_start"):
            for raw, name in _RAW_NAMES.items():
                if raw in found and name not in found:
                    found[name] = found.pop(raw)
            for key, names in (("mode", MIGRATE_MODES), ("reason", MIGRATE_REASONS)):
                value = found.get(key, "")
                if value.isdigit():
                    number = int(value)
                    found[key] = names[number] if number < len(names) else value
        return found

    def number_of(self, key: str, default: int = 0) -> int:
        value = self.fields().get(key)
        if value is None:
            return default
        try:
            return int(value, 16) if key in ("addr", "pte", "pmd") else int(value)
        except ValueError:
            return default

    @property
    def reason(self) -> int:
        """tlb_flush's reason number, -1 if it has none."""
        found = _REASON.search(self.payload)
        if found:
            return int(found.group(1))
        hexa = re.search(r"reason:0x([0-9a-f]+)", self.payload)
        if hexa:
            return int(hexa.group(1), 16)
        raw = _RAW_REASON.search(self.payload)  # trace-cmd report -R: reason=4
        return int(raw.group(1)) if raw else -1


@dataclass(slots=True)
class Receipt:
    """One CPU's handling of a shootdown IPI."""

    line: int  # index into Recording.lines
    time_ns: int
    cpu: int
    pages: int
    reason: int
    vector: int | None


@dataclass(slots=True)
class Round:
    """One shootdown: the sender's ``remote ipi send`` line and the receipts that answer it."""

    line: int
    time_ns: int
    cpu: int
    pid: int
    comm: str
    pages: int
    call: int  # index into Recording.calls, -1 outside any migrate_pages() call
    receipts: list[Receipt] = field(default_factory=list)


@dataclass(slots=True)
class Page:
    """One unmapped address of one call: its migration entry and its restore."""

    addr: int
    order: int
    pmd: bool
    unmap_line: int
    remap_line: int = -1  # -1: not restored within the trace


@dataclass(slots=True)
class Call:
    """One ``migrate_pages()`` call, as its task logged it."""

    index: int
    pid: int
    comm: str
    cpu: int
    start_line: int
    start_ns: int
    mode: str
    reason: str
    end_line: int = -1  # -1: the trace ends (or the end line is lost) before the call returns
    end_ns: int = -1
    succeeded: int = 0
    failed: int = 0
    thp_succeeded: int = 0
    thp_failed: int = 0
    thp_split: int = 0
    split: int | None = None  # nr_split=, on kernels that print it
    pages: list[Page] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)  # indices into Recording.rounds

    @property
    def finished(self) -> bool:
        return self.end_line >= 0


@dataclass(slots=True)
class Recording:
    """A parsed trace: its lines in time order and what they add up to."""

    source: str
    lines: list[Line]
    cpus: int
    unparsed: int
    first_unparsed: str | None
    calls: list[Call]
    rounds: list[Round]
    line_call: list[int]  # per line: the call it belongs to, -1 if none
    line_round: list[int]  # per line: the round it sends or answers, -1 if none
    # Lines with reason 5 (remote wrong CPU) that the sender logged itself: flush_tlb_func() ran
    # locally on a CPU no longer running the mm. Not an IPI: not in the TLB row.
    local_wrong_cpu: frozenset[int] = frozenset()
    lost_events: int = 0  # `[LOST N EVENTS]` markers: the counts then miss what the buffer dropped

    def is_receipt(self, index: int) -> bool:
        """Whether line ``index`` is a CPU handling a shootdown IPI (the TLB row counts it)."""
        line = self.lines[index]
        return line.event == "tlb_flush" and line.reason in (REMOTE_SHOOTDOWN, REMOTE_WRONG_CPU) \
            and index not in self.local_wrong_cpu

    @property
    def duration_ns(self) -> int:
        return self.lines[-1].time_ns - self.lines[0].time_ns if self.lines else 0

    @property
    def start_ns(self) -> int:
        return self.lines[0].time_ns if self.lines else 0

    def counts(self) -> dict[str, object]:
        """The trace's counters, named as ``migviz run --json`` and /proc/vmstat name them."""
        events = Counter(line.event for line in self.lines)
        finished = [call for call in self.calls if call.finished]
        shootdowns = [0] * self.cpus
        local_all = local_one = 0
        reasons: Counter[int] = Counter()
        vectors: Counter[int] = Counter()
        for index, line in enumerate(self.lines):
            if line.event in VECTOR_EVENTS:
                vectors[line.number_of("vector", -1)] += 1
            if line.event != "tlb_flush":
                continue
            reason = line.reason
            reasons[reason] += 1
            if self.is_receipt(index):
                shootdowns[line.cpu] += 1
            elif reason in (LOCAL_SHOOTDOWN, LOCAL_MM_SHOOTDOWN):
                pages = line.number_of("pages")
                local_all += pages < 0
                local_one += pages > 0
        return {
            "source": self.source,
            "calls": len(finished),
            "calls_unfinished": len(self.calls) - len(finished),
            "pgmigrate_success": sum(call.succeeded for call in finished),
            "pgmigrate_fail": sum(call.failed for call in finished),
            "thp_migration_success": sum(call.thp_succeeded for call in finished),
            "thp_migration_fail": sum(call.thp_failed for call in finished),
            "thp_migration_split": sum(call.thp_split for call in finished),
            "set_migration_pte": events["set_migration_pte"],
            "remove_migration_pte": events["remove_migration_pte"],
            "set_migration_pmd": events["set_migration_pmd"],
            "remove_migration_pmd": events["remove_migration_pmd"],
            "nr_tlb_remote_flush": reasons[REMOTE_SEND],
            "remote_shootdowns": sum(shootdowns),
            "remote_wrong_cpu": reasons[REMOTE_WRONG_CPU] - len(self.local_wrong_cpu),
            "local_wrong_cpu": len(self.local_wrong_cpu),
            "tlb_shootdowns": shootdowns,
            "nr_tlb_local_flush_all": local_all,
            "nr_tlb_local_flush_one": local_one,
            "tlb_flush_by_reason": {str(reason): n for reason, n in sorted(reasons.items())},
            "ipi_vectors": sum(vectors.values()),
            "ipi_vectors_by_number": {str(vector): n for vector, n in sorted(vectors.items())},
            "rounds_in_calls": sum(len(call.rounds) for call in self.calls),
            "cpus": self.cpus,
            "duration_ns": self.duration_ns,
            "lines": len(self.lines),
            "other_events": sum(n for event, n in events.items() if event not in KNOWN_EVENTS),
            "unparsed_lines": self.unparsed,
            "lost_events": self.lost_events,
        }


def read_text(path: Path) -> str:
    """The file's text, gunzipped if it is gzip; binary trace formats get a clear error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a trace") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise InputError(f"{path}: a damaged gzip file: {err}") from None
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            raise InputError(f"{path}: {what}")
    if b"\x00" in raw[:4096]:
        raise InputError(f"{path}: not a trace: a binary file (a trace is text: perf script, "
                         "trace-cmd report or tracefs output)")
    return raw.decode("utf-8", errors="replace")


def load_recording(path: Path) -> Recording:
    """Read and rebuild a trace file."""
    return parse_recording(read_text(path), str(path))


def parse_lines(text: str) -> tuple[list[Line], int, str | None, int, int]:
    """The tracepoint lines (in time order), the unparsed count, the first unparsed line, the
    CPU count the header gives (0 if none) and the events the kernel says it lost."""
    lines: list[Line] = []
    lost = 0
    unparsed = 0
    first_unparsed: str | None = None
    header_cpus = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        dropped = _LOST.search(raw)
        if dropped:
            lost += int(dropped.group(1))
        if stripped.startswith(("#", "cpus=", "version =")) or _NOISE.match(raw):
            for pattern in _CPUS_HEADER:
                found = pattern.match(stripped)
                if found:
                    header_cpus = int(found.group(1))
            continue
        parsed = _parse_line(number, raw)
        if parsed is None:
            unparsed += 1
            first_unparsed = first_unparsed or raw
            continue
        lines.append(parsed)
    lines.sort(key=lambda line: (line.time_ns, line.number))  # a stable merge of per-CPU buffers
    return lines, unparsed, first_unparsed, header_cpus, lost


def _parse_line(number: int, raw: str) -> Line | None:
    cut = _CPU.search(raw)
    if cut is None:
        return _parse_latency(number, raw)
    rest = _REST.match(raw, cut.end())
    if rest is None:
        return None
    task = _TGID.sub("", raw[: cut.start()].strip())
    found = _PERF_TASK.match(task) or _FTRACE_TASK.match(task)
    if found is None:
        return None
    sec, frac, event, payload = rest.groups()
    return Line(number=number, time_ns=_time_ns(sec, frac), cpu=int(cut.group(1)),
                comm=found.group(1).strip(), pid=int(found.group(2)),
                event=event.rsplit(":", 1)[-1], payload=(payload or "").strip(),
                text=raw.rstrip("\n"))


def _time_ns(seconds: str, fraction: str) -> int:
    """A trace's ``seconds.fraction`` stamp (micro- or nanoseconds) in nanoseconds."""
    return int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9])


def _parse_latency(number: int, raw: str) -> Line | None:
    """A line of ``trace-cmd report -l``, whose CPU number runs into the latency flags."""
    found = _LATENCY.match(raw)
    if found is None:
        return None
    comm, pid, cpu, sec, frac, event, payload = found.groups()
    return Line(number=number, time_ns=_time_ns(sec, frac), cpu=int(cpu), comm=comm.strip(), pid=int(pid),
                event=event, payload=(payload or "").strip(), text=raw.rstrip("\n"))


def parse_recording(text: str, source: str = "trace") -> Recording:
    """Rebuild calls, pages and shootdowns from a trace's text."""
    lines, unparsed, first_unparsed, header_cpus, lost = parse_lines(text)
    if not lines:
        detail = f" (first line: {first_unparsed.strip()[:60]!r})" if first_unparsed else \
            " (the file is empty)"
        raise InputError(f"{source}: not a kernel trace: no line in perf script, trace-cmd "
                         f"report or tracefs format{detail}")
    cpus = max(header_cpus, max(line.cpu for line in lines) + 1)
    builder = _Builder(lines)
    for index, line in enumerate(lines):
        builder.add(index, line)
    return Recording(source=source, lines=lines, cpus=cpus, unparsed=unparsed,
                     first_unparsed=first_unparsed, calls=builder.calls, rounds=builder.rounds,
                     line_call=builder.line_call, line_round=builder.line_round,
                     local_wrong_cpu=frozenset(builder.local_wrong_cpu), lost_events=lost)


class _Builder:
    """Walks the lines in time order and groups them into calls and rounds."""

    def __init__(self, lines: list[Line]) -> None:
        self.calls: list[Call] = []
        self.rounds: list[Round] = []
        self.line_call = [-1] * len(lines)
        self.line_round = [-1] * len(lines)
        self.open_calls: dict[int, int] = {}  # pid -> call index
        self.open_pages: dict[tuple[int, int], list[int]] = {}  # (call, addr) -> page indices
        self.answered: dict[int, set[int]] = {}  # round -> CPUs that answered it
        self.vector: dict[int, int] = {}  # cpu -> vector of an IPI entry not yet matched
        self.local_wrong_cpu: set[int] = set()

    def add(self, index: int, line: Line) -> None:
        event = line.event
        call = self.open_calls.get(line.pid, -1)
        if event == "mm_migrate_pages_start":
            fields = line.fields()
            call = len(self.calls)
            self.calls.append(Call(index=call, pid=line.pid, comm=line.comm, cpu=line.cpu,
                                   start_line=index, start_ns=line.time_ns,
                                   mode=fields.get("mode", "?"),
                                   reason=fields.get("reason", "?")))
            self.open_calls[line.pid] = call
        elif event == "mm_migrate_pages":
            if call < 0:
                return  # the trace began inside this call: its end alone says little
            record = self.calls[call]
            fields = line.fields()
            record.end_line, record.end_ns = index, line.time_ns
            record.succeeded = _int(fields.get("nr_succeeded"))
            record.failed = _int(fields.get("nr_failed"))
            record.thp_succeeded = _int(fields.get("nr_thp_succeeded"))
            record.thp_failed = _int(fields.get("nr_thp_failed"))
            record.thp_split = _int(fields.get("nr_thp_split"))
            record.split = _int(fields["nr_split"]) if "nr_split" in fields else None
            del self.open_calls[line.pid]
        elif event in UNMAP_EVENTS and call >= 0:
            pmd = event.endswith("pmd")
            order = PMD_ORDER if pmd else line.number_of("order")
            addr = line.number_of("addr")
            pages = self.calls[call].pages
            self.open_pages.setdefault((call, addr), []).append(len(pages))
            pages.append(Page(addr=addr, order=order, pmd=pmd, unmap_line=index))
        elif event in REMAP_EVENTS and call >= 0:
            waiting = self.open_pages.get((call, line.number_of("addr")))
            if waiting:
                self.calls[call].pages[waiting.pop(0)].remap_line = index
        elif event in VECTOR_EVENTS:
            self.vector[line.cpu] = line.number_of("vector", -1)
            self.line_call[index] = -1
            return
        elif event == "tlb_flush":
            call = self._tlb_flush(index, line, call)
        self.line_call[index] = call

    def _tlb_flush(self, index: int, line: Line, call: int) -> int:
        """Record a send or a receipt; returns the call the line belongs to (a receipt: its
        round's)."""
        reason = line.reason
        if reason == REMOTE_SEND:
            number = len(self.rounds)
            self.rounds.append(Round(line=index, time_ns=line.time_ns, cpu=line.cpu,
                                     pid=line.pid, comm=line.comm,
                                     pages=line.number_of("pages"), call=call))
            if call >= 0:
                self.calls[call].rounds.append(number)
            self.line_round[index] = number
            return call
        elif reason == REMOTE_WRONG_CPU and self.rounds and self.rounds[-1].cpu == line.cpu \
                and self.rounds[-1].pid == line.pid:
            # The sender's own flush_tlb_func() call, on a CPU that left the mm: local.
            self.local_wrong_cpu.add(index)
            self.line_round[index] = len(self.rounds) - 1
            return self.rounds[-1].call
        elif reason in (REMOTE_SHOOTDOWN, REMOTE_WRONG_CPU):
            # The latest send, from another CPU, that this CPU has not answered yet.
            for number in range(len(self.rounds) - 1, max(len(self.rounds) - 64, 0) - 1, -1):
                candidate = self.rounds[number]
                if candidate.cpu == line.cpu or line.cpu in self.answered.get(number, ()):
                    continue
                self.answered.setdefault(number, set()).add(line.cpu)
                candidate.receipts.append(Receipt(
                    line=index, time_ns=line.time_ns, cpu=line.cpu,
                    pages=line.number_of("pages"), reason=reason,
                    vector=self.vector.pop(line.cpu, None)))
                self.line_round[index] = number
                return candidate.call
        return call


def _int(text: str | None) -> int:
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0
