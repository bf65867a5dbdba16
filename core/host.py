"""This host's own TLB-shootdown and migration counters, read from /proc and /sys.

Three sources, each read as the kernel prints it:

- ``/proc/interrupts``, its ``TLB:`` row: the TLB-shootdown IPIs each CPU has received since
  boot (x86 counts them in ``flush_tlb_func()`` as ``irq_tlb_count``). The header row names the
  CPU of each column; with CPUs offline it skips numbers (``CPU0 CPU1 CPU3``), so the numbers
  are kept beside the counts.
- ``/proc/vmstat``: the counters named ``pgmigrate_*``, ``thp_migration_*``, ``numa_*`` and
  ``nr_tlb_*`` that this kernel has (``nr_tlb_*`` only with CONFIG_DEBUG_TLBFLUSH).
- ``/sys/devices/system/node``: the nodes online, and for each its CPUs, memory and distances.

A file that is missing or unreadable leaves its part empty and is named in
:attr:`HostSnapshot.missing`; reading never fails. :func:`host_rates` turns two snapshots into
deltas and rates per second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
SYS = Path("/sys")
NODE_DIR = Path("devices/system/node")  # below SYS
VMSTAT_PREFIXES = ("pgmigrate_", "thp_migration_", "numa_", "nr_tlb_")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One online NUMA node, from /sys/devices/system/node/nodeN. A value its files did not
    give is None (or empty), never a guess."""

    node: int
    cpus: tuple[int, ...]
    mem_total_kib: int | None
    mem_free_kib: int | None
    distance: tuple[int, ...]  # to each online node, in node order; empty if not readable


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """The counters at one moment. ``tlb_shootdowns[i]`` belongs to CPU ``cpus[i]``."""

    time_ns: int  # time.monotonic_ns() just before /proc/interrupts was read
    cpus: tuple[int, ...]
    tlb_shootdowns: tuple[int, ...]
    vmstat: dict[str, int] = field(hash=False)  # kept counters, in /proc/vmstat's order
    nodes: tuple[NodeInfo, ...]
    missing: tuple[str, ...]  # "path: why", one per file (or row) that could not be read

    def as_dict(self) -> dict[str, object]:
        """The snapshot as plain JSON-able data (what `migviz host --once --json` prints)."""
        return {
            "time_ns": self.time_ns,
            "cpus": list(self.cpus),
            "tlb_shootdowns": list(self.tlb_shootdowns),
            "vmstat": dict(self.vmstat),
            "nodes": [
                {"node": node.node, "cpus": list(node.cpus),
                 "memory": {"total_kib": node.mem_total_kib, "free_kib": node.mem_free_kib},
                 "distance": list(node.distance)}
                for node in self.nodes
            ],
            "missing": list(self.missing),
        }


@dataclass(frozen=True, slots=True)
class HostRates:
    """What changed from one snapshot to the next: deltas, and the same deltas per second.
    Per CPU in the later snapshot's order; None for a CPU the earlier one did not list (it
    came online in between). Counters only where both snapshots have them."""

    seconds: float
    cpus: tuple[int, ...]
    tlb_deltas: tuple[int | None, ...]
    tlb_per_s: tuple[float | None, ...]
    vmstat_deltas: dict[str, int] = field(hash=False)
    vmstat_per_s: dict[str, float] = field(hash=False)


# ---------------------------------------------------------------------------------------------
# Reading


def take_snapshot(proc: Path = PROC, sys: Path = SYS) -> HostSnapshot:
    """Read the host's counters now. ``proc`` and ``sys`` are the roots to read below (a fake
    tree in tests)."""
    missing: list[str] = []
    now = time.monotonic_ns()
    cpus, tlb = read_tlb_shootdowns(proc / "interrupts", missing)
    vmstat = read_vmstat(proc / "vmstat", missing)
    nodes = read_nodes(sys / NODE_DIR, missing)
    return HostSnapshot(time_ns=now, cpus=cpus, tlb_shootdowns=tlb, vmstat=vmstat, nodes=nodes,
                        missing=tuple(missing))


