"""`migviz host`: this host's TLB-shootdown and migration counters, once or live.

``--once`` prints one snapshot (``--json``: as one JSON object); without it the live screen
(tui/screens/host.py) reads them every ``--interval`` seconds. A file the host lacks is named in
the output and the rest is still shown; only a host with none of them is an error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.errors import InputError
from core.host import PROC, SYS, HostSnapshot, NodeInfo, format_cpulist, take_snapshot
from tui.output import emit

NO_TLB_COUNTERS = ("no nr_tlb_* counters: this kernel was built without CONFIG_DEBUG_TLBFLUSH")


def host_command(args: argparse.Namespace, *, proc: Path = PROC, sys: Path = SYS) -> int:
    """Run `migviz host` with the parsed ``args``; returns the exit code. ``proc`` and ``sys``
    are the roots to read below (a fake tree in tests)."""
    if args.json and not args.once:
        raise InputError("--json prints one snapshot, so it needs --once "
                         "(migviz host --once --json)")
    snapshot = take_snapshot(proc, sys)
    if not (snapshot.cpus or snapshot.vmstat or snapshot.nodes):
        raise InputError("cannot read this host's counters: " + "; ".join(snapshot.missing))
    if args.once:
        emit(json.dumps(snapshot.as_dict(), indent=2) if args.json else format_snapshot(snapshot, proc, sys))
        return 0
    from tui.screens.host import run_host_app

    return run_host_app(interval=args.interval, proc=proc, sys=sys, first=snapshot)


def format_snapshot(snapshot: HostSnapshot, proc: Path = PROC, sys: Path = SYS) -> str:
    """The snapshot as text: every count as the kernel gave it, since boot."""
    lines = ["This host's counters since boot (one reading)", ""]
    lines.append(f"TLB shootdowns received per CPU ({proc / 'interrupts'}, TLB row)")
    if snapshot.tlb_shootdowns:
        width = max(len(str(count)) for count in snapshot.tlb_shootdowns)
        for cpu, count in zip(snapshot.cpus, snapshot.tlb_shootdowns, strict=False):
            lines.append(f"  {f'CPU{cpu}':<8}{count:>{width}}")
        lines.append(f"  {'all':<8}{sum(snapshot.tlb_shootdowns):>{width}}")
    else:
        lines.append("  (not available, see below)")
    lines += ["", f"Migration, NUMA and TLB counters ({proc / 'vmstat'})"]
    if snapshot.vmstat:
        name_width = max(len(name) for name in snapshot.vmstat) + 2
        width = max(len(str(value)) for value in snapshot.vmstat.values())
        lines += [f"  {name:<{name_width}}{value:>{width}}" for name, value in snapshot.vmstat.items()]
        if not any(name.startswith("nr_tlb_") for name in snapshot.vmstat):
            lines.append(f"  ({NO_TLB_COUNTERS})")
    else:
        lines.append("  (not available, see below)")
    lines += ["", f"NUMA nodes ({sys / 'devices/system/node'})"]
    lines += [f"  {node_text(node)}" for node in snapshot.nodes] or ["  (not available, see below)"]
    if snapshot.missing:
        lines += ["", "Missing:"] + [f"  {what}" for what in snapshot.missing]
    return "\n".join(lines)


def node_text(node: NodeInfo) -> str:
    """``node0  CPUs 0-1  memory 23.5 GiB, 22.1 GiB free  distance 10``."""
    cpus = format_cpulist(node.cpus) or "none"
    parts = [f"node{node.node}", f"CPUs {cpus}", f"memory {format_kib(node.mem_total_kib)}, "
             f"{format_kib(node.mem_free_kib)} free"]
    if node.distance:
        parts.append("distance " + " ".join(str(hop) for hop in node.distance))
    return "  ".join(parts)


def format_kib(kib: int | None) -> str:
    """A size the kernel gave in kB: 950 KiB, 12.3 MiB, 23.5 GiB; ``?`` if it gave none."""
    if kib is None:
        return "?"
    if kib < 1024:
        return f"{kib} KiB"
    if kib < 1024**2:
        return f"{kib / 1024:.1f} MiB"
    return f"{kib / 1024**2:.1f} GiB"
