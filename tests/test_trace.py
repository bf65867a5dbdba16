"""ftrace output: the kernel's own line layout and tracepoint formats, and counts that match."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.engine import Engine
from core.events import EventKind
from core.scenario import Mode, Scenario, load_scenario, scenario_from_dict
from core.summary import RunSummary
from core.trace import KERNELS, TraceFormatter, header, write_trace

ROOT = Path(__file__).resolve().parents[1]
# A real `perf script` trace of Linux 6.18 (tests/data/README.md says how it was recorded).
SAMPLE = ROOT / "tests" / "data" / "compaction-6.18.perf.txt"
# perf script's layout: comm pid [cpu] seconds.micros: subsystem:event: payload (no flags column).
REAL = re.compile(r"^\s*(\S+)\s+(\d+) \[(\d{3})\]\s+(\d+)\.(\d{6}):\s+(\w+):(\w+): (.*)$")

# comm-pid [cpu] flags seconds.micros: event: payload   (ftrace's `trace` file layout)
LINE = re.compile(
    r"^\s*(?P<comm>\S+)-(?P<pid>\d+)\s+\[(?P<cpu>\d{3})\] (?P<flags>[.dDhHsSbnNpP0-9]{5}) "
    r"\s*(?P<secs>\d+)\.(?P<micros>\d{6}): (?P<event>[a-z_:]+): (?P<payload>.*)$"
)
# Payload formats from include/trace/events/{migrate,tlb,thp}.h and irq_vectors.h (6.3).
FORMATS = {
    "mm_migrate_pages_start": r"mode=MIGRATE_SYNC reason=syscall_or_cpuset",
    "mm_migrate_pages": r"nr_succeeded=\d+ nr_failed=\d+ nr_thp_succeeded=\d+ nr_thp_failed=\d+ "
                        r"nr_thp_split=\d+ mode=MIGRATE_SYNC reason=syscall_or_cpuset",
    "set_migration_pte": r"addr=[0-9a-f]+, pte=[0-9a-f]+ order=\d",
    "remove_migration_pte": r"addr=[0-9a-f]+, pte=[0-9a-f]+ order=\d",
    "set_migration_pmd": r"addr=[0-9a-f]+, pmd=[0-9a-f]+",
    "remove_migration_pmd": r"addr=[0-9a-f]+, pmd=[0-9a-f]+",
    "tlb_flush": r"pages:-?\d+ reason:(remote ipi send \(4\)|remote shootdown \(1\))",
    "call_function_entry": r"vector=252",
    "call_function_exit": r"vector=252",
    "call_function_single_entry": r"vector=251",
    "call_function_single_exit": r"vector=251",
}


def trace_of(scenario: Scenario, mode: Mode, kernel: str = "6.3"
             ) -> tuple[list[str], RunSummary]:
    engine = Engine(scenario, mode, checkpoints=False, history=1)
    lines = list(write_trace(engine.iter_events(), TraceFormatter(scenario, kernel=kernel)))
    return lines, engine.summary()


def parse(lines: list[str]) -> list[re.Match[str]]:
    matches = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"not an ftrace line: {line!r}"
        matches.append(match)
    return matches


@pytest.mark.parametrize("name", ["tiny", "default", "contended", "thp"])
@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_every_line_has_the_kernel_format(name: str, mode: Mode) -> None:
    lines, _ = trace_of(load_scenario(name), mode)
    for match in parse(lines):
        event = match["event"]
        assert event in FORMATS, event
        assert re.fullmatch(FORMATS[event], match["payload"]), match.string


@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_trace_counts_match_the_counters(mode: Mode) -> None:
    scenario = load_scenario("contended")
    lines, summary = trace_of(scenario, mode)
    matches = parse(lines)
    payloads = [(m["event"], m["payload"]) for m in matches]
    sends = [p for e, p in payloads if e == "tlb_flush" and "remote ipi send" in p]
    received = [p for e, p in payloads if e == "tlb_flush" and "remote shootdown" in p]
    assert len(sends) == summary.nr_tlb_remote_flush
    assert len(received) == summary.nr_tlb_remote_flush_received
    starts = [p for e, p in payloads if e == "mm_migrate_pages_start"]
    assert len(starts) == scenario.migration.moves
    succeeded = sum(int(re.search(r"nr_succeeded=(\d+)", p)[1])  # type: ignore[index, misc]
                    for e, p in payloads if e == "mm_migrate_pages")
    assert succeeded == summary.pgmigrate_success
    # Every remote shootdown happens in an IPI handler, on the target CPU.
    for match in matches:
        if match["event"] == "tlb_flush" and "remote shootdown" in match["payload"]:
            assert match["flags"] == "d.h1." and match["comm"] == "pmbench"
            assert int(match["cpu"]) < scenario.workload.threads


def test_batched_flush_is_full_and_serial_flush_is_one_page() -> None:
    scenario = load_scenario("tiny")
    for mode, pages in ((Mode.BATCHED, "-1"), (Mode.SERIAL, "1")):
        lines, _ = trace_of(scenario, mode)
        flushes = [m["payload"] for m in parse(lines) if m["event"] == "tlb_flush"]
        assert flushes and all(p.startswith(f"pages:{pages} ") for p in flushes)


def test_batch_shape_in_the_trace() -> None:
    """Batched: every PTE of the batch is set, then one flush, then every PTE removed."""
    scenario = load_scenario("tiny")  # batches of 4 base pages
    lines, _ = trace_of(scenario, Mode.BATCHED)
    events = [m["event"] for m in parse(lines) if m["comm"] == "migratepages"]
    first_batch = events[1:1 + 4 + 1 + 4]
    assert first_batch == ["set_migration_pte"] * 4 + ["tlb_flush"] + ["remove_migration_pte"] * 4


def test_a_single_target_uses_the_single_vector() -> None:
    scenario = load_scenario("tiny", ["workload.threads=1"])
    lines, _ = trace_of(scenario, Mode.SERIAL)
    events = {m["event"] for m in parse(lines)}
    assert "call_function_single_entry" in events and "call_function_entry" not in events


def test_thp_uses_pmd_events() -> None:
    lines, _ = trace_of(load_scenario("default"), Mode.SERIAL)
    events = [m["event"] for m in parse(lines)]
    assert events.count("set_migration_pmd") == 2  # one THP, two moves
    assert events.count("remove_migration_pmd") == 2


def test_timestamps_never_go_back() -> None:
    lines, _ = trace_of(load_scenario("default"), Mode.BATCHED)
    stamps = [int(m["secs"]) * 1_000_000 + int(m["micros"]) for m in parse(lines)]
    assert stamps == sorted(stamps)


def test_header_is_commented() -> None:
    assert all(line.startswith("#") for line in header(8))


def real_events() -> list[tuple[str, str, str]]:
    """(comm, event, payload) of every line of the real trace; every line must parse."""
    events = []
    for line in SAMPLE.read_text().splitlines():
        match = REAL.match(line)
        assert match, line
        events.append((match[1], match[7], match[8]))
    return events


def sample_reasons() -> dict[int, str]:
    """tlb_flush reason number -> string, as the 6.18 sample prints them (0-4 all occur)."""
    reasons: dict[int, str] = {}
    for _, event, payload in real_events():
        if event == "tlb_flush":
            match = re.fullmatch(r"pages:-?\d+ reason:(.+) \((\d)\)", payload)
            assert match, payload
            assert reasons.setdefault(int(match[2]), match[1]) == match[1], payload
    return reasons


def field_names(payload: str) -> list[str]:
    """The names of a ``name=value name=value`` payload, in order."""
    return [word.split("=")[0] for word in payload.split()]


def sample_fields() -> list[str]:
    """The field list of mm_migrate_pages in the 6.18 sample (the same on every line)."""
    lists = {tuple(field_names(p)) for _, e, p in real_events() if e == "mm_migrate_pages"}
    assert len(lists) == 1, lists
    return list(lists.pop())


def documented_formats() -> str:
    """docs/kernel.md §7, whitespace folded so that wrapped sentences read as one line."""
    text = (ROOT / "docs" / "kernel.md").read_text()
    return " ".join(text[text.index("## 7. Trace formats"):text.index("## 8. ")].split())


def documented_6_3() -> tuple[dict[int, str], list[str]]:
    """6.3's tlb_flush reasons and mm_migrate_pages fields as docs/kernel.md §7 states them."""
    section = documented_formats()
    sentence = re.search(r"Reasons in 6\.3: (.*?)\. Newer kernels", section)
    fields = re.search(r"6\.3: `(nr_succeeded=[^`]+)`", section)
    assert sentence and fields, "docs/kernel.md §7 no longer states 6.3's strings"
    reasons = {int(n): text for n, text in re.findall(r"(\d) `([^`]+)`", sentence[1])}
    assert sorted(reasons) == [0, 1, 2, 3, 4], reasons
    return reasons, field_names(fields[1])


