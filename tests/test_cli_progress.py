"""The progress line of long headless runs: on a terminal's standard error only, redrawn with a
carriage return, erased at the end. A fake terminal and a fake clock stand in for real ones."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

import core.migrate
import tui.progress as progress_module
from core.bench import run_once
from core.engine import Engine
from core.scenario import load_scenario
from tui.cli import main
from tui.progress import Progress


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    """Wall time that moves on by `step` seconds each time it is read."""

    def __init__(self, step: float = 1.0) -> None:
        self.now = 0.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", fake)
    monkeypatch.setattr(progress_module, "EVERY", 16)  # tiny runs have a few hundred events
    # A headless run makes up to BULK_FOLIOS folios at once and passes on only the last of
    # those events: one batch (or folio) at a time, so that tiny runs pass on several.
    monkeypatch.setattr(core.migrate, "BULK_FOLIOS", 1)
    return fake


def drawn_lines(text: str) -> list[str]:
    """What each redraw put on the line (carriage returns separate them)."""
    return [piece.rstrip(" ") for piece in text.split("\r") if piece.strip(" ")]


def assert_erased(text: str) -> None:
    """The last thing written blanks the line and returns to its start."""
    before, sep, after = text.rpartition("\r")
    assert sep and after == ""
    blank = before.rpartition("\r")[2]
    assert blank.strip(" ") == "" and len(blank) >= max(len(line) for line in drawn_lines(text))


def test_a_long_run_shows_a_bar_then_erases_it(clock: FakeClock) -> None:
    stream = FakeTerminal()
    scenario = load_scenario("tiny")
    with Progress(stream) as progress:
        run_once(scenario, None, progress.watch)
    text = stream.getvalue()
    lines = drawn_lines(text)
    assert lines, text
    for line in lines:
        assert line.startswith("migviz: tiny batched  ")
        assert "simulated" in line and " s" in line
    assert any("move 1/2" in line for line in lines) and any("move 2/2" in line for line in lines)
    cells = [line.count("█") for line in lines]
    assert cells == sorted(cells)  # the bar never goes back
    assert all(line.count("█") + line.count("░") == 10 for line in lines)
    assert_erased(text)
    assert "\n" not in text


def test_the_wall_clock_is_read_every_few_thousand_events(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", fake)
    every = progress_module.EVERY
    assert every >= 1000
    stream = FakeTerminal()
    scenario = load_scenario("default", ["memory.folios=[{order = 0, count = 5000}]",
                                         "migration.moves=1"])
    engine = Engine(scenario, checkpoints=False, history=1)
    events = 0
    with Progress(stream) as progress:
        on_event = progress.watch(engine)
        assert on_event is not None
        for event in engine.iter_events():
            on_event(event)
            events += 1
    assert events > 3 * every
    assert fake.reads <= events // every + 2
    assert drawn_lines(stream.getvalue())


def test_a_short_run_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "monotonic", lambda: 1.0)  # never two seconds in
    monkeypatch.setattr(progress_module, "EVERY", 16)
    stream = FakeTerminal()
    with Progress(stream) as progress:
        run_once(load_scenario("tiny"), None, progress.watch)
    assert stream.getvalue() == ""


def test_no_terminal_no_progress(clock: FakeClock) -> None:
    stream = io.StringIO()
    with Progress(stream) as progress:
        assert progress.watch is not None
        run_once(load_scenario("tiny"), None, progress.watch)
    assert stream.getvalue() == ""
    with Progress(FakeTerminal(), enabled=False) as progress:
        assert progress.watch(object()) is None  # type: ignore[arg-type]


def test_the_line_fits_the_terminal(clock: FakeClock) -> None:
    stream = FakeTerminal()  # no real terminal behind it: 80 columns
    scenario = load_scenario("tiny", ["name='" + "a-very-long-name-" * 8 + "'"])
    with Progress(stream) as progress:
        run_once(scenario, None, progress.watch)
    lines = drawn_lines(stream.getvalue())
    assert lines and all(len(line) <= 79 for line in lines)


def test_erased_when_the_run_is_interrupted(clock: FakeClock) -> None:
    stream = FakeTerminal()
    engine = Engine(load_scenario("tiny"), checkpoints=False, history=1)
    with pytest.raises(KeyboardInterrupt), Progress(stream) as progress:
        on_event = progress.watch(engine)
        assert on_event is not None
        for seen, event in enumerate(engine.iter_events()):
            on_event(event)
            if seen == 50:  # of tiny's 72
                raise KeyboardInterrupt
    assert drawn_lines(stream.getvalue())
    assert_erased(stream.getvalue())


# ---------------------------------------------------------------------------------------------
# Through the command line


def stderr_terminal(monkeypatch: pytest.MonkeyPatch) -> FakeTerminal:
    """Make standard error a terminal. Called in the test itself: capsys puts its own stream
    back when the test starts."""
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


@pytest.mark.parametrize(("argv", "label"), [
    (["run", "tiny"], "tiny batched"),
    (["run", "tiny", "--mode", "serial"], "tiny serial"),
    (["compare", "tiny", "--jobs", "1"], "tiny batched 2/2"),
    (["bench", "tiny", "--set", "migration.moves=1", "--jobs", "1"], "tiny batched 2/2"),
    (["bench", "tiny", "--sweep", "migration.batch_pages=2,4,8", "--jobs", "1"],
     "tiny batched 3/3"),
    # Runs in parallel processes: how many are done.
    (["compare", "tiny", "--jobs", "2"], "2 runs, 2 at a time"),
    (["bench", "tiny", "--sweep", "migration.batch_pages=2,4,8", "--jobs", "2"],
     "3 runs, 2 at a time"),
    (["trace", "tiny"], "tiny batched"),
    (["trace", "tiny", "--format", "perfetto"], "tiny batched"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_headless_commands_show_progress(argv: list[str], label: str, clock: FakeClock,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    terminal = stderr_terminal(monkeypatch)
    assert main(argv) == 0
    assert capsys.readouterr().out  # the command's own output is unchanged, on stdout
    text = terminal.getvalue()
    assert any(line.startswith(f"migviz: {label}  ") for line in drawn_lines(text)), text
    assert_erased(text)


@pytest.mark.parametrize("argv", [["run", "tiny", "--json"], ["compare", "tiny", "--json"],
                                  ["bench", "tiny", "--sweep", "migration.batch_pages=2,4",
                                   "--json"]], ids=" ".join)
def test_no_progress_with_json(argv: list[str], clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    terminal = stderr_terminal(monkeypatch)
    assert main(argv) == 0
    assert capsys.readouterr().out
    assert terminal.getvalue() == ""


def test_no_progress_while_the_trace_goes_to_the_terminal(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    terminal = stderr_terminal(monkeypatch)
    screen = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", screen)
    assert main(["trace", "tiny"]) == 0
    assert screen.getvalue().startswith("# tracer: nop")
    assert terminal.getvalue() == ""
    # To a file, the terminal is free for the progress line.
    assert main(["trace", "tiny", "-o", str(tmp_path / "t.trace")]) == 0
    assert drawn_lines(terminal.getvalue())
    assert_erased(terminal.getvalue())
