"""A recorded trace as something to step through: the state after the first ``i`` lines.

:class:`Replay` is to a recording what the engine is to a scenario, for the replay screen: it
moves a cursor over the trace's lines (one line at a time, by phase, by ``migrate_pages()``
call, back, to a time, to the next breakpoint) and says what the trace shows at that instant in a
frozen :class:`ReplayView`. The view is a function of the cursor alone, computed from prefix
sums and the lines' indices, so stepping back is exact and costs no more than stepping forward.

The focus is the call of the last line that belongs to one (a receipt belongs to the call of the
send it answers); between calls, the call that ended last. Its pages are drawn by state:

- ``waiting``: not yet unmapped at this instant (the kernel logs nothing for pages it has not
  reached; only pages that do get a migration entry within the call are known);
- ``unmapped``: a migration entry, no send of the call since;
- ``flushed``: unmapped, and the call has sent a shootdown since;
- ``restored``: ``remove_migration_pte``/``_pmd`` logged (moved, or put back on failure: the line
  alone does not say which).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

import numpy as np
import numpy.typing as npt

from core.kernel_trace import (
    LOCAL_MM_SHOOTDOWN,
    LOCAL_SHOOTDOWN,
    REMAP_EVENTS,
    REMOTE_SEND,
    REMOTE_WRONG_CPU,
    UNMAP_EVENTS,
    VECTOR_EVENTS,
    Call,
    Line,
    Recording,
    Round,
)


class PageState(IntEnum):
    WAITING = 0
    UNMAPPED = 1
    FLUSHED = 2
    RESTORED = 3


class CallPhase(Enum):
    """Where the focus call is, as its lines show it."""

    NONE = "no call yet"
    STARTED = "isolated, nothing unmapped yet"
    UNMAP = "unmap"
    FLUSH = "flush"
    MOVE = "move"
    DONE = "returned"


class Stop(Enum):
    """What a breakpoint can stop at."""

    CALL_START = "call"  # mm_migrate_pages_start
    SEND = "send"  # a shootdown sent (tlb_flush reason 4)
    SHOOTDOWN = "shootdown"  # a CPU handled one (reason 1 or 5)
    FAILURE = "failure"  # a call returned with nr_failed > 0
    UNMAP = "unmap"  # a migration entry set


@dataclass(frozen=True, slots=True)
class CpuView:
    cpu: int
    shootdowns: int  # remote shootdowns handled so far (the TLB row of /proc/interrupts)
    vectors: int  # call_function*_entry lines so far
    sends: int  # remote ipi sends so far
    local_flushes: int  # reason 2 and 3 lines so far
    migrating: bool  # a migrate_pages() call of a task on this CPU is open
    last: str  # the last line this CPU logged, as event: payload ("" if none yet)


@dataclass(frozen=True, slots=True)
class ReplayView:
    """What the trace shows after its first ``position`` lines."""

    position: int
    lines: int
    time_ns: int  # since the trace's first line
    duration_ns: int
    call: Call | None  # the focus call
    calls_started: int
    calls_finished: int
    phase: CallPhase
    page_state: npt.NDArray[np.int8]  # the focus call's pages, in unmap order
    page_order: npt.NDArray[np.int8]
    round: Round | None  # the focus call's latest send so far
    receipts: int  # of that send, so far
    call_rounds: int  # the focus call's sends so far
    pgmigrate_success: int  # of the calls returned so far
    pgmigrate_fail: int
    sends: int
    shootdowns: int
    cpus: tuple[CpuView, ...]
    last: Line | None
    recent: tuple[Line, ...]
    done: bool


class Replay:
    """A cursor over a recording's lines."""

    def __init__(self, recording: Recording, *, recent: int = 200) -> None:
        self.recording = recording
        self.position = 0
        self._recent = recent
        lines = recording.lines
        n = len(lines)
        self.count = n
        cpus = recording.cpus
        cpu = np.fromiter((line.cpu for line in lines), dtype=np.int64, count=n)
        self._times = np.fromiter((line.time_ns for line in lines), dtype=np.int64, count=n)
        kind = np.zeros(n, dtype=np.int8)  # 1 send, 2 receipt, 3 vector, 4 local flush
        for index, line in enumerate(lines):
            if line.event == "tlb_flush":
                reason = line.reason
                kind[index] = 2 if recording.is_receipt(index) else \
                    {REMOTE_SEND: 1, LOCAL_SHOOTDOWN: 4, LOCAL_MM_SHOOTDOWN: 4,
                     REMOTE_WRONG_CPU: 4}.get(reason, 0)
            elif line.event in VECTOR_EVENTS:
                kind[index] = 3
        self._kind = kind
        # Per kind and CPU: the indices of such lines, so that how many come before a position
        # is one binary search (memory grows with the lines, not with lines × CPUs).
        self._hits: dict[int, list[npt.NDArray[np.int64]]] = {}
        self._hits_all: dict[int, npt.NDArray[np.int64]] = {}
        for code in (1, 2, 3, 4):
            hits = np.flatnonzero(kind == code)
            self._hits_all[code] = hits
            self._hits[code] = [hits[cpu[hits] == c] for c in range(cpus)]
        calls = recording.calls
        self._call_starts = np.array([call.start_line for call in calls], dtype=np.int64)
        self._call_ends = np.array([call.end_line if call.finished else n + 1 for call in calls],
                                   dtype=np.int64)
        ends_sorted = np.sort(self._call_ends)
        self._ends_sorted = ends_sorted
        succeeded = np.zeros(n + 1, dtype=np.int64)
        failed = np.zeros(n + 1, dtype=np.int64)
        for call in calls:
            if call.finished:
                succeeded[call.end_line + 1] += call.succeeded
                failed[call.end_line + 1] += call.failed
        self._succeeded = np.cumsum(succeeded)
        self._failed = np.cumsum(failed)
        # The focus call of each position (the position after line i is applied).
        focus = np.full(n + 1, -1, dtype=np.int64)
        current = -1
        for index, owner in enumerate(recording.line_call):
            if owner >= 0:
                current = owner
            focus[index + 1] = current
        self._focus = focus
        self._cpu_lines = [np.flatnonzero(cpu == c) for c in range(cpus)]
        self._phases = self._phase_table()

    # ------------------------------------------------------------------------------------------
    # Moving

    @property
    def done(self) -> bool:
        return self.position >= self.count

    @property
    def time_ns(self) -> int:
        """Time of the last line applied, since the first line."""
        if self.position == 0:
            return 0
        return int(self._times[self.position - 1] - self._times[0])

    def next_time_ns(self) -> int | None:
        """Time of the next line, since the first line; None at the end."""
        if self.done:
            return None
        return int(self._times[self.position] - self._times[0])

    def step(self, lines: int = 1) -> None:
        self.position = min(self.position + max(lines, 0), self.count)

    def back(self, lines: int = 1) -> None:
        self.position = max(self.position - max(lines, 0), 0)

    def reset(self) -> None:
        self.position = 0

    def run_until(self, time_ns: float) -> int:
        """Apply every line up to this time since the first; returns how many were applied."""
        if not self.count:
            return 0
        target = np.searchsorted(self._times - self._times[0], time_ns, side="right")
        before = self.position
        self.position = max(self.position, int(target))
        return self.position - before

    def step_phase(self) -> None:
        """Apply lines until the focus call's phase (or the focus call) changes."""
        start = self._phase_key(self.position)
        while not self.done:
            self.position += 1
            if self._phase_key(self.position) != start:
                return

    def step_call(self) -> None:
        """Inside a call: to its return; between calls: to the next call's start."""
        if self.done:
            return
        focus = int(self._focus[self.position])
        if focus >= 0 and self.position <= self._call_ends[focus] and \
                self.recording.calls[focus].finished:
            self.position = int(self._call_ends[focus]) + 1
            return
        later = self._call_starts[self._call_starts >= self.position]
        self.position = int(later[0]) + 1 if later.size else self.count

    def run_to_stop(self, stops: frozenset[Stop], limit: int | None = None) -> Line | None:
        """Apply lines up to and including the next one a breakpoint stops at (at most
        ``limit`` lines); returns that line, or None if none came."""
        end = self.count if limit is None else min(self.count, self.position + limit)
        for index in range(self.position, end):
            if self.stops_at(index, stops):
                self.position = index + 1
                return self.recording.lines[index]
        self.position = end
        return None

    def stops_at(self, index: int, stops: frozenset[Stop]) -> bool:
        line = self.recording.lines[index]
        kind = int(self._kind[index])
        return bool(
            (Stop.CALL_START in stops and line.event == "mm_migrate_pages_start")
            or (Stop.SEND in stops and kind == 1)
            or (Stop.SHOOTDOWN in stops and kind == 2)
            or (Stop.UNMAP in stops and line.event in UNMAP_EVENTS)
            or (Stop.FAILURE in stops and line.event == "mm_migrate_pages"
                and line.number_of("nr_failed") > 0))

    def _phase_key(self, position: int) -> tuple[int, CallPhase]:
        return int(self._focus[position]), self._phases[position]

    def _phase_table(self) -> list[CallPhase]:
        """The focus call's phase at every position, in one pass: the phase is the kind of the
        call's latest unmap, send or restore before the position (STARTED if none yet), DONE
        once its end line is applied."""
        recording = self.recording
        step: dict[int, tuple[int, CallPhase]] = {}  # line -> (call, the phase its line starts)
        for call in recording.calls:
            for page in call.pages:
                step[page.unmap_line] = (call.index, CallPhase.UNMAP)
                if page.remap_line >= 0:
                    step[page.remap_line] = (call.index, CallPhase.MOVE)
            for number in call.rounds:
                step[recording.rounds[number].line] = (call.index, CallPhase.FLUSH)
        latest: dict[int, CallPhase] = {}
        phases = [CallPhase.NONE]
        for index in range(self.count):
            if index in step:
                owner, phase = step[index]
                latest[owner] = phase
            focus = int(self._focus[index + 1])
            if focus < 0:
                phases.append(CallPhase.NONE)
                continue
            call = recording.calls[focus]
            done = call.finished and call.end_line <= index
            phases.append(CallPhase.DONE if done else latest.get(focus, CallPhase.STARTED))
        return phases

    # ------------------------------------------------------------------------------------------
    # Looking

    def view(self) -> ReplayView:
        recording = self.recording
        position = self.position
        focus = int(self._focus[position])
        call = recording.calls[focus] if focus >= 0 else None
        states = np.zeros(len(call.pages) if call else 0, dtype=np.int8)
        orders = np.zeros_like(states)
        sends: list[int] = []
        current: Round | None = None
        receipts = 0
        if call is not None:
            sends = [recording.rounds[number].line for number in call.rounds
                     if recording.rounds[number].line < position]
            latest_send = max(sends, default=-1)
            for index, page in enumerate(call.pages):
                orders[index] = page.order
                if 0 <= page.remap_line < position:
                    states[index] = PageState.RESTORED
                elif page.unmap_line < position:
                    states[index] = PageState.FLUSHED if latest_send > page.unmap_line \
                        else PageState.UNMAPPED
            if sends:
                current = recording.rounds[call.rounds[len(sends) - 1]]
                receipts = sum(1 for receipt in current.receipts if receipt.line < position)
        started = int(np.searchsorted(self._call_starts, position, side="left"))
        finished = int(np.searchsorted(self._ends_sorted, position, side="left"))
        open_cpus = {c.cpu for c in recording.calls[:started]
                     if c.start_line < position and not (c.finished and c.end_line < position)}
        cpu_views = []
        for cpu in range(recording.cpus):
            mine = self._cpu_lines[cpu]
            k = int(np.searchsorted(mine, position, side="left"))
            last = recording.lines[int(mine[k - 1])] if k else None
            cpu_views.append(CpuView(
                cpu=cpu, shootdowns=self._before(2, position, cpu),
                vectors=self._before(3, position, cpu), sends=self._before(1, position, cpu),
                local_flushes=self._before(4, position, cpu),
                migrating=cpu in open_cpus,
                last=f"{last.event}: {last.payload}" if last else ""))
        last_line = recording.lines[position - 1] if position else None
        return ReplayView(
            position=position, lines=self.count, time_ns=self.time_ns,
            duration_ns=recording.duration_ns, call=call, calls_started=started,
            calls_finished=finished, phase=self._phases[position],
            page_state=states, page_order=orders, round=current, receipts=receipts,
            call_rounds=len(sends), pgmigrate_success=int(self._succeeded[position]),
            pgmigrate_fail=int(self._failed[position]),
            sends=self._before(1, position), shootdowns=self._before(2, position),
            cpus=tuple(cpu_views),
            last=last_line,
            recent=tuple(recording.lines[max(0, position - self._recent):position]),
            done=self.done)

    def _before(self, code: int, position: int, cpu: int | None = None) -> int:
        """How many lines of this kind (on this CPU) come before the position."""
        hits = self._hits_all[code] if cpu is None else self._hits[code][cpu]
        return int(np.searchsorted(hits, position, side="left"))

    def page_lines(self, addr: int) -> list[Line]:
        """Every migration-entry line of this address in the trace, in time order."""
        wanted = UNMAP_EVENTS + REMAP_EVENTS
        return [line for line in self.recording.lines
                if line.event in wanted and line.number_of("addr") == addr]
