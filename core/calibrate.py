"""`migviz calibrate`: measure this host's TLB-shootdown round and copy bandwidth, and turn them
into a cost profile (a TOML ``[costs]`` table that ``--costs FILE`` applies).

The round is measured the way the kernel makes one: threads of this process run on k other CPUs
(so those CPUs are in the mm's ``mm_cpumask`` and not lazy), and the main thread, pinned to the
first CPU, takes write permission off a page with ``mprotect()``: change_protection() and
flush_tlb_mm_range() then send one IPI to each of the k CPUs and wait for them all
(native_flush_tlb_multi -> smp_call_function_many_cond, docs/kernel.md §5.3). The TLB row of
/proc/interrupts, which counts the shootdowns each CPU handled, confirms the IPIs arrived.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import statistics
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.costs import Costs
from core.errors import InputError

PAGE = mmap.PAGESIZE
HUGE = 2 << 20
PROT_NONE = 0  # not in the mmap module
MAX_TARGETS = 8
HOT_ROWS = 100_000  # reads of the page in one call: ~15-20 ms without the GIL
CONFIRMED = 0.1  # a point counts if at least this share of the expected IPIs arrived
# The fixed part of the model's round is ipi_send_ns + 2 * ipi_latency_ns + ipi_handler_ns +
# invlpg_ns (core/tlb.py round_plan, docs/calibration.md §4.1); a measured fixed part is split
# among the first three in the proportions of migviz's defaults.
SPLIT = ("ipi_send_ns", "ipi_latency_ns", "ipi_handler_ns")

Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RoundPoint:
    """One number of targets: the median time of one mprotect() that flushes (RW -> R; of the
    calls that sent IPIs, when not all did: _slowest_share_median) and of one that changes no
    PTE (the control: same syscall and locks, no round), and the IPIs the targets took."""

    k: int
    target_cpus: tuple[int, ...]
    ns_per_change: float
    ns_per_null: float
    changes: int  # mprotect() calls that changed the PTE, both directions
    deliveries_expected: int  # changes * k
    deliveries_observed: int  # growth of the TLB row on the target CPUs

    @property
    def confirmed(self) -> bool:
        """Did the targets take the shootdowns (not lazy, not idle)?"""
        return self.k == 0 or self.deliveries_observed >= CONFIRMED * self.deliveries_expected


@dataclass(frozen=True, slots=True)
class CopyFigures:
    """numpy.copyto between two preallocated buffers, walked so the source is not in cache;
    Python's per-call overhead (an 8-byte copy) subtracted."""

    page_ns: float  # median ns per 4 KiB copy
    page_best_ns: float
    huge_ns: float  # median ns per 2 MiB copy
    huge_best_ns: float
    buffer_mib: int

    @property
    def page_gbps(self) -> float:
        """Bandwidth of the median 4 KiB copy, GB/s."""
        return PAGE / self.page_ns if self.page_ns > 0 else 0.0

    @property
    def huge_gbps(self) -> float:
        """Bandwidth of the median 2 MiB copy, GB/s."""
        return HUGE / self.huge_ns if self.huge_ns > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Host:
    """What the profile was measured on."""

    name: str
    kernel: str
    cpu_model: str
    cpus: int
    nodes: int
    virtual: bool  # /proc/cpuinfo has the 'hypervisor' flag: IPIs go through a hypervisor
    date: str


