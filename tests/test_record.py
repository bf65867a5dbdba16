"""`migviz record`: its errors are one line and exit 2 and never cost the user a file; where
root and perf allow, it records a real compaction; the hot-memory helper really runs a thread
on each CPU asked, touching the memory."""

from __future__ import annotations

import gzip
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import assert_one_line, call

from core.hot import HotMemory, usable_cpus
from core.record import COMPACT_MEMORY, EVENTS, PARANOID

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
WAIT_S = 60.0  # a deadline for what takes milliseconds, never a measurement






def perf_unavailable() -> str | None:
    """Why a real recording cannot run here, or None if it can."""
    perf = shutil.which("perf")
    if perf is None:
        return "perf is not installed"
    if os.geteuid() != 0:
        return "recording tracepoints on every CPU and compacting memory need root"
    if not os.access(COMPACT_MEMORY, os.W_OK):
        return f"{COMPACT_MEMORY} is not writable"
    listed = subprocess.run([perf, "list", "--raw-dump", "tracepoint"], capture_output=True,
                            text=True, check=False).stdout.split()
    missing = [event for event in EVENTS if event not in listed]
    if missing:
        return f"this kernel lacks tracepoints: {', '.join(missing)}"
    return None


@pytest.fixture
def perf_allowed() -> None:
    reason = perf_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def no_perf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH is an empty folder: no perf, no anything."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


# ---------------------------------------------------------------------------------------------
# Errors: one line, exit 2, no file lost or left behind


def test_a_missing_perf_is_one_line_and_leaves_no_file(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, no_perf: Path) -> None:
    output = tmp_path / "t.txt"
    code, out, err = call(capsys, "record", "-o", str(output))
    assert code == 2 and out == ""
    assert_one_line(err.splitlines()[-1] + "\n", "perf not found", "linux-perf", "linux-tools")
    assert not output.exists()


def test_a_missing_perf_from_the_shell(tmp_path: Path, no_perf: Path) -> None:
    # The real process: exit status 2 and one line, whatever follows `--`.
    output = tmp_path / "t.txt"
    result = subprocess.run([sys.executable, "-m", "tui.cli", "record", "-o", str(output), "--",
                             "sleep", "1"], capture_output=True, text=True, cwd=ROOT,
                            check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert_one_line(result.stderr.splitlines()[-1] + "\n", "perf not found")
    assert "Traceback" not in result.stderr
    assert not output.exists()


@pytest.mark.parametrize(("value", "expected"), [
    ("4096", "no CPU 4096"),
    ("x", "not a CPU list"),
    ("3-1", "not a CPU list"),
    ("", "no CPU given"),
])
def test_a_bad_hot_cpus_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 value: str, expected: str) -> None:
    output = tmp_path / "t.txt"
    code, _, err = call(capsys, "record", "-o", str(output), "--hot-cpus", value)
    assert code == 2
    assert_one_line(err, f"--hot-cpus {value}", expected)
    assert not output.exists()


def test_an_existing_output_is_not_overwritten(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    output = tmp_path / "mine.txt"
    output.write_text("my notes\n", encoding="utf-8")
    code, _, err = call(capsys, "record", "-o", str(output))
    assert code == 2
    assert_one_line(err, str(output), "already exists", "--force")
    assert output.read_text(encoding="utf-8") == "my notes\n"


def test_not_permitted_names_the_paranoid_level(tmp_path: Path) -> None:
    # A real unprivileged process (uid 65534), not a pretend one.
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or shutil.which("perf") is None:
        pytest.skip("needs root, setpriv and perf to run migviz as an unprivileged user")
    paranoid = int(PARANOID.read_text(encoding="ascii"))
    if paranoid <= -1:
        pytest.skip(f"kernel.perf_event_paranoid is {paranoid}: anyone may record")
    folder = Path(tempfile.mkdtemp(prefix="migviz-nobody-"))
    try:
        folder.chmod(0o777)
        output = folder / "t.txt"
        result = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
             "tui.cli", "record", "-o", str(output)],
            capture_output=True, text=True, cwd=ROOT, check=False)
        if "Permission denied" in result.stderr and "migviz" not in result.stderr:
            pytest.skip(f"uid 65534 cannot run this interpreter: {result.stderr.strip()}")
        assert result.returncode == 2, result.stderr
        assert_one_line(result.stderr.splitlines()[-1] + "\n", "not permitted",
                        f"perf_event_paranoid = -1 (it is {paranoid})")
        assert not output.exists()
    finally:
        shutil.rmtree(folder)


