"""The progress line of long headless runs (`run`, `compare`, `trace`, `bench`).

One line on standard error, redrawn in place with a carriage return, e.g.::

    migviz: pmbench-2s batched 2/2  ███████░░░  move 1/2 · 401.2 ms simulated · 12 s

It appears only when standard error is a terminal and a run has gone on for DELAY_S seconds,
and it is blanked when the runs end (or are interrupted), so pipes, files and quick runs never
see it. The wall clock is read once every EVERY events, so watching costs a comparison per
event.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from time import monotonic as _system_monotonic
from types import TracebackType
from typing import TextIO

from core.bench import Pool
from core.engine import Engine
from core.events import Event
from tui.units import format_ns

DELAY_S = 2.0  # runs shorter than this show nothing
EVERY = 4096  # events between two looks at the wall clock (a few ms to ~0.1 s of work)
REDRAW_S = 0.2  # at most five redraws a second
BAR_CELLS = 10

# Looked up at each call, so that tests can put a fake clock here.
monotonic: Callable[[], float] = _system_monotonic


class StatusLine:
    """One line on a terminal, redrawn in place with a carriage return and blanked at the end;
    nothing at all when the stream is not a terminal (or stops taking writes)."""

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self._stream = stream
        self.on = enabled and _is_terminal(stream)
        self._columns = _columns(stream) if self.on else 80
        self._shown = 0  # characters of the line now on the terminal

    def draw(self, text: str) -> None:
        """Show ``text`` (cut to the terminal's width) in place of the line before."""
        if not self.on:
            return
        line = text[: max(self._columns - 1, 1)]
        self._write("\r" + line + " " * max(self._shown - len(line), 0))
        self._shown = len(line)

    def clear(self) -> None:
        """Blank the line, leaving the cursor where the line began."""
        if self._shown:
            self._write("\r" + " " * self._shown + "\r")
            self._shown = 0

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # standard error went away: carry on without it
            self.on = False
            self._shown = 0


class Progress:
    """Watches the runs of one command and draws their progress on ``stream``."""

    def __init__(self, stream: TextIO, *, runs: int = 1, enabled: bool = True) -> None:
        self._line = StatusLine(stream, enabled=enabled)
        self._runs = max(runs, 1)
        self._run = -1
        self._start = monotonic() if self._line.on else 0.0
        self._last_draw = float("-inf")
        self._done = 0.0  # fraction of all runs shown by the bar: it never goes back

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def watch(self, engine: Engine) -> Callable[[Event], None] | None:
        """What to call with each event of the next run, on ``engine`` (None when nothing is
        ever shown: a run without a callback costs nothing)."""
        if not self._line.on:
            return None
        self._run += 1
        run, every = self._run, EVERY
        scenario = engine.scenario
        label = f"{scenario.name} {engine.mode.value}"
        if self._runs > 1:
            label += f" {run + 1}/{self._runs}"
        moves, folios = scenario.migration.moves, scenario.memory.total_folios
        if engine.machine.numa:  # NUMA balancing: how far the scanner has got, pass by pass
            moves, folios, unit = scenario.numa.passes, 0, "scan pass"
        else:
            unit = "move"
        look = every  # the engine's event count at the next look (a headless run that makes
        # events in bulk passes only some of them: their count is the engine's, not the calls')

        def on_event(event: Event) -> None:
            nonlocal look
            if engine.events >= look:
                look = engine.events + every
                if unit != "move":
                    event = event._replace(move=event.pass_)
                self._tick(label, run, moves, folios, engine.clock, event, unit)

        return on_event

    def pool(self, jobs: int) -> Pool:
        """How to carry out this command's runs: one after another, each watched, or up to
        ``jobs`` at a time in worker processes, with a count of those done."""
        if jobs <= 1:
            return Pool(1, self.watch)
        if not self._line.on:
            return Pool(jobs)
        return Pool(jobs, None, lambda done, total: self._finished(done, total, jobs))

    def _finished(self, done: int, total: int, jobs: int) -> None:
        elapsed = monotonic() - self._start
        if elapsed < DELAY_S:
            return
        cells = min(int(done / total * BAR_CELLS), BAR_CELLS)
        bar = "█" * cells + "░" * (BAR_CELLS - cells)
        self._line.draw(f"migviz: {total} runs, {min(jobs, total)} at a time  {bar}  "
                        f"{done}/{total} done · {elapsed:.0f} s")

    def follow(self, engine: Engine, events: Iterable[Event]) -> Iterator[Event]:
        """The events of a run on ``engine``, watched on their way to the caller."""
        on_event = self.watch(engine)
        if on_event is None:
            yield from events
            return
        for event in events:
            on_event(event)
            yield event

    def close(self) -> None:
        """Blank the line, leaving the cursor where the line began."""
        self._line.clear()

    def _tick(self, label: str, run: int, moves: int, folios: int, clock_ns: int,
              event: Event, unit: str = "move") -> None:
        now = monotonic()
        elapsed = now - self._start
        if not self._line.on or elapsed < DELAY_S or now - self._last_draw < REDRAW_S:
            return
        self._last_draw = now
        move = min(max(event.move, 0), moves - 1)
        # Folios are handled in list order within a move: the folio in hand says how far the
        # move has got (retries go back, hence the max; pieces of a split THP are past the end).
        within = event.folio / folios if 0 <= event.folio < folios else 0.0
        self._done = max(self._done, (run + (move + within) / moves) / self._runs)
        cells = min(int(self._done * BAR_CELLS), BAR_CELLS)
        bar = "█" * cells + "░" * (BAR_CELLS - cells)
        self._line.draw(f"migviz: {label}  {bar}  {unit} {move + 1}/{moves} · "
                        f"{format_ns(clock_ns)} simulated · {elapsed:.0f} s")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):  # closed
        return False


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError):  # not a real terminal (io.UnsupportedOperation is both)
        return 80
