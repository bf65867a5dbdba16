"""Output that cannot be written: a full disk ends with one `migviz: error:` line and a non-zero
exit, a reader that went away (`| head`) ends quietly. Run as a real process, because Python
itself flushes standard output at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FULL = Path("/dev/full")  # every write fails with ENOSPC (Linux)
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="needs Linux's /dev/full")

COMMANDS = [
    ["run", "tiny"],
    ["run", "tiny", "--json"],
    ["compare", "tiny"],
    ["compare", "tiny", "--json"],
    ["trace", "tiny"],
    ["trace", "tiny", "--format", "perfetto"],
    ["bench", "tiny", "--sweep", "migration.batch_pages=4,8", "--set", "migration.moves=1"],
    ["scenarios"],
    ["scenarios", "show", "tiny"],
    ["scenarios", "costs"],
    ["tui", "--keymap-ids"],
    ["--help"],
]


def migviz(argv: list[str], *, unbuffered: bool = False,
           **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run the command line; standard output buffered as usual, or each write going straight
    through (PYTHONUNBUFFERED: a failure then shows at the write, not at the last flush)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    done: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        [sys.executable, "-m", "tui.cli", *argv], text=True, check=False, env=env, **kwargs)
    return done


@needs_dev_full
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_full_standard_output_is_one_line(argv: list[str]) -> None:
    with FULL.open("w") as full:
        result = migviz(argv, stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 1
    assert result.stderr == "migviz: error: cannot write standard output: No space left on device\n"


@needs_dev_full
@pytest.mark.parametrize("argv", [["run", "tiny", "--json"], ["trace", "tiny"], ["--help"],
                                  ["scenarios", "costs"]], ids=" ".join)
def test_full_unbuffered_standard_output_is_one_line(argv: list[str]) -> None:
    with FULL.open("w") as full:
        result = migviz(argv, unbuffered=True, stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 1
    assert result.stderr == "migviz: error: cannot write standard output: No space left on device\n"


@needs_dev_full
@pytest.mark.parametrize("fmt", ["ftrace", "perfetto"])
def test_full_trace_file_is_one_line(fmt: str) -> None:
    result = migviz(["trace", "tiny", "--format", fmt, "-o", str(FULL), "--force"],
                    capture_output=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"migviz: error: cannot write {FULL}: No space left on device\n"


@needs_dev_full
def test_errors_still_exit_2_when_standard_error_is_full() -> None:
    with FULL.open("w") as full:
        result = migviz(["run", "nosuch"], stdout=subprocess.PIPE, stderr=full)
    assert result.returncode == 2 and result.stdout == ""


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("argv", [["trace", "tiny"], ["run", "tiny"], ["scenarios", "costs"],
                                  ["--help"]], ids=" ".join)
def test_a_closed_pipe_ends_quietly(argv: list[str], unbuffered: bool) -> None:
    # `migviz trace tiny | head -0`: the reader is gone before the first write.
    read, write = os.pipe()
    os.close(read)
    try:
        result = migviz(argv, unbuffered=unbuffered, stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    assert result.stderr == ""
    assert result.returncode == 0


def test_head_reads_the_first_line_and_the_rest_is_dropped() -> None:
    # The real shape of `migviz trace default | head -1`: the reader goes away mid-stream.
    process = subprocess.Popen([sys.executable, "-m", "tui.cli", "trace", "default"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read()
    process.stderr.close()
    code = process.wait()
    assert first == "# tracer: nop\n"
    assert err == "" and code == 0