def expected_strings(kernel: str) -> tuple[dict[int, str], list[str]]:
    """What a kernel prints, known from outside migviz: 6.18 from the real recording, 6.3 from
    docs/kernel.md §7 (which cites include/trace/events/{tlb,migrate}.h)."""
    return (sample_reasons(), sample_fields()) if kernel == "6.18" else documented_6_3()


def split_scenario() -> Scenario:
    """A THP whose destination cannot be allocated: it splits (nr_thp_split > 0)."""
    data = load_scenario("thp").model_dump()
    data["memory"]["folios"] = [{"order": 9, "count": 1}, {"order": 0, "count": 16}]
    data["migration"]["enomem"] = 1.0
    return scenario_from_dict(data)


@pytest.mark.parametrize("kernel", ["6.3", "6.18"])
def test_line_layout_matches_a_real_kernel_trace(kernel: str) -> None:
    """The prefix layout parses real `perf script` lines from tests/data too (perf adds a
    subsystem to the event name and prints no flags, so compare the common part); and the
    strings migviz prints for a kernel are that kernel's: for 6.18 every tlb_flush reason and the
    mm_migrate_pages field list exactly as the real 6.18 trace shows them, for 6.3 as
    docs/kernel.md §7 documents them."""
    ours = {"mm_migrate_pages_start", "mm_migrate_pages", "set_migration_pte",
            "remove_migration_pte", "tlb_flush"}
    seen = set()
    for _, event, payload in real_events():
        if event in ours and event != "tlb_flush":
            seen.add(event)
            # Same payload grammar as ours (6.18 adds nr_split= and uses reason=compaction).
            generic = FORMATS[event].replace("mode=MIGRATE_SYNC reason=syscall_or_cpuset",
                                             r"(nr_split=\d+ )?mode=MIGRATE_\w+ reason=\w+")
            assert re.fullmatch(generic, payload), payload
    assert seen == ours - {"tlb_flush"}

    reasons, fields = expected_strings(kernel)
    printed_reasons: set[int] = set()
    splits = 0
    runs = [(load_scenario(name), mode) for name in ("contended", "thp")
            for mode in (Mode.SERIAL, Mode.BATCHED)] + [(split_scenario(), Mode.BATCHED)]
    for scenario, mode in runs:
        lines, _ = trace_of(scenario, mode, kernel)
        for match in parse(lines):
            payload = match["payload"]
            if match["event"] == "tlb_flush":
                reason = re.fullmatch(r"pages:-?\d+ reason:(.+) \((\d)\)", payload)
                assert reason and reason[1] == reasons[int(reason[2])], payload
                printed_reasons.add(int(reason[2]))
            elif match["event"] == "mm_migrate_pages":
                assert field_names(payload) == fields, payload
                values = dict(word.split("=") for word in payload.split())
                if "nr_split" in values:  # migviz's only large folios are THPs
                    assert values["nr_split"] == values["nr_thp_split"], payload
                splits += int(values["nr_thp_split"])
    assert printed_reasons == {1, 4} and splits > 0
    # Reasons no run prints (yet): the table serves hand-made events too.
    assert dict(enumerate(KERNELS[kernel].tlb_reasons[:5])) == reasons


