"""Real traces read back: the parsers, the rebuild of calls and shootdowns, the round trip through
`migviz trace`, and the model beside the kernel."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from core.against import against_model
from core.engine import Engine
from core.errors import InputError
from core.kernel_trace import load_recording, parse_recording
from core.scenario import Mode, load_scenario
from core.trace import TraceFormatter, header, write_trace
from tui.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "compaction-6.18.perf.txt"
HOT_PERF = ROOT / "tests" / "data" / "compaction-hot-6.18.perf.txt.gz"
HOT_TRACEFS = ROOT / "tests" / "data" / "compaction-hot-6.18.tracefs.txt"
HOT_TRACECMD = ROOT / "tests" / "data" / "compaction-hot-6.18.trace-cmd.txt"
HOT_TRACECMD_RAW = ROOT / "tests" / "data" / "compaction-hot-6.18.trace-cmd-raw.txt"
HOT_TRACECMD_LATENCY = ROOT / "tests" / "data" / "compaction-hot-6.18.trace-cmd-latency.txt"

# What `migviz replay --json` calls a counter, and what `migviz run --json` calls it.
RUN_KEYS = {
    "calls": "migrate_calls", "pgmigrate_success": "pgmigrate_success",
    "pgmigrate_fail": "pgmigrate_fail", "thp_migration_success": "thp_migration_success",
    "thp_migration_split": "thp_migration_split", "nr_tlb_remote_flush": "nr_tlb_remote_flush",
    "remote_shootdowns": "nr_tlb_remote_flush_received", "tlb_shootdowns": "tlb_shootdowns",
    "ipi_vectors": "nr_tlb_remote_flush_received",
    "nr_tlb_local_flush_all": "nr_tlb_local_flush_all",
    "nr_tlb_local_flush_one": "nr_tlb_local_flush_one",
}


def json_of(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_the_real_sample_reads_as_its_readme_counts_it(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """tests/data/README.md counted these with awk; the rebuild must find the same."""
    text = SAMPLE.read_text()
    counts = json_of(capsys, "replay", str(SAMPLE), "--json")
    fields = [line.split()[4] for line in text.splitlines()]
    assert counts["calls"] == fields.count("migrate:mm_migrate_pages:") == 4
    assert counts["set_migration_pte"] == fields.count("migrate:set_migration_pte:") == 160
    assert counts["remove_migration_pte"] == 160
    sends = [line for line in text.splitlines() if "reason:remote IPI send (4)" in line]
    assert counts["nr_tlb_remote_flush"] == len(sends) == 2
    assert counts["remote_shootdowns"] == text.count("remote shootdown (1)") == 1
    assert counts["tlb_shootdowns"] == [0, 1]
    succeeded = sum(int(n) for n in re.findall(r"nr_succeeded=(\d+)", text))
    failed = sum(int(n) for n in re.findall(r"nr_failed=(\d+)", text))
    assert (counts["pgmigrate_success"], counts["pgmigrate_fail"]) == (succeeded, failed)
    assert counts["cpus"] == 2 and counts["unparsed_lines"] == 0
    first, last = (float(line.split()[3].rstrip(":")) for line in (text.splitlines()[0],
                                                                     text.splitlines()[-1]))
    assert counts["duration_ns"] == round((last - first) * 1e9)


def test_calls_pages_and_rounds_are_rebuilt() -> None:
    recording = load_recording(SAMPLE)
    moved = [call for call in recording.calls if call.pages]
    assert [len(call.pages) for call in moved] == [32, 128]
    for call in moved:
        assert all(page.remap_line >= 0 for page in call.pages)
        (number,) = call.rounds
        send = recording.rounds[number]
        assert send.pages == -1 and send.cpu == call.cpu
        # Every unmap before the one send, every remap after it: the batched shape.
        assert max(page.unmap_line for page in call.pages) < send.line
        assert min(page.remap_line for page in call.pages) > send.line
    first, second = (recording.rounds[call.rounds[0]] for call in moved)
    assert [(r.cpu, r.pages) for r in first.receipts] == [(1, -1)]
    assert second.receipts == []


def test_each_layout_reads_the_same_trace() -> None:
    """The same events as perf script, tracefs and trace-cmd report print them."""
    perf = SAMPLE.read_text().splitlines()
    pattern = re.compile(r"^\s*(\S+)\s+(\d+) \[(\d{3})\]\s+(\d+\.\d{6}):\s+\w+:(\w+): (.*)$")
    tracefs, tracecmd = ["# tracer: nop", "#"], ["cpus=2"]
    for line in perf:
        comm, pid, cpu, stamp, event, payload = pattern.match(line).groups()  # type: ignore
        tracefs.append(f"{comm:>16}-{pid:<7} [{cpu}] d..1. {stamp:>12}: {event}: {payload}")
        tracecmd.append(f"{comm:>16}-{pid:<7} [{cpu}] {stamp:>12}: {event}: {payload}")
    reference = parse_recording("\n".join(perf), "perf").counts()
    for name, lines in (("tracefs", tracefs), ("trace-cmd", tracecmd)):
        counts = parse_recording("\n".join(lines), name).counts()
        assert {k: v for k, v in counts.items() if k != "source"} == \
            {k: v for k, v in reference.items() if k != "source"}


def test_gzip_unknown_lines_and_not_a_trace(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    packed = tmp_path / "t.txt.gz"
    text = SAMPLE.read_text()
    packed.write_bytes(gzip.compress(("garbage line\n" + text + "another one\n").encode()))
    counts = json_of(capsys, "replay", str(packed), "--json")
    assert counts["calls"] == 4 and counts["unparsed_lines"] == 2
    for content, says in ((b"hello\nworld\n", "not a kernel trace"),
                          (b"PERFILE2\x00\x00binary", "perf script -i"),
                          (b"", "the file is empty")):
        bad = tmp_path / "bad"
        bad.write_bytes(content)
        assert main(["replay", str(bad), "--json"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("migviz: error: ") and says in err and err.count("\n") == 1
    assert main(["replay", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(InputError, match="not a kernel trace"):
        parse_recording("# only a header\n", "x")


@pytest.mark.parametrize("name", ["tiny", "default", "contended", "thp", "numa-balancing"])
@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
@pytest.mark.parametrize("kernel", ["6.3", "6.18"])
def test_round_trip_through_migviz_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         name: str, mode: Mode, kernel: str) -> None:
    """`migviz trace S -o t.txt; migviz replay t.txt --json` gives `migviz run S`'s counters."""
    overrides = ["numa.passes=1", "memory.folios=[{order=9,count=1},{order=0,count=64}]"] \
        if name == "numa-balancing" else []
    trace = tmp_path / "t.txt"
    sets = [word for o in overrides for word in ("--set", o)]
    assert main(["trace", name, "--mode", mode.value, "--kernel", kernel, "--printk",
                 "-o", str(trace), *sets]) == 0
    replayed = json_of(capsys, "replay", str(trace), "--json")
    run = json_of(capsys, "run", name, "--mode", mode.value, "--json", *sets)
    assert {key: replayed[key] for key in RUN_KEYS} == {key: run[other]
                                                        for key, other in RUN_KEYS.items()}
    assert replayed["unparsed_lines"] == 0
    assert replayed["cpus"] == len(run["tlb_shootdowns"])  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_the_model_beside_its_own_trace_agrees(mode: Mode) -> None:
    """A migviz trace replayed against the model: each call's scenario, rebuilt from the lines
    alone, gives the same sends, receipts, flush kinds and pages."""
    scenario = load_scenario("default", ["workload.lazy_cpus=[2]"])
    engine = Engine(scenario, mode, checkpoints=False, history=1)
    formatter = TraceFormatter(scenario)
    text = "\n".join([*header(scenario.topology.cpus), *write_trace(engine.iter_events(),
                                                                     formatter)])
    result = against_model(parse_recording(text, "default"))
    assert len(result["calls"]) == scenario.migration.moves
    for call in result["calls"]:
        assert call["shape"] == mode.value
        assert call["mask"] == [0, 1, 3, 4, 5], "a lazy CPU answers nothing: not seen in a mask"
        assert call["differ"] == [] and call["why"] == []


