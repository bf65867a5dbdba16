"""Recording a real migration with perf: the tracepoints migviz replays, on every CPU, while a
command runs, written out as ``perf script`` text.

The default command is one memory compaction (``echo 1 > /proc/sys/vm/compact_memory``), which
calls ``migrate_pages()`` with ``reason=compaction`` even on a one-node machine. On a host with
two or more nodes that have memory it is ``migratepages PID FROM TO`` of a helper process
instead (``reason=syscall_or_cpuset``), the call migviz's scenarios model. Either way some
memory is kept hot from threads pinned to other CPUs (core/hot.py) while it runs, so that
migrating those pages needs TLB shootdowns to them, and the command runs on the CPUs left over,
so that its flushes are remote ones.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from core.errors import InputError
from core.host import format_cpulist, read_nodes
from core.hot import HotMemory, usable_cpus

EVENTS: tuple[str, ...] = (
    "migrate:mm_migrate_pages_start",
    "migrate:mm_migrate_pages",
    "migrate:set_migration_pte",
    "migrate:remove_migration_pte",
    "tlb:tlb_flush",
)
# Recorded where the kernel has them, skipped elsewhere: a PMD-mapped THP's unmap and remap, and
# the function-call IPI vectors, which only x86 traces (arm64 has no irq_vectors events; its
# shootdowns are broadcast TLBIs, not IPIs).
OPTIONAL_EVENTS: tuple[str, ...] = (
    "migrate:set_migration_pmd", "migrate:remove_migration_pmd",
    "irq_vectors:call_function_entry", "irq_vectors:call_function_single_entry",
)

COMPACT_MEMORY = Path("/proc/sys/vm/compact_memory")
COMPACTION: tuple[str, ...] = ("sh", "-c", f"echo 1 > {COMPACT_MEMORY}")
PARANOID = Path("/proc/sys/kernel/perf_event_paranoid")
NODES = Path("/sys/devices/system/node")
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
HELPER_TIMEOUT_S = 30.0

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """What a recording holds, counted by event name (a line count, not a parse)."""

    command: tuple[str, ...]
    events: tuple[str, ...]  # the tracepoints recorded
    lines: int
    migrate_calls: int  # mm_migrate_pages_start: calls of migrate_pages()
    migration_ptes: int  # set_migration_pte
    tlb_flushes: int
    remote_shootdowns: int  # tlb_flush lines with reason "remote shootdown": a CPU that got one
    call_function_ipis: int  # irq_vectors:call_function_entry and _single_entry

    def describe(self) -> str:
        """One line: the counts a reader checks first."""
        return (f"{self.lines} lines, {self.migrate_calls} migrate_pages() calls, "
                f"{self.migration_ptes} set_migration_pte, {self.tlb_flushes} tlb_flush lines "
                f"({self.remote_shootdowns} remote shootdowns), {self.call_function_ipis} "
                f"call_function IPIs")


def record_trace(out: TextIO, command: Sequence[str] | None = None, *,
                 hot_cpus: Sequence[int] = (), hot_mib: float = 64.0, perf: str | None = None,
                 progress: Progress | None = None) -> RecordSummary:
    """Record ``command`` (None: the default migration) with perf, keeping ``hot_mib`` MiB hot
    from ``hot_cpus``, and write the ``perf script`` text to ``out``. InputError, one line, if
    perf is missing or not permitted, a tracepoint is absent, or the command fails."""
    tell = progress or (lambda line: None)
    perf_path = find_perf(perf)
    check_permission()
    events = tracepoints(perf_path)
    with tempfile.TemporaryDirectory(prefix="migviz-record-") as folder:
        data = Path(folder) / "perf.data"
        with _migration(command, list(hot_cpus), hot_mib, tell) as (argv, hot_note):
            tell(f"migviz: recording {len(events)} tracepoints on every CPU{hot_note} "
                 f"(perf) while this runs: {shlex.join(argv)}")
            perf_record(perf_path, events, data, argv, away_from=hot_cpus)
        tell("migviz: converting to text (perf script)")
        counts = perf_script(perf_path, data, out, tell)
    return RecordSummary(command=tuple(argv), events=events, **counts)


def find_perf(perf: str | None = None) -> str:
    """The perf executable (``perf`` on PATH unless given), checked to run."""
    path = shutil.which(perf or "perf")
    if path is None:
        raise InputError("perf not found: install linux-perf / linux-tools (e.g. apt install "
                         "linux-perf, dnf install perf)")
    # Distribution wrappers exist whose perf only says which package it lacks.
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True,
                                timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InputError(f"{path} does not run: {err}") from None
    if result.returncode != 0:
        raise InputError(f"{path} does not run: {_last_line(result.stderr or result.stdout)}")
    return path


def check_permission() -> None:
    """InputError unless this process may record tracepoints on every CPU: root, CAP_PERFMON
    or CAP_SYS_ADMIN, or kernel.perf_event_paranoid at -1."""
    if os.geteuid() == 0 or _has_capability(CAP_PERFMON) or _has_capability(CAP_SYS_ADMIN):
        return
    try:
        paranoid = int(PARANOID.read_text(encoding="ascii"))
    except (OSError, ValueError):
        paranoid = None
    if paranoid is None or paranoid > -1:
        level = "unreadable" if paranoid is None else str(paranoid)
        raise InputError(f"not permitted: recording tracepoints on every CPU needs root (or "
                         f"CAP_PERFMON), or kernel.perf_event_paranoid = -1 (it is {level}); "
                         "run with sudo")


def tracepoints(perf: str) -> tuple[str, ...]:
    """The tracepoints to record: all of EVENTS (InputError naming any this kernel lacks) and
    those of OPTIONAL_EVENTS it has."""
    try:
        result = subprocess.run([perf, "list", "--raw-dump", "tracepoint"], capture_output=True,
                                text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InputError(f"perf list failed: {err}") from None
    known = set(result.stdout.split())
    if not any(":" in name for name in known):
        raise InputError("perf sees no tracepoints: tracefs is not mounted or not readable (as "
                         "root: mount -t tracefs nodev /sys/kernel/tracing)")
    missing = [event for event in EVENTS if event not in known]
    if missing:
        raise InputError(f"tracepoint{'s' if len(missing) > 1 else ''} absent on this kernel "
                         f"(Linux {platform.release()}): {', '.join(missing)}")
    return EVENTS + tuple(event for event in OPTIONAL_EVENTS if event in known)


def memory_nodes() -> list[tuple[int, tuple[int, ...]]]:
    """Each online node that has memory, with its CPUs."""
    return [(node.node, node.cpus) for node in read_nodes(NODES, [])
            if node.mem_total_kib is None or node.mem_total_kib > 0]


def perf_record(perf: str, events: Sequence[str], data: Path, argv: Sequence[str],
                away_from: Sequence[int] = ()) -> None:
    """``perf record -a`` of ``events`` into ``data`` while ``argv`` runs, on the usable CPUs
    not in ``away_from`` (if any are left). InputError if perf or the command fails."""
    command = [perf, "record", "-a", "-o", str(data)]
    for event in events:
        command += ["-e", event]
    command += ["--", *argv]
    log = data.with_suffix(".log")
    with log.open("w+", encoding="utf-8", errors="replace") as errors:
        with _affinity(set(usable_cpus()) - set(away_from)):
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=errors)
        try:
            code = process.wait()
        finally:
            if process.poll() is None:  # interrupted: perf stops its command and itself
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        errors.seek(0)
        text = errors.read()
    if code == 0:
        return
    ours = [line for line in text.splitlines()
            if line.strip() and not line.startswith("[ perf record:")]
    if "Failed to collect" in text and "workload" in text:
        # "Failed to collect 'tlb:tlb_flush' for the 'x' workload: No such file or directory"
        reason = text.split("workload:", 1)[1].strip().splitlines()[0]
        raise InputError(f"{argv[0]}: cannot run: {reason}")
    if "Captured and wrote" in text:  # perf did its part: the status is the command's
        said = f": {_last_line(chr(10).join(ours))}" if ours else ""
        raise InputError(f"the command failed (exit status {code}): {shlex.join(argv)}{said}")
    raise InputError(f"perf record failed (exit status {code}): "
                     f"{_last_line(chr(10).join(ours)) or 'no message'}")


def perf_script(perf: str, data: Path, out: TextIO,
                progress: Progress | None = None) -> dict[str, int]:
    """Write ``perf script`` of ``data`` to ``out``; the counts of RecordSummary. Passes on
    perf's warnings (lost events: the trace has gaps) to ``progress``."""
    counts = dict.fromkeys(("lines", "migrate_calls", "migration_ptes", "tlb_flushes",
                            "remote_shootdowns", "call_function_ipis"), 0)
    log = data.with_suffix(".script.log")
    with log.open("w+", encoding="utf-8", errors="replace") as errors:
        process = subprocess.Popen([perf, "script", "-i", str(data)], stdout=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, stderr=errors, text=True,
                                   errors="replace")
        assert process.stdout is not None
        try:
            for line in process.stdout:
                out.write(line)
                _count(line, counts)
        finally:
            process.stdout.close()
            code = process.wait()
        errors.seek(0)
        text = errors.read()
    if code != 0:
        raise InputError(f"perf script failed (exit status {code}): "
                         f"{_last_line(text) or 'no message'}")
    # "Warning:\nProcessed 5321 events and lost 2 chunks!\n\nCheck IO/CPU overload!"
    warning = " ".join(text.split("Warning:", 1)[1].split()) if "Warning:" in text else ""
    if warning and progress:
        progress(f"migviz: perf script warns: {warning}")
    return counts