@dataclass(frozen=True, slots=True)
class Calibration:
    """The raw measurements, the fitted round and the profile derived from them."""

    host: Host
    initiator_cpu: int
    points: tuple[RoundPoint, ...]
    copy: CopyFigures
    note: str | None  # why no round is reported, if none is

    def rounds(self) -> list[tuple[int, float]]:
        """(k, round ns) of each confirmed point: [t(k) - null(k)] - [t(0) - null(0)]."""
        if self.note or not self.points:
            return []
        base = self.points[0].ns_per_change - self.points[0].ns_per_null
        return [(p.k, p.ns_per_change - p.ns_per_null - base) for p in self.points[1:]
                if p.confirmed]

    def fit(self) -> tuple[float | None, float] | None:
        """(per-target slope or None, intercept) of round(k) = intercept + slope * k, least
        squares over the confirmed points; with one point the slope cannot be told apart."""
        rounds = self.rounds()
        if not rounds:
            return None
        if len(rounds) == 1:
            return None, rounds[0][1] - Costs().ipi_target_ns
        slope, intercept = np.polyfit([k for k, _ in rounds], [r for _, r in rounds], 1)
        return float(slope), float(intercept)

    def profile(self) -> dict[str, tuple[int, str]]:
        """Each cost field this host gives a value for, with how it was derived."""
        default = Costs()
        copy = self.copy
        out: dict[str, tuple[int, str]] = {}
        fitted = self.fit()
        if fitted is not None:
            slope, intercept = fitted
            if slope is None:
                out["ipi_target_ns"] = (default.ipi_target_ns, "kept at migviz's default: with "
                                        "one target CPU the per-target part cannot be separated")
            else:
                out["ipi_target_ns"] = (_ns(slope), f"measured: slope of round(k) over "
                                        f"k = 1..{self.rounds()[-1][0]} (least squares)")
            fixed = max(intercept - default.invlpg_ns, 0.0)
            scale = fixed / (default.ipi_send_ns + 2 * default.ipi_latency_ns
                             + default.ipi_handler_ns)
            why = (f"inferred: the round's measured fixed part {intercept:,.0f} ns minus invlpg_ns, "
                   f"split in the defaults' proportions (x{scale:.2f})")
            for name in SPLIT:
                out[name] = (_ns(getattr(default, name) * scale), why)
            out["ipi_remote_latency_ns"] = (
                _ns(default.ipi_remote_latency_ns * scale),
                f"inferred: {'one NUMA node here' if self.host.nodes < 2 else 'not measured'}; "
                "the defaults' ratio to ipi_latency_ns kept")
            out["invlpg_ns"] = (default.invlpg_ns, "kept at migviz's default (one INVLPG cannot "
                                "be told apart here); the fixed part above assumes it")
        out["copy_page_ns"] = (
            _ns(copy.page_ns), f"measured: median 4 KiB copy, {copy.page_gbps:.1f} GB/s, same "
            f"node (2 MiB: {copy.huge_ns / 512:,.0f} ns per 4 KiB, {copy.huge_gbps:.1f} GB/s)")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready data."""
        fitted = self.fit()
        return {
            "host": asdict(self.host),
            "round": {
                "initiator_cpu": self.initiator_cpu,
                "points": [asdict(p) | {"ns_per_change": round(p.ns_per_change, 1),
                                        "ns_per_null": round(p.ns_per_null, 1),
                                        "confirmed": p.confirmed} for p in self.points],
                "rounds_ns": {str(k): round(r, 1) for k, r in self.rounds()},
                "slope_ns": None if fitted is None or fitted[0] is None else round(fitted[0], 1),
                "intercept_ns": None if fitted is None else round(fitted[1], 1),
                "note": self.note,
            },
            "copy": {name: round(value, 1) for name, value in asdict(self.copy).items()}
            | {"page_gbps": round(self.copy.page_gbps, 2), "huge_gbps": round(self.copy.huge_gbps, 2)},
            "profile": {name: value for name, (value, _) in self.profile().items()},
            "defaults": {name: getattr(Costs(), name) for name in self.profile()},
        }


def _ns(value: float) -> int:
    return max(round(value), 0)


# ------------------------------------------------------------------------------------------
# Measuring


def measure(quick: bool = False, report: Report | None = None) -> Calibration:
    """Measure the round against k = 0..min(CPUs - 1, 8) targets and the copy costs."""
    if not Path("/proc/interrupts").exists():
        raise InputError("calibrate needs Linux: /proc/interrupts is missing")
    say = report or (lambda _: None)
    cpus = sorted(os.sched_getaffinity(0))
    host = _host(len(cpus))
    note = None
    points: tuple[RoundPoint, ...] = ()
    if len(cpus) < 2:
        note = "one CPU only: a shootdown round needs a second CPU to interrupt; copy costs only"
    elif _tlb_row() is None:
        note = "/proc/interrupts has no TLB row (not x86?): shootdowns cannot be confirmed"
    else:
        points = _measure_rounds(cpus[0], cpus[1:1 + MAX_TARGETS], quick, say)
        if not any(p.confirmed for p in points[1:]):
            note = ("the TLB row did not grow on the target CPUs (lazy or idle targets): "
                    "no round to report")
    say("copy bandwidth")
    copy = _measure_copy(quick)
    return Calibration(host, cpus[0], points, copy, note)


def _measure_rounds(initiator: int, targets: list[int], quick: bool,
                    say: Report) -> tuple[RoundPoint, ...]:
    passes = 5 if quick else 11
    slice_ns = int((2.5e9 if quick else 20e9) / (len(targets) + 1) / passes)
    flip, flip_map = _isolated_page()
    null, _null_map = _isolated_page()
    page = np.frombuffer(flip_map, dtype=np.uint8)[PAGE:2 * PAGE]
    page[:] = 1  # populated: a change of protection now has a PTE to change and flush
    # (k, per pass: ns per change, ns per null call, changes, deliveries seen)
    samples: dict[int, list[tuple[float, float, int, int]]] = {}
    with _pinned(initiator), _short_gil_waits():
        for rep in range(passes):  # the k interleaved, so that a drift of the host hits them all
            for k in range(len(targets) + 1):
                say(f"shootdown round: {k} of {len(targets)} targets, pass {rep + 1}/{passes}")
                with _hot_threads(targets[:k], page):
                    before = _tlb_row() or {}
                    changes, nulls = _flip(flip, null, page, slice_ns)
                    after = _tlb_row() or {}
                seen = sum(after.get(c, 0) - before.get(c, 0) for c in targets[:k])
                share = seen / (2 * len(changes) * k) if k else 1.0
                samples.setdefault(k, []).append(
                    (_slowest_share_median(changes, share), float(np.median(nulls)),
                     2 * len(changes), seen))
    points = []
    for k, rows in samples.items():
        changes_made = sum(r[2] for r in rows)
        points.append(RoundPoint(
            k, tuple(targets[:k]), statistics.median(r[0] for r in rows),
            statistics.median(r[1] for r in rows), changes_made, changes_made * k,
            sum(r[3] for r in rows)))
    return tuple(points)


def _slowest_share_median(times: list[int], share: float) -> float:
    """The median of the slowest ``share`` of the calls. Not every change reaches every target:
    a target CPU that is running another task at that moment is skipped (it flushes when it
    comes back to this mm), and on a KVM guest a preempted vCPU gets no IPI (the hypervisor
    flushes for it). Those calls are the fast ones; with every IPI delivered this is the
    median."""
    share = min(max(share, 0.02), 1.0)
    return float(np.quantile(np.asarray(times), 1.0 - share / 2))


def _flip(flip: int, null: int, page: np.ndarray[Any, Any], slice_ns: int) -> tuple[list[int], list[int]]:
    """Flip the page RW -> R -> RW (touching it in between) for slice_ns; return the ns of each
    RW -> R change and of each mprotect() of a never-touched page (no PTE: no flush). Timed one
    call at a time: a GIL hand-off or an interrupt costs milliseconds, and a median of single
    calls is not skewed by one, as a mean over a thousand calls would be."""
    protect, clock = _mprotect(), time.perf_counter_ns
    read, write = mmap.PROT_READ, mmap.PROT_READ | mmap.PROT_WRITE
    cap = 1 << 16
    changes, nulls = [0] * cap, [0] * cap  # preallocated: no allocation inside the loop
    count = 0
    end = clock() + slice_ns
    while count < cap:
        t0 = clock()
        protect(flip, PAGE, read)  # a PTE loses write permission: a flush round
        t1 = clock()
        protect(flip, PAGE, write)
        page[0] = count & 0xFF  # back in this CPU's TLB, written
        t2 = clock()
        protect(null, PAGE, read)
        t3 = clock()
        protect(null, PAGE, write)
        changes[count], nulls[count] = t1 - t0, t3 - t2
        count += 1
        if t3 > end:
            break
    return changes[:count], nulls[:count]


@contextmanager
def _short_gil_waits() -> Iterator[None]:
    """A thread waiting for the GIL asks for it after 0.1 ms instead of 5: the main thread,
    which takes the GIL back after every mprotect(), would otherwise keep a hot thread waiting
    (its CPU idle, so skipped by the shootdowns) for 5 ms at a time."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@contextmanager