def test_the_model_beside_the_real_sample(capsys: pytest.CaptureFixture[str]) -> None:
    result = against_model(load_recording(SAMPLE))
    assert [call["call"] for call in result["calls"]] == [3, 4]
    assert result["calls_without_unmaps"] == [1, 2]
    third, fourth = result["calls"]
    assert third["differ"] == [] and third["mask"] == [1] and third["lazy"] == []
    assert fourth["lazy"] == [1] and fourth["differ"] == ["pgmigrate_fail"]
    assert any("failed 1 page" in why for why in fourth["why"])
    assert main(["replay", str(SAMPLE), "--against-model"]) == 0
    out = capsys.readouterr().out
    assert "call 4:" in out and "≠" in out
    assert json_of(capsys, "replay", str(SAMPLE), "--against-model", "--json") == result


def test_the_tracefs_sample_by_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """Raw tracefs text carries the context in its flags: a CPU handling the shootdown IPI logs
    from hard-irq context (`h`). The rebuild, which reads no flags, must find exactly those as
    receipts, and the sender's own `remote wrong CPU (5)` lines as local."""
    counts = json_of(capsys, "replay", str(HOT_TRACEFS), "--json")
    flush = re.compile(r"\[(\d{3})\] (\S{5}) .*tlb_flush: pages:-?\d+ reason:remote "
                       r"(shootdown \(1\)|wrong CPU \(5\))")
    in_irq = [0, 0]
    local = 0
    for line in HOT_TRACEFS.read_text().splitlines():
        found = flush.search(line)
        if found:
            if "h" in found.group(2):
                in_irq[int(found.group(1))] += 1
            else:
                local += 1
    assert counts["tlb_shootdowns"] == in_irq and counts["remote_shootdowns"] == sum(in_irq)
    assert counts["local_wrong_cpu"] == local == 2
    text = HOT_TRACEFS.read_text()
    assert counts["calls"] == text.count(" mm_migrate_pages:") == 5
    assert counts["set_migration_pte"] == text.count(" set_migration_pte:") == 109
    assert counts["ipi_vectors"] == text.count("call_function_single_entry:") == 8
    assert counts["unparsed_lines"] == 0


