"""Bad command lines and bad input: one `migviz: error:` line and exit 2, never a usage block
or a traceback; `--help` is unchanged."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import assert_one_line, call

from core.breakpoints import Breakpoint
from core.scenario import Caller, builtin_names, load_scenario

# ---------------------------------------------------------------------------------------------
# Argument errors: one line naming the command whose --help explains it


ARGUMENT_ERRORS = [
    (["tui", "--speed", "0"], "migviz tui", "--speed"),
    (["tui", "--speed", "-1"], "migviz tui", "--speed"),
    (["tui", "--speed", "fast"], "migviz tui", "not a number"),
    (["tui", "--speed", "nan"], "migviz tui", "--speed"),
    (["tui", "--speed", "inf"], "migviz tui", "finite"),
    (["tui", "--break", "nonsense"], "migviz tui", "nonsense"),
    (["compare", "default", "--mode", "serial"], "migviz compare", "--mode"),
    (["bogus"], "migviz", "bogus"),
    (["--bogus"], "migviz", "--bogus"),
    (["run"], "migviz run", "scenario"),
    (["run", "tiny", "--bogus"], "migviz run", "--bogus"),
    (["run", "tiny", "surplus"], "migviz run", "surplus"),
    (["run", "tiny", "--mode", "fast"], "migviz run", "fast"),
    (["run", "tiny", "--set"], "migviz run", "--set"),
    (["trace", "tiny", "--format", "svg"], "migviz trace", "svg"),
    (["bench", "--mode", "fast"], "migviz bench", "fast"),
    (["scenarios", "bogus"], "migviz scenarios", "bogus"),
    (["scenarios", "show"], "migviz scenarios show", "scenario"),
    (["scenarios", "costs", "surplus"], "migviz scenarios costs", "surplus"),
]


@pytest.mark.parametrize(("argv", "prog", "expected"), ARGUMENT_ERRORS,
                         ids=[" ".join(case[0]) for case in ARGUMENT_ERRORS])
def test_argument_errors_are_one_line(argv: list[str], prog: str, expected: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, *argv)
    assert code == 2 and out == ""
    assert_one_line(err, expected)
    assert err.endswith(f" (see '{prog} --help')\n"), err


def test_compare_says_it_runs_both_modes(capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = call(capsys, "compare", "default", "--mode", "serial")
    assert "both modes" in err


def test_bench_mode_is_for_sweeps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "bench", "tiny", "--mode", "serial")
    assert code == 2 and out == ""
    assert_one_line(err, "--mode", "--sweep", "both modes")


@pytest.mark.parametrize(("word", "hint"), [("tiny", "migviz tui tiny"),
                                            ("mine.toml", "migviz tui mine.toml"),
                                            ("rnu", "did you mean 'run'")])
def test_unknown_command_gets_a_hint(word: str, hint: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, word)
    assert code == 2 and out == ""
    assert_one_line(err, f"unknown command '{word}'", hint, "(see 'migviz --help')")


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["scenarios", "show", "--help"]])
def test_help_is_still_the_full_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, *argv)
    assert code == 0 and err == ""
    assert out.startswith(f"usage: migviz {' '.join(argv[:-1])}".rstrip())
    assert "-h, --help" in out


def test_bench_help_shows_percent_signs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "bench", "--help")
    assert code == 0
    assert "%%" not in out
    assert "-99.1%" in " ".join(out.split())


# ---------------------------------------------------------------------------------------------
# --break takes several kinds in one option


@pytest.fixture
def app_args(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What the app would be opened with (the app itself is not started)."""
    seen: dict[str, object] = {}

    def fake_run_app(*args: object, **kwargs: object) -> int:
        seen["args"] = args
        seen.update(kwargs)
        return 0

    monkeypatch.setattr("tui.app.run_app", fake_run_app)
    return seen


