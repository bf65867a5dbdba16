"""The model beside the kernel: rebuild each recorded ``migrate_pages()`` call as a scenario, run
it, and set the kernel's counts beside the model's.

For each call that unmapped anything the scenario is built from the recording alone:

- its folios: the call's unmapped pages in their order, by folio order (a PTE-mapped folio of
  order k logs 2^k ``set_migration_pte`` lines, a PMD-mapped THP one ``set_migration_pmd``);
- the migrating task on the CPU that logged the call (``initiator_cpu``);
- ``mm_cpumask``: every CPU that answered a shootdown anywhere in the trace (the recording cannot
  see a mask directly; these are the CPUs where the process ran), minus the sender;
- lazy CPUs: those of the mask that answered none of this call's sends, though it sent some
  (a CPU that was idle, or ran another mm, is skipped by the kernel's send);
- the shape: batched (Linux 6.3 and later) if the call unmapped more than one PTE before its
  first send or sent a full flush (a batch's flush is one), else serial; ``moves = 1``; the
  batch limit of the kernel (512 pages).

Pages the kernel failed to migrate without unmapping them (isolation failures, busy pages:
``nr_failed`` with no migration entry) have no line saying why; the model is not given them, and
the comparison says so.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.engine import Engine
from core.events import EventKind
from core.folios import PMD_ORDER
from core.kernel_trace import Call, Recording
from core.scenario import Scenario, scenario_from_dict

KERNEL_BATCH_PAGES = 512  # NR_MAX_BATCHED_MIGRATION


def mask_cpus(recording: Recording) -> list[int]:
    """CPUs that answered a shootdown anywhere in the trace."""
    return sorted({receipt.cpu for round_ in recording.rounds for receipt in round_.receipts})


def call_scenario(recording: Recording, call: Call) -> tuple[Scenario, str]:
    """The scenario that matches one call, and its shape (serial or batched)."""
    sender = call.cpu
    answered = {receipt.cpu for number in call.rounds
                for receipt in recording.rounds[number].receipts}
    mask = [cpu for cpu in mask_cpus(recording) if cpu != sender]
    lazy = [cpu for cpu in mask if cpu not in answered] if call.rounds else []
    folios: list[dict[str, int]] = []
    lines_per_folio: Counter[tuple[int, int]] = Counter()
    for page in call.pages:
        order = PMD_ORDER if page.pmd else page.order
        key = (order, page.addr >> (12 + order))
        lines_per_folio[key] += 1
        if lines_per_folio[key] == 1:  # a folio's first PTE
            if folios and folios[-1]["order"] == order:
                folios[-1]["count"] += 1
            else:
                folios.append({"order": order, "count": 1})
    first_send = recording.rounds[call.rounds[0]].line if call.rounds else None
    before = sum(1 for page in call.pages if first_send is None or page.unmap_line < first_send)
    # A 6.3 batch flush is a full flush of deferred unmaps (its send says pages:-1); 6.2 flushes
    # each PTE as it clears it (pages:1 or 512, before the entry's line).
    full = any(recording.rounds[number].pages < 0 for number in call.rounds)
    mode = "batched" if before > 1 or full or not call.rounds else "serial"
    cpus = max(recording.cpus, sender + 1, 2)
    data: dict[str, Any] = {
        "name": f"call {call.index + 1}",
        "description": f"migrate_pages() call {call.index + 1} of {recording.source}",
        "seed": 1,
        "topology": {"nodes": 2 if cpus >= 2 else 1, "cpus": cpus},
        "memory": {"folios": folios},
        "workload": {"threads": len(mask), "cpus": mask, "lazy_cpus": lazy},
        "migration": {"mode": mode, "initiator_cpu": sender, "moves": 1,
                      "batch_pages": KERNEL_BATCH_PAGES},
    }
    return scenario_from_dict(data, f"{recording.source}: call {call.index + 1}"), mode


def _kernel_side(recording: Recording, call: Call) -> dict[str, Any]:
    rounds = [recording.rounds[number] for number in call.rounds]
    return {
        "unmapped_ptes": len(call.pages),
        "restored_ptes": sum(page.remap_line >= 0 for page in call.pages),
        "rounds": len(rounds),
        "deliveries": sum(len(round_.receipts) for round_ in rounds),
        "pages_per_round": [round_.pages for round_ in rounds],
        "full_flushes": sum(round_.pages < 0 for round_ in rounds),
        "receipt_pages": sorted({receipt.pages for round_ in rounds
                                 for receipt in round_.receipts}),
        "pgmigrate_success": call.succeeded,
        "pgmigrate_fail": call.failed,
    }


def _model_side(scenario: Scenario) -> dict[str, Any]:
    engine = Engine(scenario, checkpoints=False, history=1)
    sends: list[int] = []
    receipt_pages: set[int] = set()
    unmapped = restored = deliveries = 0
    for event in engine.iter_events():
        if event.kind is EventKind.FLUSH_SEND:
            sends.append(event.pages)
        elif event.kind is EventKind.IPI_RECV:
            deliveries += 1
            receipt_pages.add(event.pages)
        elif event.kind is EventKind.UNMAP:
            unmapped += event.pages
        elif event.kind in (EventKind.REMAP, EventKind.RESTORE):
            restored += event.pages
    summary = engine.summary()
    return {
        "unmapped_ptes": unmapped,
        "restored_ptes": restored,
        "rounds": len(sends),
        "deliveries": deliveries,
        "pages_per_round": sends,
        "full_flushes": sum(pages < 0 for pages in sends),
        "receipt_pages": sorted(receipt_pages),
        "pgmigrate_success": summary.pgmigrate_success,
        "pgmigrate_fail": summary.pgmigrate_fail,
    }


def _why(kernel: dict[str, Any], model: dict[str, Any], call: Call, lazy: list[int]) -> list[str]:
    notes: list[str] = []
    if call.failed:
        notes.append(f"the kernel failed {call.failed} page(s) without a line saying why "
                     "(isolation or a busy page); the model was given only the unmapped ones")
    if kernel["rounds"] != model["rounds"]:
        notes.append("a different number of sends: the kernel's flushes depend on CPUs and "
                     "generations the trace does not show (a sender with no other CPU in the "
                     "mask flushes locally, without a send)")
    elif kernel["deliveries"] != model["deliveries"]:
        notes.append("a different number of receipts: a CPU may have left the mm between sends")
    if lazy:
        notes.append(f"CPU {', '.join(map(str, lazy))} answered none of this call's sends: "
                     "modelled as lazy (idle, or running another mm)")
    if 0 in kernel["receipt_pages"] and 0 not in model["receipt_pages"]:
        notes.append("a receiver logged pages:0: its TLB was already current when the IPI came "
                     "(it had flushed meanwhile, e.g. on a switch of mm); the model's threads "
                     "never leave their CPU")
    shared = len(call.pages) - len({page.addr for page in call.pages})
    if shared > 0 and kernel["unmapped_ptes"] != model["unmapped_ptes"]:
        notes.append(f"{shared} migration entr{'y' if shared == 1 else 'ies'} more than "
                     "addresses: a page that several processes map at the same address (forked "
                     "ones) gets an entry per mapping; the model maps each folio once")
    extra = kernel["pgmigrate_success"] - model["pgmigrate_success"]
    if extra > 0:
        notes.append(f"the kernel moved {extra} page(s) more than it unmapped: pages no process "
                     "mapped (page cache, or freed meanwhile) move without a migration entry, so "
                     "without a line")
    elif extra < 0:
        notes.append("the model moved pages the kernel counted as failed after unmapping them "
                     "(they were restored: remove_migration_pte does not say which)")
    return notes


def against_model(recording: Recording) -> dict[str, Any]:
    """Per call that unmapped something: the kernel's counts, the model's, and why they differ."""
    calls = []
    for call in recording.calls:
        if not call.finished or not call.pages:
            continue
        scenario, mode = call_scenario(recording, call)
        kernel = _kernel_side(recording, call)
        model = _model_side(scenario)
        same = [key for key in kernel if kernel[key] == model[key]]
        calls.append({
            "call": call.index + 1, "task": f"{call.comm}-{call.pid}", "cpu": call.cpu,
            "mode": call.mode, "reason": call.reason, "shape": mode,
            "mask": list(scenario.workload.cpus), "lazy": list(scenario.workload.lazy_cpus),
            "kernel": kernel, "model": model,
            "agree": [key for key in kernel if key in same],
            "differ": [key for key in kernel if key not in same],
            "why": _why(kernel, model, call, list(scenario.workload.lazy_cpus)),
        })
    skipped = [call.index + 1 for call in recording.calls if call.finished and not call.pages]
    return {"source": recording.source, "calls": calls,
            "calls_without_unmaps": skipped,
            "unfinished_calls": [call.index + 1 for call in recording.calls if not call.finished]}