def test_tlb_flush_reasons_match_a_real_kernel_trace() -> None:
    """Both tables name the same enum: 6.18 capitalises "MM" (3) and "IPI" (4) and adds
    reason 5; and pages: is printed signed, so the real full flush shows -1."""
    flushes = [p for _, e, p in real_events() if e == "tlb_flush"]
    assert any(p.startswith("pages:-1 ") for p in flushes)
    old, new = KERNELS["6.3"].tlb_reasons, KERNELS["6.18"].tlb_reasons
    assert [text.lower() for text in new[:len(old)]] == [text.lower() for text in old]
    assert [a == b for a, b in zip(old, new, strict=False)] == [True, True, True, False, False]
    assert len(new) == len(old) + 1


def test_batched_flush_shape_matches_a_real_kernel_trace() -> None:
    """In the real 6.18 trace, as in our batched trace, a migrate_pages() call that unmaps PTEs
    sets all of them, sends ONE full-flush round, then removes all of them."""
    calls: list[list[tuple[str, str, str]]] = []
    for comm, event, payload in real_events():
        if event == "mm_migrate_pages_start":
            calls.append([])
        elif calls and event != "mm_migrate_pages":
            calls[-1].append((comm, event, payload))
    unmapping = [call for call in calls if any(e == "set_migration_pte" for _, e, _ in call)]
    assert len(unmapping) == 2
    for call in unmapping:
        # The migrating task's own lines; other CPUs' shootdowns interleave.
        mine = [(e, p) for c, e, p in call if c == call[0][0]]
        sets = sum(e == "set_migration_pte" for e, _ in mine)
        sends = [i for i, (e, p) in enumerate(mine) if e == "tlb_flush" and "IPI send" in p]
        assert len(sends) == 1 and mine[sends[0]][1].startswith("pages:-1 ")
        assert [e for e, _ in mine[:sends[0]]] == ["set_migration_pte"] * sets
        removes = [e for e, _ in mine[sends[0] + 1:] if e != "tlb_flush"]
        assert removes == ["remove_migration_pte"] * sets