def _count(line: str, counts: dict[str, int]) -> None:
    counts["lines"] += 1
    if " migrate:mm_migrate_pages_start:" in line:
        counts["migrate_calls"] += 1
    elif " migrate:set_migration_pte:" in line:
        counts["migration_ptes"] += 1
    elif " tlb:tlb_flush:" in line:
        counts["tlb_flushes"] += 1
        if "reason:remote shootdown" in line:
            counts["remote_shootdowns"] += 1
    elif " irq_vectors:call_function" in line:
        counts["call_function_ipis"] += 1


@contextmanager
def _migration(command: Sequence[str] | None, hot_cpus: list[int], hot_mib: float,
               tell: Progress) -> Iterator[tuple[list[str], str]]:
    """The command to record, with the hot memory running around it: in this process for a
    compaction or a command of the user's; a child process for migratepages, which moves
    another process's pages."""
    plural = "s" if len(hot_cpus) > 1 else ""
    hot_note = (f", {hot_mib:g} MiB kept hot on CPU{plural} {format_cpulist(hot_cpus)}"
                if hot_cpus else ", no memory kept hot")
    if command:
        with _hot_here(hot_cpus, hot_mib):
            yield list(command), hot_note
        return
    nodes = memory_nodes()
    if len(nodes) < 2:
        if not os.access(COMPACT_MEMORY, os.W_OK):
            raise InputError(f"cannot write {COMPACT_MEMORY} (compaction needs root); run with "
                             "sudo, or give a command after --")
        with _hot_here(hot_cpus, hot_mib):
            yield list(COMPACTION), hot_note
        return
    migratepages = shutil.which("migratepages")
    if migratepages is None:
        raise InputError("migratepages not found: install numactl (e.g. apt install numactl), "
                         "or give the command to record after --")
    (source, source_cpus), (target, _) = nodes[0], nodes[1]
    with _hot_child(hot_cpus, hot_mib, first_touch=source_cpus) as pid:
        tell(f"migviz: helper process {pid} holds {hot_mib:g} MiB on node {source}")
        yield ["migratepages", str(pid), str(source), str(target)], hot_note


