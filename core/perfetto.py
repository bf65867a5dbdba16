"""A run as a Perfetto-loadable trace (the Chrome JSON trace-event format, ui.perfetto.dev).

One track per CPU: the migrating task's steps as slices on its CPU (unmap, each shootdown round
from send to the last acknowledgement, each copy through its remap, waits), every IPI handler as
a slice on its target CPU, and two extra tracks for the migrate_pages() calls and their batches.
Retries and failures are instant events; IPIs delivered are a counter track.

Under NUMA balancing the process's threads migrate: each thread's calls (one folio each), their
steps and the rounds it sends are slices on its own CPU's track, where its hinting faults, its
scans (change_prot_numa) and its local flushes are instant events; the calls of different
threads overlap in time, so they get no shared track.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from core.events import Errno, Event, EventKind, explain
from core.flush import model_class
from core.scenario import Scenario
from core.tlb import CpuRole, Machine

PID = 1
CALLS_TID = 1000  # track of migrate_pages() calls
BATCHES_TID = 1001  # track of batches


def _us(ns: int) -> float:
    return ns / 1000.0


class PerfettoWriter:
    """Turns events into trace-event dicts; keeps the open slices of the migrating task."""

    def __init__(self, scenario: Scenario) -> None:
        self.machine = Machine(scenario)
        self.mechanism = model_class(self.machine, scenario.topology.arch).mechanism
        self.handler_ns = scenario.costs.ipi_handler_ns
        self.unmap_pte_ns = scenario.costs.unmap_pte_ns
        self.initiator = self.machine.initiator
        self.numa = self.machine.numa
        # Open slices by the CPU whose task (or thread, under NUMA balancing) runs them.
        # Rounds in flight by sender; under NUMA balancing one CPU can have two (a scan's and a
        # fault's: the model does not hold the scanning thread for its scan's whole flush).
        self._round_start: dict[int, list[Event]] = {}
        self._copy_start: dict[int, Event] = {}
        self._call_start: dict[int, Event] = {}
        self._batch_start: Event | None = None
        self._wait: Event | None = None
        self._delivered = 0

    def _track(self, event: Event) -> int:
        """The CPU track of a migrating step: the task's CPU, or the migrating thread's."""
        return event.cpu if self.numa else self.initiator

    def metadata(self) -> list[dict[str, Any]]:
        """Names for the process and its tracks."""
        names = {CpuRole.INITIATOR: "migratepages", CpuRole.WORKLOAD: "pmbench",
                 CpuRole.LAZY: "pmbench (lazy TLB)", CpuRole.IDLE: "idle"}
        rows: list[dict[str, Any]] = [
            {"ph": "M", "pid": PID, "name": "process_name", "args": {"name": "migviz"}},
        ]
        if not self.numa:
            rows += [{"ph": "M", "pid": PID, "tid": CALLS_TID, "name": "thread_name",
                      "args": {"name": "migrate_pages() calls"}},
                     {"ph": "M", "pid": PID, "tid": BATCHES_TID, "name": "thread_name",
                      "args": {"name": "batches"}}]
        for cpu, role in enumerate(self.machine.roles):
            rows.append({"ph": "M", "pid": PID, "tid": cpu, "name": "thread_name",
                         "args": {"name": f"cpu{cpu} · {names[role]} · node "
                                          f"{self.machine.node_of_cpu[cpu]}"}})
            rows.append({"ph": "M", "pid": PID, "tid": cpu, "name": "thread_sort_index",
                         "args": {"sort_index": cpu}})
        return rows

    def _slice(self, name: str, tid: int, start_ns: int, end_ns: int,
               args: dict[str, Any] | None = None) -> dict[str, Any]:
        row: dict[str, Any] = {"ph": "X", "pid": PID, "tid": tid, "name": name,
                               "ts": _us(start_ns), "dur": _us(max(end_ns - start_ns, 0))}
        if args:
            row["args"] = args
        return row

    def _instant(self, name: str, event: Event) -> dict[str, Any]:
        return {"ph": "i", "s": "t", "pid": PID, "tid": event.cpu, "name": name,
                "ts": _us(event.time_ns), "args": {"folio": event.folio,
                                                   "why": explain(event, self.mechanism)}}

    def rows(self, event: Event) -> list[dict[str, Any]]:
        """Trace-event rows that this event completes."""
        kind = event.kind
        out: list[dict[str, Any]] = []
        if self._wait is not None:
            wait, self._wait = self._wait, None
            out.append(self._slice("wait", self.initiator, wait.time_ns, event.time_ns,
                                   {"folio": wait.folio}))
        if kind is EventKind.MIGRATE_START:
            self._call_start[event.cpu] = event
        elif kind is EventKind.MIGRATE_END:
            out += self._close_batch(event.time_ns)
            start = self._call_start.pop(event.cpu, None)
            if start is not None and self.numa:
                out.append(self._slice(f"migrate_pages() call {event.move + 1}", event.cpu,
                                       start.time_ns, event.time_ns,
                                       {"folio": event.folio, "nr_succeeded": event.pages,
                                        "reason": "numa_misplaced"}))
            elif start is not None:
                out.append(self._slice(f"migrate_pages() move {event.move + 1}", CALLS_TID,
                                       start.time_ns, event.time_ns,
                                       {"nr_succeeded": event.pages, "nr_failed": event.arg}))
        elif kind is EventKind.BATCH_START and self.numa:
            pass  # a batch of the call's one folio: the call's slice says it all
        elif kind is EventKind.BATCH_START:
            out += self._close_batch(event.time_ns)
            self._batch_start = event
        elif kind is EventKind.UNMAP:
            began = event.time_ns - self.unmap_pte_ns * event.pages
            out.append(self._slice("unmap", self._track(event), began, event.time_ns,
                                   {"folio": event.folio, "ptes": event.pages,
                                    "flush deferred": bool(event.arg)}))
        elif kind is EventKind.FLUSH_SEND:
            self._round_start.setdefault(event.cpu, []).append(event)
        elif kind is EventKind.IPI_RECV:
            self._delivered += 1
            scope = "full flush" if event.pages == -1 else "INVLPG"
            out.append(self._slice(f"shootdown IPI ({scope})", event.cpu, event.time_ns,
                                   event.time_ns + self.handler_ns))
            out.append({"ph": "C", "pid": PID, "name": "IPIs delivered",
                        "ts": _us(event.time_ns), "args": {"IPIs": self._delivered}})
        elif kind is EventKind.FLUSH_DONE and (send := self._sent(event)) is not None:
            scope = "full flush" if send.pages == -1 else f"{send.pages} page(s)"
            out.append(self._slice(f"shootdown round → {len(send.targets)} CPUs ({scope})",
                                   self._track(send), send.time_ns, event.time_ns,
                                   {"targets": list(send.targets)}))
        elif kind is EventKind.COPY:
            self._copy_start[event.folio] = event
        elif kind is EventKind.REMAP:
            start_copy = self._copy_start.pop(event.folio, None)
            if start_copy is not None:
                out.append(self._slice("copy + remap", self._track(event), start_copy.time_ns,
                                       event.time_ns, {"folio": event.folio,
                                                       "pages": start_copy.pages}))
        elif kind is EventKind.WAIT:
            self._wait = event
        elif kind in (EventKind.UNMAP_FAIL, EventKind.MOVE_FAIL):
            out.append(self._instant(f"{kind.name.lower()} -{Errno(event.arg).name}", event))
        elif kind in (EventKind.RESTORE, EventKind.SPLIT):
            out.append(self._instant(kind.name.lower(), event))
        elif kind is EventKind.NUMA_SCAN:
            out.append(self._instant(f"change_prot_numa: {event.pages} page(s) PROT_NONE", event))
        elif kind is EventKind.NUMA_FAULT:
            out.append(self._instant("hinting fault (local: PTE restored)" if event.arg else
                                     "hinting fault (misplaced: migrate)", event))
        elif kind is EventKind.LOCAL_FLUSH:
            scope = "full" if event.pages == -1 else f"{event.pages} page(s)"
            out.append(self._instant(f"local flush ({scope})", event))
        return out

    def _sent(self, done: Event) -> Event | None:
        """The send a FLUSH_DONE completes: its sender's open round of the same kind."""
        open_rounds = self._round_start.get(done.cpu, [])
        for index, send in enumerate(open_rounds):
            if (send.round_kind, send.pages, send.targets) == \
                    (done.round_kind, done.pages, done.targets):
                return open_rounds.pop(index)
        return None

    def _close_batch(self, end_ns: int) -> list[dict[str, Any]]:
        if self._batch_start is None:
            return []
        start, self._batch_start = self._batch_start, None
        return [self._slice(f"batch {start.batch}", BATCHES_TID, start.time_ns, end_ns,
                            {"folios": start.arg, "pages": start.pages})]


def write_perfetto(events: Iterable[Event], scenario: Scenario) -> Iterator[str]:
    """The JSON text of a trace, in pieces (one trace event per line)."""
    writer = PerfettoWriter(scenario)
    yield '{"displayTimeUnit": "ns", "traceEvents": [\n'
    first = True
    rows: Iterable[dict[str, Any]] = writer.metadata()
    for event in _chain(rows, events, writer):
        yield ("" if first else ",\n") + json.dumps(event, separators=(",", ":"))
        first = False
    yield "\n]}\n"


def _chain(head: Iterable[dict[str, Any]], events: Iterable[Event],
           writer: PerfettoWriter) -> Iterator[dict[str, Any]]:
    yield from head
    for event in events:
        yield from writer.rows(event)