def test_printk_lines_name_the_kernel_function() -> None:
    scenario = load_scenario("contended")
    engine = Engine(scenario, Mode.BATCHED, checkpoints=False, history=1)
    formatter = TraceFormatter(scenario, printk=True)
    lines = list(write_trace(engine.iter_events(), formatter))
    events = [m["event"] for m in parse(lines)]
    summary = engine.summary()
    assert events.count("folio_copy") == summary.pgmigrate_success  # base pages only
    assert events.count("migrate_folio_unmap") == summary.eagain_unmap + summary.ebusy
    assert events.count("folio_migrate_mapping") == summary.eagain_move


@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_perfetto_export_is_valid_json_with_a_slice_per_round_and_ipi(mode: Mode) -> None:
    import json

    from core.perfetto import write_perfetto

    scenario = load_scenario("contended")
    engine = Engine(scenario, mode, checkpoints=False, history=1)
    data = json.loads("".join(write_perfetto(engine.iter_events(), scenario)))
    summary = engine.summary()
    rows = data["traceEvents"]
    rounds = [r for r in rows if r["ph"] == "X" and r["name"].startswith("shootdown round")]
    handlers = [r for r in rows if r["ph"] == "X" and r["name"].startswith("shootdown IPI")]
    assert len(rounds) == summary.nr_tlb_remote_flush
    assert len(handlers) == summary.nr_tlb_remote_flush_received
    assert {r["tid"] for r in handlers} <= set(range(scenario.workload.threads))
    assert all(r["dur"] >= 0 for r in rows if r["ph"] == "X")
    calls = [r for r in rows if r["ph"] == "X" and r["name"].startswith("migrate_pages()")]
    assert len(calls) == scenario.migration.moves
    copies = [r for r in rows if r["ph"] == "X" and r["name"] == "copy + remap"]
    assert sum(r["args"]["pages"] for r in copies) == summary.pgmigrate_success
    if mode is Mode.BATCHED:
        assert len([r for r in rows if r["ph"] == "X" and r["tid"] == 1001]) == summary.batches


@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_perfetto_export_of_numa_balancing_puts_each_call_on_its_thread(mode: Mode) -> None:
    """Under NUMA balancing the threads migrate: every call (one folio) is a slice on the
    faulting thread's CPU track, calls on one track never overlap, each round on its sender's
    track; faults, scans and local flushes are instants on their CPU."""
    import json

    from core.perfetto import write_perfetto

    scenario = load_scenario("numa-balancing", ["numa.passes=1"])
    engine = Engine(scenario, mode, checkpoints=False, history=1)
    events = list(engine.iter_events())
    data = json.loads("".join(write_perfetto(events, scenario)))
    summary = engine.summary()
    rows = data["traceEvents"]
    slices = [r for r in rows if r["ph"] == "X"]
    assert all(r["dur"] >= 0 for r in slices)
    calls = [r for r in slices if r["name"].startswith("migrate_pages() call")]
    assert len(calls) == summary.migrate_calls > 0
    starts = sorted((e.time_ns, e.cpu) for e in events if e.kind is EventKind.MIGRATE_START)
    assert sorted((round(r["ts"] * 1000), r["tid"]) for r in calls) == starts
    for cpu in {r["tid"] for r in calls}:
        mine = sorted((r["ts"], r["ts"] + r["dur"]) for r in calls if r["tid"] == cpu)
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(mine, mine[1:], strict=False)), \
            "one call at a time on a thread"
    rounds = [r for r in slices if r["name"].startswith("shootdown round")]
    assert len(rounds) == summary.nr_tlb_remote_flush
    senders = sorted(e.cpu for e in events if e.kind is EventKind.FLUSH_SEND)
    assert sorted(r["tid"] for r in rounds) == senders
    handlers = [r for r in slices if r["name"].startswith("shootdown IPI")]
    assert len(handlers) == summary.nr_tlb_remote_flush_received
    copies = [r for r in slices if r["name"] == "copy + remap"]
    assert sum(r["args"]["pages"] for r in copies) == summary.pgmigrate_success
    instants = [r["name"] for r in rows if r["ph"] == "i"]
    assert sum(n.startswith("hinting fault") for n in instants) == summary.numa_hint_faults
    assert sum(n.startswith("local flush") for n in instants) == \
        sum(e.kind is EventKind.LOCAL_FLUSH for e in events) > 0
    assert not any(r.get("tid") in (1000, 1001) for r in rows), "no shared call/batch track"