@contextmanager
def _hot_here(cpus: list[int], mib: float) -> Iterator[None]:
    if not cpus:
        yield
        return
    with HotMemory(cpus, mib):
        yield


@contextmanager
def _hot_child(cpus: list[int], mib: float, first_touch: Sequence[int]) -> Iterator[int]:
    """``python -m core.hot`` as a child; its pid once its memory is resident. It faults its
    memory in from ``first_touch`` (the source node's CPUs), so that it is allocated there."""
    argv = [sys.executable, "-m", "core.hot", "--cpus", format_cpulist(cpus) or "none",
            "--mib", repr(mib)]
    usable = set(first_touch) & set(usable_cpus())
    if usable:
        argv += ["--first-touch", format_cpulist(sorted(usable))]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)  # so that `-m core.hot` finds us
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=errors, text=True, env=env)
        try:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            if not line.isdigit():
                child.wait(timeout=HELPER_TIMEOUT_S)
                errors.seek(0)
                raise InputError(f"the hot-memory helper did not start: "
                                 f"{_last_line(errors.read()) or 'no message'}")
            yield int(line)
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=HELPER_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            if child.stdout is not None:
                child.stdout.close()


@contextmanager
def _affinity(cpus: set[int]) -> Iterator[None]:
    """Run the block on ``cpus`` (this thread only; a child it starts inherits the mask).
    An empty set leaves the mask as it is."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _has_capability(bit: int) -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