# ---------------------------------------------------------------------------------------------
# Real recordings (root and perf)


@pytest.mark.usefixtures("perf_allowed")
def test_records_a_real_compaction(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    output = tmp_path / "t.txt"
    code, out, err = call(capsys, "record", "-o", str(output), "--hot-mib", "8")
    assert code == 0, err
    assert out == ""
    text = output.read_text(encoding="utf-8")
    assert " migrate:mm_migrate_pages_start: " in text
    assert " migrate:mm_migrate_pages: " in text
    assert " tlb:tlb_flush: " in text
    assert "reason=compaction" in text
    progress, summary = err.splitlines()[0], err.splitlines()[-1]
    assert progress.startswith("migviz: recording ") and "(perf)" in progress
    assert "compact_memory" in progress
    lines = text.count("\n")
    starts = text.count(" migrate:mm_migrate_pages_start: ")
    assert summary.startswith(f"migviz: wrote {output}: {lines} lines, {starts} migrate_pages() "
                              "calls"), summary


@pytest.mark.usefixtures("perf_allowed")
def test_a_failing_command_leaves_the_old_file(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    output = tmp_path / "t.txt"
    output.write_text("keep me\n", encoding="utf-8")
    code, _, err = call(capsys, "record", "-o", str(output), "--force", "--hot-cpus", "none",
                        "--", "sh", "-c", "exit 3")
    assert code == 2
    assert_one_line(err.splitlines()[-1] + "\n", "exit status 3", "sh -c 'exit 3'")
    assert output.read_text(encoding="utf-8") == "keep me\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]  # no temporary left beside it


@pytest.mark.usefixtures("perf_allowed")
def test_a_command_that_cannot_start_leaves_no_file(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    output = tmp_path / "t.txt"
    code, _, err = call(capsys, "record", "-o", str(output), "--hot-cpus", "none", "--",
                        str(tmp_path / "no-such-program"))
    assert code == 2
    assert_one_line(err.splitlines()[-1] + "\n", "no-such-program", "cannot run")
    assert not output.exists()


# ---------------------------------------------------------------------------------------------
# The hot-memory helper


def task_stat(tid: int, pid: str = "self") -> list[str]:
    """/proc/PID/task/TID/stat from field 3 (state) on: after the comm, which may hold spaces."""
    text = Path(f"/proc/{pid}/task/{tid}/stat").read_text(encoding="ascii")
    return text.rsplit(")", 1)[1].split()


def test_hot_memory_runs_a_thread_on_each_cpu_asked() -> None:
    cpus = usable_cpus()[:4]
    with HotMemory(cpus, mib=64) as hot:
        assert every_page_written(hot)
        for tid, cpu in zip(hot.thread_ids, cpus, strict=True):
            assert os.sched_getaffinity(tid) == {cpu}
            assert int(task_stat(tid)[36]) == cpu  # field 39, processor: the CPU it last ran on
            assert Path(f"/proc/self/task/{tid}/comm").read_text().strip() == f"hot-cpu{cpu}"
        tids = hot.thread_ids
    # Stopped and joined. join() returns when the thread's Python code is done; the kernel task
    # leaves /proc/self/task a moment later, so wait for it (a deadline, not a measurement).
    deadline = time.monotonic() + WAIT_S
    while {int(name) for name in os.listdir("/proc/self/task")} & set(tids):
        assert time.monotonic() < deadline, "the helper's threads never exited"
        time.sleep(0.001)


def every_page_written(hot: HotMemory) -> bool:
    """Whether every thread's byte of every page changed between two copies of the bytes.

    A copy is not instantaneous (numpy releases the GIL while it copies, so the threads go on
    passing), so the pass counts are read around each copy: a pass that began after the first
    copy ended writes every byte once more before the second copy begins. A byte wraps at 256,
    so a window in which some thread may have made 256 passes or more is measured again."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        first = hot.passes
        before = hot.page_bytes()
        copied = hot.passes
        # Two more passes each: the second of them began after the first copy ended.
        while min(now - then for now, then in zip(hot.passes, copied, strict=True)) < 2:
            assert time.monotonic() < deadline, f"the threads made {hot.passes} passes"
        after = hot.page_bytes()
        last = hot.passes
        # At most the passes between the two copies' outer readings, plus one in flight.
        if max(now - then for now, then in zip(last, first, strict=True)) + 1 < 256:
            return bool((after != before).all())
    raise AssertionError("no window of fewer than 256 passes")


@pytest.fixture
def helper_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    cpu = usable_cpus()[-1]
    child = subprocess.Popen([sys.executable, "-m", "core.hot", "--cpus", str(cpu), "--mib",
                              "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=ROOT)
    try:
        yield child, cpu
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def test_hot_memory_as_a_child_process(
        helper_process: tuple[subprocess.Popen[str], int]) -> None:
    child, cpu = helper_process
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], WAIT_S)
    assert ready, "the helper printed no pid"
    assert child.stdout.readline().strip() == str(child.pid)
    threads = {tid: Path(f"/proc/{child.pid}/task/{tid}/comm").read_text().strip()
               for tid in map(int, os.listdir(f"/proc/{child.pid}/task"))}
    hot = [tid for tid, name in threads.items() if name == f"hot-cpu{cpu}"]
    assert len(hot) == 1, threads
    assert os.sched_getaffinity(hot[0]) == {cpu}
    child.terminate()  # what record does after migratepages
    assert child.wait(timeout=WAIT_S) == 0


def test_hot_memory_child_refuses_a_cpu_it_cannot_use() -> None:
    result = subprocess.run([sys.executable, "-m", "core.hot", "--cpus", "4096"],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("core.hot: error: --cpus 4096: no CPU 4096")
    assert result.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# The samples recorded with it (tests/data/README.md says how)


def event_counts(lines: list[str]) -> dict[str, int]:
    """How many lines name each event: the fifth field, as `awk '{print $5}'` counts it."""
    counts: dict[str, int] = {}
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and not line.startswith("#"):
            counts[fields[4]] = counts.get(fields[4], 0) + 1
    return counts


def test_the_perf_sample_holds_what_the_readme_says() -> None:
    with gzip.open(DATA / "compaction-hot-6.18.perf.txt.gz", "rt", encoding="utf-8") as file:
        lines = file.read().splitlines()
    assert len(lines) == 4352
    assert event_counts(lines) == {
        "migrate:mm_migrate_pages_start:": 127, "migrate:mm_migrate_pages:": 127,
        "migrate:set_migration_pte:": 1766, "migrate:remove_migration_pte:": 1766,
        "tlb:tlb_flush:": 441, "irq_vectors:call_function_single_entry:": 125,
    }
    shootdowns = [line.split()[0] for line in lines if "reason:remote shootdown (1)" in line]
    assert shootdowns.count("hot-cpu1") == 90 and len(shootdowns) == 125


def test_the_tracefs_sample_holds_what_the_readme_says() -> None:
    lines = (DATA / "compaction-hot-6.18.tracefs.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# tracer: nop"
    assert "entries-in-buffer/entries-written: 401/401" in lines[2]
    assert event_counts(lines) == {
        "mm_migrate_pages_start:": 5, "mm_migrate_pages:": 5, "set_migration_pte:": 109,
        "remove_migration_pte:": 109, "tlb_flush:": 165, "call_function_single_entry:": 8,
    }
    shootdowns = [line.split()[0] for line in lines if "reason:remote shootdown (1)" in line]
    assert shootdowns == ["hot-cpu1-10157"] * 3