def _hot_threads(cpus: list[int], page: np.ndarray[Any, Any]) -> Iterator[None]:
    """Threads of this process, one pinned to each CPU, running while the block runs. Each reads
    the flipped page over and over without the GIL, so its CPU stays in mm_cpumask and is
    neither idle nor lazy: every shootdown of the page must interrupt it."""
    # The page read HOT_ROWS times over in one call (it stays in L1): the GIL is let go for
    # milliseconds at a time. Between calls a thread must win the GIL back from the main
    # thread, which takes it back after every mprotect(); short calls would leave the thread
    # waiting for it most of the time, its CPU idle and lazy, skipped by the shootdowns.
    rows = np.broadcast_to(page, (HOT_ROWS, PAGE))
    stop = threading.Event()
    ready = [threading.Event() for _ in cpus]
    errors: list[tuple[int, BaseException]] = []

    def keep_hot(cpu: int, started: threading.Event) -> None:
        try:
            os.sched_setaffinity(0, {cpu})  # this thread only
            sink = np.zeros(PAGE, dtype=np.uint8)
            while True:
                np.maximum.reduce(rows, axis=0, out=sink)
                started.set()
                if stop.is_set():
                    return
        except BaseException as err:  # reported by the main thread
            errors.append((cpu, err))
            started.set()

    threads = [threading.Thread(target=keep_hot, args=(cpu, ev), daemon=True)
               for cpu, ev in zip(cpus, ready, strict=True)]
    for thread in threads:
        thread.start()
    try:
        for event in ready:
            event.wait(5.0)
        if errors:
            cpu, err = errors[0]
            raise InputError(f"cannot keep a thread running on CPU {cpu}: {err}")
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    """The calling thread on one CPU while the block runs."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def _isolated_page() -> tuple[int, mmap.mmap]:
    """A page with a VMA of its own (guard pages with PROT_NONE either side), so that changing
    its protection neither splits nor merges VMAs: only its PTE changes. Returns its address."""
    region = mmap.mmap(-1, 3 * PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    protect = _mprotect()
    for guard in (base, base + 2 * PAGE):
        if protect(guard, PAGE, PROT_NONE) != 0:
            raise InputError(f"mprotect() failed: {os.strerror(ctypes.get_errno())}")
    return base + PAGE, region


def _mprotect() -> Callable[[int, int, int], int]:
    libc = ctypes.CDLL(None, use_errno=True)  # CDLL: the GIL is released during the call
    function = libc.mprotect
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    result: Callable[[int, int, int], int] = function
    return result


def _tlb_row() -> dict[int, int] | None:
    """/proc/interrupts' TLB row: shootdowns handled, by CPU number (None if there is none)."""
    lines = Path("/proc/interrupts").read_text().splitlines()
    columns = [int(name[3:]) for name in lines[0].split() if name.startswith("CPU")]
    for line in lines[1:]:
        label, _, rest = line.partition(":")
        if label.strip() == "TLB":
            return dict(zip(columns, (int(x) for x in rest.split()[:len(columns)]), strict=True))
    return None


