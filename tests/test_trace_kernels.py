"""`migviz trace --kernel`: the same run in the tracepoint text of Linux 6.3 or 6.18.

The expected strings come from outside core/trace.py: the real 6.18 recording in tests/data and
docs/kernel.md §7 (helpers in test_trace.py).
"""

from __future__ import annotations

import re

import pytest
from test_trace import (
    documented_formats,
    expected_strings,
    parse,
    real_events,
    split_scenario,
    trace_of,
)

from core.engine import Engine
from core.events import Event, EventKind
from core.scenario import Mode, load_scenario
from core.tlb import Machine
from core.trace import KERNELS, TraceFormatter, header, write_trace
from tui.cli import main


def local_flush(cpu: int, pages: int, reason: int, time_ns: int = 1_500) -> Event:
    """The initiating CPU's own flush_tlb_func() run, as the engine will emit it."""
    return Event(seq=0, time_ns=time_ns, kind=EventKind.LOCAL_FLUSH, cpu=cpu, pages=pages,
                 arg=reason)


@pytest.mark.parametrize("kernel", ["6.3", "6.18"])
@pytest.mark.parametrize(("pages", "reason"), [(0, 2), (-1, 2), (1, 3), (-1, 3)])
def test_local_flush_line(kernel: str, pages: int, reason: int) -> None:
    """``tlb_flush: pages:%ld reason:<string> (%d)`` on the event's CPU, by the migrating task,
    with interrupts off, in the kernel's own reason strings."""
    scenario = load_scenario("tiny")
    initiator = Machine(scenario).initiator
    lines = list(write_trace([local_flush(initiator, pages, reason)],
                             TraceFormatter(scenario, kernel=kernel)))
    assert len(lines) == 1
    (match,) = parse(lines)
    reasons, _ = expected_strings(kernel)
    assert (match["comm"], match["pid"], int(match["cpu"])) == ("migratepages", "4242", initiator)
    assert match["flags"].startswith("d") and "h" not in match["flags"]
    assert match["event"] == "tlb_flush"
    assert match["payload"] == f"pages:{pages} reason:{reasons[reason]} ({reason})"
    assert (int(match["secs"]), int(match["micros"])) == (0, 1)


def test_local_flush_lines_are_the_real_ones() -> None:
    """The two local flushes the 6.18 recording holds, pages:0 reason 2 (the sender of a batch
    flush, already current) and pages:1 reason 3, read exactly as migviz prints them."""
    real = {p for _, e, p in real_events() if e == "tlb_flush" and "local" in p}
    assert {"pages:0 reason:local shootdown (2)", "pages:1 reason:local MM shootdown (3)"} <= real
    scenario = load_scenario("tiny")
    formatter = TraceFormatter(scenario, kernel="6.18")
    cpu = Machine(scenario).initiator
    for pages, reason in ((0, 2), (1, 3)):
        (match,) = parse([line for _, line in formatter.lines(local_flush(cpu, pages, reason))])
        assert match["payload"] in real


def test_local_flush_takes_its_place_among_the_run_lines() -> None:
    """Put into a run right after a send, the line follows the send's, as in the recording."""
    scenario = load_scenario("tiny")
    events = list(Engine(scenario, Mode.BATCHED, checkpoints=False, history=1).iter_events())
    at = next(i for i, e in enumerate(events) if e.kind is EventKind.FLUSH_SEND)
    send = events[at]
    events.insert(at + 1, local_flush(send.cpu, 0, 2, time_ns=send.time_ns))
    lines = list(write_trace(events, TraceFormatter(scenario, kernel="6.18")))
    mine = [m["payload"] for m in parse(lines)
            if m["event"] == "tlb_flush" and m["comm"] == "migratepages"]
    assert mine[:2] == [f"pages:{send.pages} reason:remote IPI send (4)",
                        "pages:0 reason:local shootdown (2)"]


def test_reason_five_is_the_documented_one() -> None:
    """6.18's table has reason 5 as docs/kernel.md §7.3 names it (no run sends to a CPU that
    left mm_cpumask, and the recording holds none); 6.3 has no reason 5 and prints the number
    in hex, as __print_symbolic() does for a value missing from its table."""
    named = re.search(r"Newer kernels add 5 `([^`]+)`", documented_formats())
    assert named
    assert KERNELS["6.18"].reason(5) == f"{named[1]} (5)"
    assert KERNELS["6.3"].reason(5) == "0x5 (5)"