def read_tlb_shootdowns(path: Path, missing: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The CPU numbers of /proc/interrupts' header and the counts of its ``TLB:`` row. With no
    TLB row (a kernel that flushes without IPIs, arm64 for one), the counts are empty."""
    text = _read(path, missing)
    if text is None:
        return (), ()
    lines = text.splitlines()
    cpus = parse_cpu_header(lines[0]) if lines else None
    if cpus is None:
        missing.append(f"{path}: no CPU header row")
        return (), ()
    for line in lines[1:]:
        words = line.split()
        if words[:1] != ["TLB:"]:
            continue
        counts = words[1:1 + len(cpus)]
        if len(counts) == len(cpus) and all(word.isdigit() for word in counts):
            return cpus, tuple(int(word) for word in counts)
        missing.append(f"{path}: unreadable TLB row")
        return cpus, ()
    missing.append(f"{path}: no TLB row")
    return cpus, ()


def parse_cpu_header(line: str) -> tuple[int, ...] | None:
    """``CPU0 CPU1 CPU3`` → (0, 1, 3); None if the line is not such a header."""
    words = line.split()
    if not words or not all(word.startswith("CPU") and word[3:].isdigit() for word in words):
        return None
    return tuple(int(word[3:]) for word in words)


def read_vmstat(path: Path, missing: list[str]) -> dict[str, int]:
    """The counters of /proc/vmstat whose names start with one of VMSTAT_PREFIXES."""
    text = _read(path, missing)
    if text is None:
        return {}
    kept: dict[str, int] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0].startswith(VMSTAT_PREFIXES):
            try:
                kept[words[0]] = int(words[1])
            except ValueError:
                missing.append(f"{path}: unreadable {words[0]}")
    return kept


def read_nodes(node_dir: Path, missing: list[str]) -> tuple[NodeInfo, ...]:
    """Every online node (``online``, a cpulist of node numbers) with its CPUs, memory and
    distances."""
    online_text = _read(node_dir / "online", missing)
    if online_text is None:
        return ()
    try:
        online = parse_cpulist(online_text)
    except ValueError:
        missing.append(f"{node_dir / 'online'}: not a list of nodes")
        return ()
    return tuple(read_node(node_dir / f"node{node}", node, missing) for node in online)


def read_node(path: Path, node: int, missing: list[str]) -> NodeInfo:
    """One node's cpulist, meminfo (MemTotal, MemFree) and distance."""
    cpus: tuple[int, ...] = ()
    text = _read(path / "cpulist", missing)
    if text is not None:
        try:
            cpus = parse_cpulist(text)
        except ValueError:
            missing.append(f"{path / 'cpulist'}: not a CPU list")
    memory: dict[str, int] = {}
    text = _read(path / "meminfo", missing)
    if text is not None:
        # "Node 0 MemTotal:       24683584 kB"
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 4 and words[2] in ("MemTotal:", "MemFree:") and words[3].isdigit():
                memory[words[2].rstrip(":")] = int(words[3])
    distance: tuple[int, ...] = ()
    text = _read(path / "distance", missing)
    if text is not None:
        words = text.split()
        if all(word.isdigit() for word in words):
            distance = tuple(int(word) for word in words)
        else:
            missing.append(f"{path / 'distance'}: not a list of distances")
    return NodeInfo(node=node, cpus=cpus, mem_total_kib=memory.get("MemTotal"),
                    mem_free_kib=memory.get("MemFree"), distance=distance)


def parse_cpulist(text: str) -> tuple[int, ...]:
    """The kernel's list format (``0-3,8,10-11``; empty for none) as numbers. ValueError if it
    is not one."""
    numbers: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if high < low:
            raise ValueError(part)
        numbers.extend(range(low, high + 1))
    return tuple(numbers)


def format_cpulist(numbers: tuple[int, ...] | list[int]) -> str:
    """Numbers in the kernel's list format: (0, 1, 2, 5) → ``0-2,5``."""
    parts: list[str] = []
    ordered = sorted(numbers)
    start = 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            low, high = ordered[start], ordered[index - 1]
            parts.append(str(low) if low == high else f"{low}-{high}")
            start = index
    return ",".join(parts)


def _read(path: Path, missing: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        missing.append(f"{path}: no such file")
    except OSError as err:
        missing.append(f"{path}: {(err.strerror or str(err)).lower()}")
    return None


# ---------------------------------------------------------------------------------------------
# Rates


def host_rates(before: HostSnapshot, after: HostSnapshot) -> HostRates:
    """The deltas from ``before`` to ``after``, and per second of monotonic time between them.
    ValueError if ``after`` was not taken later."""
    seconds = (after.time_ns - before.time_ns) / 1e9
    if seconds <= 0:
        raise ValueError("the second snapshot must be taken after the first")
    earlier = dict(zip(before.cpus, before.tlb_shootdowns, strict=False))
    tlb_deltas = tuple(count - earlier[cpu] if cpu in earlier else None
                       for cpu, count in zip(after.cpus, after.tlb_shootdowns, strict=False))
    vmstat_deltas = {name: value - before.vmstat[name]
                     for name, value in after.vmstat.items() if name in before.vmstat}
    return HostRates(
        seconds=seconds,
        cpus=after.cpus[:len(after.tlb_shootdowns)],
        tlb_deltas=tlb_deltas,
        tlb_per_s=tuple(None if delta is None else delta / seconds for delta in tlb_deltas),
        vmstat_deltas=vmstat_deltas,
        vmstat_per_s={name: delta / seconds for name, delta in vmstat_deltas.items()},
    )