def test_break_takes_several_kinds(capsys: pytest.CaptureFixture[str],
                                   app_args: dict[str, object]) -> None:
    code, _, err = call(capsys, "tui", "tiny", "--break", "flush", "retry")
    assert code == 0, err
    assert app_args["breakpoints"] == frozenset({Breakpoint.FLUSH, Breakpoint.RETRY})
    code, _, err = call(capsys, "tui", "--break", "split", "--break", "batch", "call", "--paused")
    assert code == 0, err
    assert app_args["breakpoints"] == frozenset({Breakpoint.SPLIT, Breakpoint.BATCH,
                                                 Breakpoint.CALL})
    assert app_args["paused"] is True


def test_bad_break_kind_lists_the_valid_ones(capsys: pytest.CaptureFixture[str],
                                             app_args: dict[str, object]) -> None:
    code, out, err = call(capsys, "tui", "--break", "flush", "nonsense")
    assert code == 2 and out == "" and "breakpoints" not in app_args
    assert_one_line(err, "nonsense", ", ".join(kind.value for kind in Breakpoint))


def test_a_scenario_after_break_gets_a_hint(capsys: pytest.CaptureFixture[str],
                                            app_args: dict[str, object]) -> None:
    code, _, err = call(capsys, "tui", "--break", "flush", "tiny")
    assert code == 2
    assert_one_line(err, "'tiny'", "before --break")


# ---------------------------------------------------------------------------------------------
# trace -o


@pytest.mark.parametrize("force", [False, True])
def test_trace_into_a_directory_says_so(force: bool, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["trace", "tiny", "-o", str(tmp_path)] + (["--force"] if force else [])
    code, out, err = call(capsys, *argv)
    assert code == 2 and out == ""
    assert_one_line(err, f"{tmp_path}: is a directory")
    assert "already exists" not in err


def test_trace_to_an_empty_file_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "trace", "tiny", "-o", "")
    assert code == 2
    assert_one_line(err, "-o", "empty")


def test_trace_below_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").write_text("mine\n")
    target = tmp_path / "plain" / "run.trace"
    code, out, err = call(capsys, "trace", "tiny", "-o", str(target))
    assert code != 0 and out == ""
    assert_one_line(err, str(target), "Not a directory")
    assert (tmp_path / "plain").read_text() == "mine\n"


def test_a_failed_forced_trace_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mine.trace"
    target.write_text("precious notes\n")

    def failing(events: object, formatter: object) -> Iterator[str]:
        yield "a first line"
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("tui.cli.write_trace", failing)
    code, out, err = call(capsys, "trace", "tiny", "-o", str(target), "--force")
    assert code == 1 and out == ""
    assert_one_line(err, f"cannot write {target}: No space left on device")
    assert target.read_text() == "precious notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.trace"]  # no temporary left


