"""Memory kept hot from threads pinned to chosen CPUs, so that moving its pages needs TLB
shootdowns to those CPUs.

When ``try_to_migrate_one()`` unmaps a page, the kernel flushes the TLBs of the CPUs that may
cache the mm's translations (``mm_cpumask()`` on x86), and nobody else's. To make a recording
show remote shootdowns, some other CPU must therefore be running the *same* mm, touching the
pages, while they move: so the memory and the threads are one process, each thread pinned to one
CPU with ``sched_setaffinity()`` (which, given 0, applies to the calling thread on Linux). The
touching is numpy work, which releases the GIL, so the threads really run at once, one per CPU.

Used in-process (``with HotMemory(cpus=[1], mib=64): ...``) by ``migviz record``, or as a
child process that ``migratepages PID FROM TO`` can move on a host with several nodes::

    python -m core.hot --cpus 1 --mib 64     # prints its pid, keeps going until killed
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import TracebackType

import numpy as np
import numpy.typing as npt

from core.errors import InputError
from core.host import format_cpulist, parse_cpulist

PAGE_SIZE = mmap.PAGESIZE
MIB = 1 << 20
START_TIMEOUT_S = 10.0  # for every thread to pin itself; a healthy host needs milliseconds
CPU_ONLINE = "/sys/devices/system/cpu/online"


def parse_cpus(text: str) -> list[int]:
    """``1,2``, ``1-3`` or ``none`` as a sorted list of CPU numbers (``none``: empty).
    ValueError naming the bad part otherwise."""
    if text.strip().lower() == "none":
        return []
    try:
        cpus = parse_cpulist(text)
    except ValueError:
        raise ValueError("not a CPU list (e.g. 1,2 or 1-3 or none)") from None
    if not cpus:
        raise ValueError("no CPU given (e.g. 1,2 or 1-3 or none)")
    return sorted(set(cpus))


def usable_cpus() -> list[int]:
    """The CPUs this process may run a thread on: online, and in its affinity mask."""
    allowed = os.sched_getaffinity(0)
    try:
        with open(CPU_ONLINE, encoding="ascii") as file:
            online = set(parse_cpulist(file.read()))
    except (OSError, ValueError):
        online = allowed
    return sorted(allowed & online)


def default_hot_cpus() -> list[int]:
    """Every usable CPU but the first: the first is left to the task that migrates."""
    return usable_cpus()[1:]


def check_cpus(cpus: Sequence[int]) -> None:
    """InputError naming the first CPU that no thread of this process can run on."""
    usable = usable_cpus()
    for cpu in cpus:
        if cpu not in usable:
            raise InputError(f"no CPU {cpu} that this process can run on (usable CPUs: "
                             f"{format_cpulist(usable) or 'none'})")


class HotMemory:
    """``mib`` MiB of anonymous memory and one thread per CPU of ``cpus``, pinned to it, that
    writes one byte of every page, over and over, until ``stop()`` (or the end of a ``with``).
    Thread *i* writes byte *i* of each page: every thread uses every PTE, and no two threads
    race on a byte (a read-modify-write race would lose increments, and with them the proof
    that a page was written).

    The memory is mapped with ``mmap`` and advised MADV_NOHUGEPAGE, so it is made of base pages
    (one PTE each, as in migviz's scenarios) even where transparent huge pages are always on.
    Every page is touched before the threads start, so that all of it is resident: from the
    CPUs ``first_touch`` if given, which puts the pages on their node (first-touch placement),
    so that ``migratepages`` has something to move from there."""

    def __init__(self, cpus: Sequence[int], mib: float,
                 first_touch: Sequence[int] | None = None) -> None:
        if not mib > 0:
            raise ValueError(f"mib must be more than 0, got {mib}")
        self.cpus = tuple(cpus)
        self.first_touch = tuple(first_touch) if first_touch else None
        pages = max(1, -(-round(mib * MIB) // PAGE_SIZE))
        self.size = pages * PAGE_SIZE
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._thread_ids = [0] * len(self.cpus)
        self._passes = [0] * len(self.cpus)
        self._errors: list[OSError | None] = [None] * len(self.cpus)
        self._ready = threading.Barrier(len(self.cpus) + 1)
        self._map: mmap.mmap | None = None
        self._memory: npt.NDArray[np.uint8] | None = None

    def __enter__(self) -> HotMemory:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def thread_ids(self) -> tuple[int, ...]:
        """The kernel's id (tid) of each thread, in the order of ``cpus``."""
        return tuple(self._thread_ids)

    @property
    def passes(self) -> tuple[int, ...]:
        """How many times each thread has written every page so far."""
        return tuple(self._passes)

    def page_bytes(self) -> npt.NDArray[np.uint8]:
        """A copy of the bytes the threads write: row *i*, column *p* is thread *i*'s byte of
        page *p*."""
        return np.stack([self._touched(index) for index in range(len(self.cpus))])

    def start(self) -> None:
        """Map and fault in the memory, start the threads and wait until each is pinned.
        InputError if a thread cannot run on its CPU."""
        self._map = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            self._map.madvise(mmap.MADV_NOHUGEPAGE)
        self._memory = np.frombuffer(self._map, dtype=np.uint8)
        before = os.sched_getaffinity(0)
        if self.first_touch:
            os.sched_setaffinity(0, self.first_touch)
        try:
            self._touched(0)[:] = 1  # fault every page in now, from this thread
        finally:
            os.sched_setaffinity(0, before)
        for index, cpu in enumerate(self.cpus):
            thread = threading.Thread(target=self._keep_hot, args=(index, cpu),
                                      name=f"hot-cpu{cpu}", daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            self._ready.wait(START_TIMEOUT_S)
        except threading.BrokenBarrierError:
            self.stop()
            raise InputError("the hot-memory threads did not start in time") from None
        failed = [(cpu, err) for cpu, err in zip(self.cpus, self._errors, strict=True) if err]
        if failed:
            self.stop()
            cpu, err = failed[0]
            raise InputError(f"cannot run a thread on CPU {cpu}: {err.strerror or err}")

    def stop(self) -> None:
        """Stop the threads and unmap the memory (idempotent)."""
        self._stop.set()
        self._ready.abort()  # a thread still at the barrier leaves it
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._memory = None
        if self._map is not None:
            # BufferError: a caller still holds a view; the collector unmaps it later.
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None

    def _touched(self, index: int) -> npt.NDArray[np.uint8]:
        """Byte ``index`` of every page: what thread ``index`` writes."""
        if self._memory is None:
            raise RuntimeError("HotMemory is not started")
        return self._memory[index % PAGE_SIZE::PAGE_SIZE]

    def _keep_hot(self, index: int, cpu: int) -> None:
        try:
            os.sched_setaffinity(0, {cpu})  # 0: this thread
        except OSError as err:
            self._errors[index] = err
        tid = threading.get_native_id()
        self._thread_ids[index] = tid
        _name_thread(tid, f"hot-cpu{cpu}")  # what a trace's comm column shows
        try:
            self._ready.wait(START_TIMEOUT_S)
        except threading.BrokenBarrierError:
            return
        if self._errors[index] is not None:
            return
        pages = self._touched(index)
        while not self._stop.is_set():
            # One byte per page: every PTE gets used, and the TLB entry with it. np.add runs
            # without the GIL, so each thread's loop is really on its own CPU.
            np.add(pages, 1, out=pages)
            self._passes[index] += 1


def _name_thread(tid: int, name: str) -> None:
    with contextlib.suppress(OSError), open(f"/proc/self/task/{tid}/comm", "w",
                                             encoding="ascii") as file:
        file.write(name[:15])  # TASK_COMM_LEN; only a nicer name in the trace's comm column


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m core.hot``: keep memory hot until SIGTERM or SIGINT. Prints the pid on
    standard output once the memory is resident and every thread runs on its CPU."""
    parser = argparse.ArgumentParser(
        prog="python -m core.hot",
        description="Keep memory hot from threads pinned to CPUs, for migratepages PID FROM TO.")
    parser.add_argument("--cpus", help="CPUs, e.g. 1,2 or 1-3 (default: every CPU but the first)")
    parser.add_argument("--mib", type=float, default=64.0, help="MiB of memory (default 64)")
    parser.add_argument("--first-touch", metavar="CPUS",
                        help="fault the memory in from these CPUs, so that it is allocated on "
                        "their node (default: wherever this process runs)")
    args = parser.parse_args(argv)
    try:
        cpus = default_hot_cpus() if args.cpus is None else _cpus_option("--cpus", args.cpus)
        first_touch = _cpus_option("--first-touch", args.first_touch or "none") or None
        if not args.mib > 0:
            raise InputError(f"--mib must be more than 0, got {args.mib}")
    except InputError as err:
        print(f"core.hot: error: {err}", file=sys.stderr)
        return 2
    stopped = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopped.set()

    # A handler, not sigwait(): numpy's own threads, started at import, may be the ones a
    # signal is delivered to; Python runs the handler in the main thread whichever it was.
    for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(stop, on_signal)
    try:
        with HotMemory(cpus, args.mib, first_touch):
            print(os.getpid(), flush=True)
            while not stopped.wait(0.2):  # a timeout, so that the main thread runs handlers
                pass
    except InputError as err:
        print(f"core.hot: error: {err}", file=sys.stderr)
        return 2
    return 0


def _cpus_option(option: str, text: str) -> list[int]:
    """A CPU-list option, checked: InputError naming the option otherwise."""
    try:
        cpus = parse_cpus(text)
        check_cpus(cpus)
    except (ValueError, InputError) as err:
        raise InputError(f"{option} {text}: {err}") from None
    return cpus


if __name__ == "__main__":
    raise SystemExit(main())