def _measure_copy(quick: bool) -> CopyFigures:
    """4 KiB and 2 MiB copies walking through 32 MiB buffers (past most L3 caches, as a
    migration's source is), minus the same number of 8-byte copies (Python's overhead)."""
    size = 32 << 20
    src, dst = np.ones(size, dtype=np.uint8), np.zeros(size, dtype=np.uint8)  # populated
    passes = 5 if quick else 15
    results: dict[int, list[float]] = {PAGE: [], HUGE: []}
    for _ in range(passes):
        for unit, chunk in ((PAGE, 64), (HUGE, 1)):
            pairs = [(dst[i:i + unit], src[i:i + unit]) for i in range(0, size, unit)]
            tiny = [(dst[i:i + 8], src[i:i + 8]) for i in range(0, size, unit)]
            results[unit].append(_chunk_median(pairs, chunk) - _chunk_median(tiny, chunk))
    return CopyFigures(statistics.median(results[PAGE]), min(results[PAGE]),
                       statistics.median(results[HUGE]), min(results[HUGE]), size >> 20)


def _chunk_median(pairs: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
                  chunk: int) -> float:
    """ns per copy, timed ``chunk`` copies at a time, the median chunk: a pass that this
    process spent partly off the CPU says nothing about the copy."""
    clock, copyto = time.perf_counter_ns, np.copyto
    per_copy = []
    for start in range(0, len(pairs), chunk):
        t0 = clock()
        for to, frm in pairs[start:start + chunk]:
            copyto(to, frm)
        per_copy.append((clock() - t0) / chunk)
    return float(np.median(per_copy))