def test_a_failed_new_trace_leaves_no_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(events: object, formatter: object) -> Iterator[str]:
        yield "a first line"
        raise KeyboardInterrupt

    monkeypatch.setattr("tui.cli.write_trace", interrupted)
    code, _, err = call(capsys, "trace", "tiny", "-o", str(tmp_path / "new.trace"))
    assert code == 130 and err == ""
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# The migrating task has a CPU of its own


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_initiator_on_a_workload_cpu_is_refused(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Six threads on CPUs 0..5 by default; the migrating task on CPU 2 would share one.
    path = write(tmp_path, "name = 'x'\n[migration]\ninitiator_cpu = 2\n")
    code, out, err = call(capsys, "run", str(path))
    assert code == 2 and out == ""
    assert_one_line(err, str(path), "migration.initiator_cpu", "CPU 2", "workload thread",
                    "mm_cpumask")
    assert "[from --set]" not in err


@pytest.mark.parametrize("override", ["migration.initiator_cpu=1", "workload.cpus=[0, 3]",
                                      "workload.threads=4"])
def test_initiator_on_a_workload_cpu_by_set(override: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # tiny: threads on CPUs 0 and 1, the migrating task on CPU 3 of 4.
    code, out, err = call(capsys, "run", "tiny", "--set", override)
    assert code == 2 and out == ""
    assert_one_line(err, "migration.initiator_cpu", "workload thread", "[from --set]")


def test_initiator_on_a_workload_cpu_by_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "bench", "tiny", "--sweep", "migration.initiator_cpu=3,0")
    assert code == 2 and out == ""
    assert_one_line(err, "--sweep migration.initiator_cpu=0", "workload thread")


def test_no_builtin_puts_the_initiator_on_a_workload_cpu() -> None:
    for name in builtin_names():
        scenario = load_scenario(name)
        if scenario.migration.caller is Caller.NUMA_BALANCING:
            continue  # the threads migrate: there is no migrating task of its own
        assert scenario.migration.initiator_cpu not in scenario.workload.thread_cpus, name


# ---------------------------------------------------------------------------------------------
# Values the engine cannot hold, and files that are not scenarios


BAD_VALUES = [
    ("seed=-1", "seed"),
    ("seed=18446744073709551616", "seed"),
    ("workload.access_interval_ns=99999999999999999999", "workload.access_interval_ns"),
    ("costs.copy_page_ns=4000000000000000000", "costs.copy_page_ns"),
    ("memory.folios=[{order = 9, count = 1048576}]", "memory.folios"),
    (".=3", "expected section.key=value"),
    ("migration.=3", "expected section.key=value"),
    ("a..b=3", "expected section.key=value"),
    ("nosuch.key=1", "nosuch: unknown key [from --set]"),
]


@pytest.mark.parametrize(("override", "expected"), BAD_VALUES, ids=[v[0] for v in BAD_VALUES])
def test_values_out_of_reach_are_bad_input(override: str, expected: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "run", "tiny", "--set", override)
    assert code == 2 and out == ""
    assert_one_line(err, expected)


def test_a_device_is_not_a_scenario_file(capsys: pytest.CaptureFixture[str]) -> None:
    for device in ("/dev/null", "/dev/zero"):
        code, out, err = call(capsys, "run", device)
        assert code == 2 and out == ""
        assert_one_line(err, f"{device}: not a regular file")


def test_a_file_that_cannot_be_read(capsys: pytest.CaptureFixture[str]) -> None:
    # Reading /proc/self/mem at offset 0 fails with EIO, even as root.
    code, out, err = call(capsys, "run", "/proc/self/mem")
    assert code == 2 and out == ""
    assert_one_line(err, "/proc/self/mem: cannot read: Input/output error")
    assert "[Errno" not in err


def test_a_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"name = 'x'\n\xfe\xff\x00binary")
    code, out, err = call(capsys, "scenarios", "show", str(path))
    assert code == 2 and out == ""
    assert_one_line(err, str(path), "not UTF-8 text")
    assert "codec" not in err


def test_scenarios_show_reads_a_pipe_once(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # `migviz scenarios show <(sed ... default.toml)`: the file is a pipe that can be read once.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    text = "name = 'piped'\n[migration]\nmoves = 1\n"
    done = threading.Event()

    def writer() -> None:
        with open(fifo, "w") as stream:
            stream.write(text)
        # A second reader would block for ever: let it read an empty pipe instead.
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                done.wait(0.01)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        code, out, err = call(capsys, "scenarios", "show", str(fifo))
    finally:
        done.set()
        thread.join()
    assert code == 0, err
    assert out == text


def test_out_of_memory_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    def exhausted(*args: object, **kwargs: object) -> dict[str, object]:
        raise MemoryError

    monkeypatch.setattr("tui.cli.run_once", exhausted)
    code, out, err = call(capsys, "run", "tiny")
    assert code == 1 and out == ""
    assert_one_line(err, "out of memory")


# ---------------------------------------------------------------------------------------------


def test_costs_footer_cites_the_shipped_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "scenarios", "costs")
    assert code == 0
    assert "docs/kernel.md" in out and "§N" in out
    assert "kernel-migrate-pages" not in out  # the old document, outside the repository


@pytest.mark.parametrize("option", ["--keymap", "--theme"])
def test_a_device_is_not_a_keymap_or_theme_file(option: str, app_args: dict[str, object],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for device in ("/dev/null", "/dev/zero"):
        code, out, err = call(capsys, "tui", "tiny", option, device)
        assert code == 2 and out == "" and "paused" not in app_args
        assert_one_line(err, f"{device}: not a regular file")