def test_the_trace_cmd_sample_counted_from_its_text(capsys: pytest.CaptureFixture[str]) -> None:
    """Real `trace-cmd report` output (tests/data/README.md): its `cpus=2` header, its own
    tlb_flush text (libtraceevent's tlb plugin: `pages=N reason=NAME (N)`, and no name at all
    for reason 4, `reason= (4)`), comms such as `<idle>` and `memfd:sealed-91`. Every counter is
    checked against a count made here from the raw text."""
    text = HOT_TRACECMD.read_text()
    counts = json_of(capsys, "replay", str(HOT_TRACECMD), "--json")
    header, *events = text.splitlines()
    assert header == "cpus=2"
    layout = re.compile(r"^\s*(.+)-(\d+)\s+\[(\d{3})\]\s+(\d+)\.(\d{6}):\s+(\w+):\s+(.*)$")
    parsed = [layout.match(event).groups() for event in events]  # type: ignore[union-attr]
    by_event = Counter(fields[5] for fields in parsed)
    assert counts["unparsed_lines"] == 0 and counts["other_events"] == 0
    assert counts["lines"] == len(events) and counts["cpus"] == 2
    assert counts["calls"] == by_event["mm_migrate_pages"] == by_event["mm_migrate_pages_start"]
    assert counts["calls_unfinished"] == 0
    succeeded = sum(int(n) for n in re.findall(r"nr_succeeded=(\d+)", text))
    failed = sum(int(n) for n in re.findall(r"nr_failed=(\d+)", text))
    assert (counts["pgmigrate_success"], counts["pgmigrate_fail"]) == (succeeded, failed)
    assert counts["set_migration_pte"] == by_event["set_migration_pte"] > 0
    assert counts["remove_migration_pte"] == by_event["remove_migration_pte"]
    # The tlb plugin's text: `=` for `:`, and reasons 4 and 5 without a name.
    flushes = [fields for fields in parsed if fields[5] == "tlb_flush"]
    assert all(re.fullmatch(r"pages=-?\d+ reason=[a-z ]*\(\d\)", f[6]) for f in flushes)
    assert "remote IPI send" not in text and "reason:" not in text
    reasons = Counter(re.search(r"\((\d)\)$", f[6]).group(1)  # type: ignore[union-attr]
                      for f in flushes)
    assert counts["tlb_flush_by_reason"] == dict(sorted(reasons.items()))
    sends = [f for f in flushes if f[6].endswith("reason= (4)")]
    assert counts["nr_tlb_remote_flush"] == len(sends) == reasons["4"] > 0
    receipts = [0, 0]
    for f in flushes:
        if f[6].endswith("reason=remote shootdown (1)"):
            receipts[int(f[2])] += 1
    assert counts["tlb_shootdowns"] == receipts and counts["remote_shootdowns"] == sum(receipts)
    local = [int(f[6].split()[0].removeprefix("pages=")) for f in flushes
             if f[6].endswith(("(2)", "(3)"))]
    assert counts["nr_tlb_local_flush_all"] == sum(pages < 0 for pages in local)
    assert counts["nr_tlb_local_flush_one"] == sum(pages > 0 for pages in local)
    vectors = Counter(f[6] for f in parsed if f[5].startswith("call_function"))
    assert counts["ipi_vectors"] == sum(vectors.values()) > 0
    assert counts["ipi_vectors_by_number"] == {key.removeprefix("vector="): n
                                               for key, n in vectors.items()}
    first, last = (int(f[3]) * 10**9 + int(f[4]) * 1000 for f in (parsed[0], parsed[-1]))
    assert counts["duration_ns"] == last - first
    # The tasks as the text names them: `<idle>-0`, a comm with a dash (`memfd:sealed-91`).
    recording = load_recording(HOT_TRACECMD)
    assert {(line.comm, line.pid) for line in recording.lines} == \
        {(fields[0].strip(), int(fields[1])) for fields in parsed}
    # Each call that unmapped pages: its unmaps (one per mapping: a page that several
    # processes map at the same address has several), one send, one receipt on CPU 1 with its
    # vector, then its remaps.
    unmaps = []
    for fields in parsed:
        if fields[5] == "mm_migrate_pages_start":
            unmaps.append(0)
        elif fields[5] == "set_migration_pte":
            unmaps[-1] += 1
    assert [len(call.pages) for call in recording.calls] == unmaps
    for call in recording.calls:
        if not call.pages:
            assert call.rounds == [] and call.succeeded == 0
            continue
        (number,) = call.rounds
        send = recording.rounds[number]
        assert max(page.unmap_line for page in call.pages) < send.line
        assert min(page.remap_line for page in call.pages) > send.line
        assert [(r.cpu, r.vector) for r in send.receipts] == [(1, 251)]