@pytest.mark.parametrize("name", ["contended", "thp"])
@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_versions_differ_only_in_their_strings(name: str, mode: Mode) -> None:
    """Line for line, 6.18 is 6.3 with other reason words and an nr_split= field: the same
    events, times, CPUs, tasks, flags, page counts and reason numbers."""
    scenario = load_scenario(name)
    old, _ = trace_of(scenario, mode, "6.3")
    new, _ = trace_of(scenario, mode, "6.18")
    assert len(old) == len(new)
    changed = 0
    for a, b in zip(parse(old), parse(new), strict=True):
        assert a.group("comm", "pid", "cpu", "flags", "secs", "micros", "event") == \
            b.group("comm", "pid", "cpu", "flags", "secs", "micros", "event")
        if a["event"] == "tlb_flush":
            numbers = [re.fullmatch(r"pages:(-?\d+) reason:.+ \((\d)\)", m["payload"])
                       for m in (a, b)]
            assert numbers[0] and numbers[1] and numbers[0].groups() == numbers[1].groups()
            changed += a["payload"] != b["payload"]
        elif a["event"] == "mm_migrate_pages":
            assert re.sub(r"nr_split=\d+ ", "", b["payload"]) == a["payload"]
            changed += 1
        else:
            assert a["payload"] == b["payload"]
    assert changed > 0


def test_nr_split_counts_the_split_thps() -> None:
    """With a THP that splits, 6.18's nr_split= shows the split (equal to nr_thp_split: only
    THPs split in migviz); 6.3 has no such field."""
    scenario = split_scenario()
    new, _ = trace_of(scenario, Mode.BATCHED, "6.18")
    old, _ = trace_of(scenario, Mode.BATCHED, "6.3")
    splits = [re.search(r"nr_thp_split=(\d+) nr_split=(\d+) ", m["payload"])
              for m in parse(new) if m["event"] == "mm_migrate_pages"]
    assert all(splits) and any(int(s[2]) > 0 for s in splits if s)
    assert all(s[1] == s[2] for s in splits if s)
    assert not any("nr_split" in line for line in old)


def test_an_unknown_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="6.3, 6.18"):
        TraceFormatter(load_scenario("tiny"), kernel="5.0")


def test_header_names_the_kernel() -> None:
    assert any("Linux 6.18" in line for line in header(8, "6.18"))
    assert any("Linux 6.3" in line for line in header(8))


# ---------------------------------------------------------------------------------------------
# The command line


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as stop:  # counts like a returned code
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_trace_kernel_6_18(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "trace", "tiny", "--kernel", "6.18")
    assert code == 0 and err == ""
    assert "reason:remote IPI send (4)" in out and "nr_split=" in out
    assert "remote ipi send" not in out


@pytest.mark.parametrize("argv", [[], ["--kernel", "6.3"]])
def test_trace_kernel_6_3_is_the_default(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "trace", "tiny", *argv)
    assert code == 0
    assert "reason:remote ipi send (4)" in out and "nr_split=" not in out
    assert "tracepoint formats of Linux 6.3" in out


def test_trace_unknown_kernel_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "trace", "tiny", "--kernel", "5.0")
    assert code == 2 and out == ""
    assert err.startswith("migviz: error: ") and err.count("\n") == 1, err
    assert "--kernel" in err and "'5.0'" in err and "6.18" in err and "Traceback" not in err
    assert err.endswith(" (see 'migviz trace --help')\n"), err


@pytest.mark.parametrize("kernel", ["6.3", "6.18"])
def test_perfetto_refuses_kernel(kernel: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A perfetto trace has no tracepoint text, so --kernel with it is refused, not ignored."""
    code, out, err = call(capsys, "trace", "tiny", "--format", "perfetto", "--kernel", kernel)
    assert code == 2 and out == ""
    assert err.startswith("migviz: error: --kernel") and err.count("\n") == 1, err
    assert "perfetto" in err


def test_trace_help_explains_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "trace", "--help")
    flat = " ".join(out.split())
    assert code == 0 and "--kernel {6.3,6.18}" in flat
    assert "with --format perfetto it is refused" in flat