def _host(cpus: int) -> Host:
    model, virtual = "unknown", False
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware") and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags":
                virtual = virtual or "hypervisor" in value.split()
    except OSError:
        pass
    nodes = len(list(Path("/sys/devices/system/node").glob("node[0-9]*"))) or 1
    return Host(platform.node(), platform.release(), model, cpus, nodes, virtual,
                datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


# ------------------------------------------------------------------------------------------
# The profile


def describe_host(host: Host) -> str:
    """One line: name, kernel, CPU model, CPUs and nodes."""
    return (f"{host.name} · Linux {host.kernel} · {host.cpu_model} · {host.cpus} "
            f"CPU{'s' if host.cpus != 1 else ''}, {host.nodes} NUMA node"
            f"{'s' if host.nodes != 1 else ''}"
            + (" · a virtual machine (IPIs go through the hypervisor)" if host.virtual else ""))


def render_profile(calibration: Calibration, command: str) -> str:
    """The TOML cost profile: a header saying where and how it was measured, then [costs] with
    each value's derivation in a comment. Checked to parse, with real Costs fields only."""
    host = calibration.host
    lines = [
        "# migviz cost profile: this host's shootdown round and copy costs, from migviz calibrate.",
        f"# host: {describe_host(host)}",
        f"# measured {host.date} with: {command}",
        "# Apply it to any command with --costs FILE (a later --set wins). Costs not listed keep",
        "# migviz's defaults (migviz scenarios costs). 'measured' = from this host; 'inferred' =",
        "# derived from a measured figure and migviz's defaults, as the comment says; 'kept' =",
        "# migviz's default, written so the profile is self-consistent.",
        "#",
    ]
    if calibration.note:
        lines.append(f"# shootdown round: not measured: {calibration.note}")
    else:
        lines += [
            "# round(k) = [t(k) - null(k)] - [t(0) - null(0)], where t(k) is the median time of one",
            "# mprotect() taking write permission off a page while threads of the process run on",
            f"# k other CPUs (initiator CPU {calibration.initiator_cpu}), and null(k) that of an "
            "mprotect() that changes no PTE.",
            "# When fewer IPIs arrive than changes are made (a target busy with another task, or a",
            "# preempted vCPU, is skipped), t(k) is the median of the slowest calls, as many as the",
            "# IPIs seen: those are the calls that waited for a round.",
        ]
        for point in calibration.points:
            lines.append(f"#   k={point.k}: t {point.ns_per_change:,.0f} ns, null "
                         f"{point.ns_per_null:,.0f} ns, TLB IPIs {point.deliveries_observed:,} of "
                         f"{point.deliveries_expected:,} expected"
                         + ("" if point.confirmed else " (not confirmed: left out)"))
        lines.append("# rounds: " + ", ".join(f"k={k}: {r:,.0f} ns" for k, r in calibration.rounds()))
        lines.append("# migviz's round to k targets of one node = ipi_send_ns + k * ipi_target_ns "
                     "+ 2 * ipi_latency_ns + ipi_handler_ns + invlpg_ns")
    lines += ["", "[costs]"]
    lines += [f"{name} = {value}  # {why}" for name, (value, why) in calibration.profile().items()]
    text = "\n".join(lines) + "\n"
    check_profile(text)
    return text


def check_profile(text: str) -> dict[str, int]:
    """The [costs] table of a profile, refusing one that does not parse or names a field that
    Costs does not have (what --costs would refuse)."""
    try:
        table = tomllib.loads(text).get("costs")
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"the profile does not parse: {err}") from None
    if not isinstance(table, dict):
        raise ValueError("the profile has no [costs] table")
    unknown = set(table) - set(Costs.model_fields)
    if unknown:
        raise ValueError(f"the profile names unknown costs: {', '.join(sorted(unknown))}")
    Costs(**table)  # every value valid
    return {str(k): int(v) for k, v in table.items()}