def test_the_hot_perf_sample_and_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    """127 calls recorded with migviz record: every call that unmapped pages has the batched
    shape (one full-flush send, one receipt on CPU 1), and beside the model every difference
    comes with its reason."""
    text = gzip.decompress(HOT_PERF.read_bytes()).decode()
    counts = json_of(capsys, "replay", str(HOT_PERF), "--json")
    assert counts["calls"] == text.count("migrate:mm_migrate_pages:") == 127
    assert counts["nr_tlb_remote_flush"] == text.count("remote IPI send (4)") == 125
    assert counts["remote_shootdowns"] == text.count("remote shootdown (1)") == 125
    assert counts["tlb_shootdowns"] == [0, 125]
    assert counts["ipi_vectors"] == text.count("call_function_single_entry") == 125
    result = against_model(load_recording(HOT_PERF))
    assert len(result["calls"]) == 125
    assert all(call["shape"] == "batched" for call in result["calls"])
    assert all(call["kernel"]["rounds"] == call["model"]["rounds"] == 1
               for call in result["calls"])
    agree = [call for call in result["calls"] if not call["differ"]]
    assert len(agree) > len(result["calls"]) // 2
    assert all(call["why"] for call in result["calls"] if call["differ"])


def test_record_a_real_compaction_and_replay_it(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Where root and perf allow: migviz record, then migviz replay, on this machine."""
    import os
    import shutil

    if shutil.which("perf") is None:
        pytest.skip("perf is not installed")
    if os.geteuid() != 0:
        pytest.skip("recording system-wide tracepoints needs root")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: no remote shootdown to see")
    out = tmp_path / "real.txt"
    code = main(["record", "-o", str(out), "--hot-mib", "4"])
    err = capsys.readouterr().err
    if code != 0:
        pytest.skip(f"perf could not record here: {err.strip().splitlines()[-1]}")
    counts = json_of(capsys, "replay", str(out), "--json")
    text = out.read_text()
    assert counts["calls"] == text.count("migrate:mm_migrate_pages:") > 0
    assert counts["set_migration_pte"] == text.count("migrate:set_migration_pte:")
    assert counts["unparsed_lines"] == 0
    recording = load_recording(out)
    from core.replay import Replay

    replay = Replay(recording)
    while not replay.done:
        replay.step_call()
    assert replay.view().calls_finished == counts["calls"]


def test_trace_noise_is_not_unparsed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """perf's call chains, trace-cmd's empty-CPU lines and tracefs's lost-event markers belong to
    a trace: not counted as unparsed; the lost events are reported."""
    lines = SAMPLE.read_text().splitlines()
    noisy = ["cpus=2", "CPU 1 is empty", "CPU:1 [LOST 7 EVENTS]"]
    for line in lines:
        noisy += [line, "\t    ffffffff8123abcd flush_tlb_func+0x1f ([kernel.kallsyms])"]
    path = tmp_path / "noisy.txt"
    path.write_text("\n".join(noisy) + "\n")
    counts = json_of(capsys, "replay", str(path), "--json")
    plain = json_of(capsys, "replay", str(SAMPLE), "--json")
    assert counts["unparsed_lines"] == 0 and counts["lost_events"] == 7
    assert {k: v for k, v in counts.items() if k not in ("source", "lost_events")} == \
        {k: v for k, v in plain.items() if k not in ("source", "lost_events")}


@pytest.mark.parametrize("path", [HOT_TRACECMD_RAW, HOT_TRACECMD_LATENCY], ids=["-R", "-l"])
def test_other_trace_cmd_layouts_of_the_same_recording(path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`trace-cmd report -R` (raw fields: `succeeded=`, `mode=2 reason=0`, `reason=4 pages=-1`)
    and `-l` (latency layout: `sh-16637   0d..1. 42537.714026: ...`) of the recording behind the
    plain sample read as the plain one does, calls named alike."""
    text = path.read_text()
    if path == HOT_TRACECMD_RAW:
        assert "nr_succeeded" not in text and "reason=4 pages=-1" in text
    else:
        assert " [000] " not in text and re.search(r"-\d+\s+0d\.\.\d\. ", text)
    plain = json_of(capsys, "replay", str(HOT_TRACECMD), "--json")
    other = json_of(capsys, "replay", str(path), "--json")
    assert other["unparsed_lines"] == 0
    assert other["nr_tlb_remote_flush"] == plain["nr_tlb_remote_flush"] != 0
    assert {k: v for k, v in other.items() if k != "source"} == \
        {k: v for k, v in plain.items() if k != "source"}
    assert [(c.mode, c.reason) for c in load_recording(path).calls] == \
        [(c.mode, c.reason) for c in load_recording(HOT_TRACECMD).calls]


def test_against_model_says_why_shared_pages_have_more_entries(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A page that several processes map at one address has a migration entry per mapping:
    where the kernel set more entries than the model, the reason is given."""
    recording = load_recording(HOT_TRACECMD)
    shared = [call.index + 1 for call in recording.calls
              if len(call.pages) > len({page.addr for page in call.pages})]
    assert shared, "the sample has calls with shared pages"
    code = main(["replay", str(HOT_TRACECMD), "--against-model"])
    out = capsys.readouterr().out
    assert code == 0
    for number in shared:
        block = out.split(f"call {number}:")[1].split("\ncall ")[0]
        assert "entries set" in block and "≠" in block
        assert "gets an entry per mapping" in block

