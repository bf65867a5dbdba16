"""Guided tours: a TOML file of steps the app plays one after another, narrated, for a class.

A step names a scenario and a mode (or the previous step's), where to run to (an event kind, a
folio, a batch, a time, the end), one to three sentences of narration, what to highlight on the
real widgets (a panel, a CPU row, a folio, a counter) and whether to wait for the presenter or go
on after some seconds. A step that keeps the previous step's scenario and mode continues from
where that step stopped; one that changes them (or says ``restart``) starts a fresh run.

Where a step stops is found once, on a fresh engine, as an event count: playing the step stops at
that event, and going back rebuilds the earlier step's instant exactly (the engine is
deterministic), so a tour looks the same however it is stepped through.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.engine import FOREVER, Engine
from core.errors import InputError
from core.events import Event, EventKind, RoundKind
from core.scenario import Mode, Scenario, ScenarioError, load_scenario

BUILTIN_TOUR = "intro"
PANELS = ("header", "grids", "node-0", "node-1", "legend", "phase", "tlb", "ipi", "stats", "log",
          "code", "split")
COUNTERS = ("pages", "rounds", "IPIs", "IPI/page", "pages/s", "stall p99", "retries", "failed",
            "copy-after-flush")
EVENTS = {kind.name.lower(): kind for kind in EventKind}
ROUNDS = {"pte": RoundKind.PTE, "pmd": RoundKind.PMD, "batch": RoundKind.BATCH,
          "fallback": RoundKind.FALLBACK}


class TourError(InputError):
    """A tour file that cannot be played: one line naming the step and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunTo(_Model):
    """Where a step runs to, from where the previous step stopped (or from the start)."""

    event: str | None = Field(None, description="an event kind, e.g. flush_send, remap")
    round: Literal["pte", "pmd", "batch", "fallback"] | None = Field(
        None, description="with a flush_* or ipi_recv event: the code path of the round")
    folio: int | None = Field(None, ge=0, description="an event of this folio")
    batch: int | None = Field(None, ge=1, description="the start of batch N (serial: folio N)")
    time_us: float | None = Field(None, ge=0, description="the first event at or after")
    count: int = Field(1, ge=1, description="the Nth such event")
    end: bool = Field(False, description="the end of the run")

    @model_validator(mode="after")
    def _one_target(self) -> RunTo:
        if self.event is not None and self.event not in EVENTS:
            close = difflib.get_close_matches(self.event, list(EVENTS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown event kind '{self.event}' (kinds: "
                             f"{', '.join(EVENTS)}){hint}")
        if self.round is not None and self.event not in ("flush_send", "ipi_recv", "flush_done"):
            raise ValueError("round goes with event = flush_send, ipi_recv or flush_done")
        targets = [self.event is not None or self.folio is not None, self.batch is not None,
                   self.time_us is not None, self.end]
        if sum(targets) != 1:
            raise ValueError("give one of: event (and/or folio), batch, time_us, end = true")
        return self

    def matches(self, event: Event) -> bool:
        """Whether ``event`` is one this target counts."""
        if self.time_us is not None:
            return event.time_ns >= self.time_us * 1000
        if self.batch is not None:
            return event.batch == self.batch and (event.serial or
                                                  event.kind is EventKind.BATCH_START)
        if self.event is not None and event.kind is not EVENTS[self.event]:
            return False
        if self.round is not None and event.round_kind is not ROUNDS[self.round]:
            return False
        return self.folio is None or event.folio == self.folio


class TourStep(_Model):
    """One step of a tour."""

    title: str = Field(min_length=1, max_length=60)
    narration: str = Field(min_length=1, max_length=480, description="one to three sentences")
    scenario: str | None = Field(None, description="built-in name or path (relative to the tour "
                                 "file); default: the previous step's")
    mode: Mode | None = Field(None, description="serial or batched; default: the previous "
                              "step's, else the scenario's")
    set: tuple[str, ...] = Field((), description="scenario overrides, as --set")
    restart: bool = Field(False, description="start a fresh run even if nothing changed")
    split: bool = Field(False, description="the race: serial against batched on one clock")
    versus_set: tuple[str, ...] = Field((), description="split: race against the scenario with "
                                        "these overrides instead of the other mode")
    run_to: RunTo | None = Field(None, description="where to run to; none: stay")
    speed: float | None = Field(None, gt=0, description="playback speed factor while running")
    highlight: tuple[str, ...] = Field((), description="panel:NAME, cpu:N, folio:N, counter:NAME")
    code: bool | None = Field(None, description="show (true) or hide (false) the code panel")
    after_s: float | None = Field(None, gt=0, description="go on after this many seconds once "
                                  "stopped; default: wait for the presenter")
    chart: bool = Field(False, description="open the closing chart (serial vs batched) once "
                        "the step has stopped")

    @model_validator(mode="after")
    def _check(self) -> TourStep:
        if self.split and self.run_to is not None and not self.run_to.end:
            raise ValueError("a split step runs the race: its run_to can only be end = true")
        if self.versus_set and not self.split:
            raise ValueError("versus_set races two configurations: it needs split = true")
        for mark in self.highlight:
            _check_mark(mark)
        return self


class Tour(_Model):
    """A tour: a title and its steps."""

    title: str = Field(min_length=1)
    step: tuple[TourStep, ...] = Field(min_length=1)


def _check_mark(mark: str) -> None:
    kind, _, name = mark.partition(":")
    if kind == "panel" and name in PANELS:
        return
    if kind == "counter" and name in COUNTERS:
        return
    if kind in ("cpu", "folio") and name.isdigit():
        return
    raise ValueError(f"highlight '{mark}': expected panel:NAME ({', '.join(PANELS)}), cpu:N, "
                     f"folio:N or counter:NAME ({', '.join(COUNTERS)})")


@dataclass(frozen=True, slots=True)
class Setup:
    """What a step plays: the scenario and mode, or the race."""

    scenario: Scenario
    mode: Mode
    split: bool
    versus: Scenario | None  # split: B's configuration instead of the other mode


@dataclass(frozen=True, slots=True)
class LoadedTour:
    """A validated tour with every step's scenario loaded."""

    label: str
    tour: Tour
    setups: tuple[Setup, ...]

    @property
    def steps(self) -> tuple[TourStep, ...]:
        return self.tour.step

    def chain_start(self, index: int) -> int:
        """The step whose fresh run step ``index`` continues (itself if it starts one)."""
        while index > 0 and not self.starts_fresh(index):
            index -= 1
        return index

    def starts_fresh(self, index: int) -> bool:
        step = self.steps[index]
        return index == 0 or step.restart or step.split or self.steps[index - 1].split or \
            self.setups[index] != self.setups[index - 1]

    def stop_at(self, index: int) -> int | None:
        """How many events the run has made when step ``index`` stops (None: a split step, or
        no run_to and nothing before it). Found on a fresh engine from the chain's start."""
        if self.steps[index].split:
            return None
        start = self.chain_start(index)
        setup = self.setups[index]
        engine = Engine(setup.scenario, setup.mode, checkpoints=False)
        for step in self.steps[start: index + 1]:
            run_to = step.run_to
            if run_to is None:
                continue
            if run_to.end:
                engine.run_until(FOREVER)
                continue
            seen = 0

            def stop(event: Event, run_to: RunTo = run_to) -> bool:
                nonlocal seen
                seen += run_to.matches(event)
                return seen >= run_to.count

            engine.run_until(FOREVER, stop)
        return engine.events


def builtin_tour_path() -> Path:
    return Path(str(resources.files("tui").joinpath("tours", f"{BUILTIN_TOUR}.toml")))


def load_tour(spec: str | None) -> LoadedTour:
    """The built-in tour (None) or a tour file, validated, each step's scenario loaded."""
    path = builtin_tour_path() if spec is None else Path(spec)
    label = "built-in tour" if spec is None else spec
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TourError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise TourError(f"{label}: is a directory, not a tour file") from None
    except OSError as err:
        raise TourError(f"{label}: cannot read: {err.strerror or err}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TourError(f"{label}: not UTF-8 text; a tour is a TOML file") from None
    except tomllib.TOMLDecodeError as err:
        raise TourError(f"{label}: not valid TOML: {err}") from None
    return _validate(data, label, path.parent)


def _validate(data: dict[str, Any], label: str, folder: Path) -> LoadedTour:
    try:
        tour = Tour.model_validate(data)
    except ValidationError as err:
        raise TourError(f"{label}: {_describe(err, data)}") from None
    setups: list[Setup] = []
    previous: Setup | None = None
    spec = ""  # the scenario the steps so far name ...
    sets: tuple[str, ...] = ()  # ... and its overrides
    for index, step in enumerate(tour.step):
        where = _step_name(index, step.title)
        if step.scenario is None and previous is None:
            raise TourError(f"{label}: {where}: scenario: the first step must name a scenario")
        if step.scenario is not None:
            spec, sets = _resolve(step.scenario, folder), step.set
        elif step.set:
            sets = step.set
        try:
            scenario = load_scenario(spec, sets)
            versus = load_scenario(spec, [*sets, *step.versus_set]) if step.versus_set else None
        except ScenarioError as err:
            raise TourError(f"{label}: {where}: {err}") from None
        mode = step.mode or (previous.mode if previous is not None and step.scenario is None
                             else scenario.migration.mode)
        folios = sum(group.count for group in scenario.memory.folios)
        for mark in step.highlight:
            kind, _, number = mark.partition(":")
            if kind == "cpu" and int(number) >= scenario.topology.cpus:
                raise TourError(f"{label}: {where}: highlight '{mark}': the scenario has "
                                f"{scenario.topology.cpus} CPUs (0-{scenario.topology.cpus - 1})")
            if kind == "folio" and int(number) >= folios:
                raise TourError(f"{label}: {where}: highlight '{mark}': the scenario has "
                                f"{folios} folios (0-{folios - 1})")
        previous = Setup(scenario, mode, step.split, versus)
        setups.append(previous)
    return LoadedTour(label, tour, tuple(setups))


def _resolve(name: str, folder: Path) -> str:
    """A scenario path in a tour is relative to the tour file; a built-in name stays a name."""
    if name.endswith(".toml") or "/" in name:
        path = Path(name)
        return str(path if path.is_absolute() else folder / path)
    return name


def _step_name(index: int, title: object) -> str:
    return f"step {index + 1}" + (f" ('{title}')" if isinstance(title, str) and title else "")


def _describe(err: ValidationError, data: dict[str, Any]) -> str:
    """The first error on one line, naming the step (number and title) and the field."""
    item = err.errors()[0]
    loc = list(item["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "step" and isinstance(loc[1], int):
        steps = data.get("step")
        title = steps[loc[1]].get("title") if isinstance(steps, list) and \
            isinstance(steps[loc[1]], dict) else None
        where = _step_name(loc[1], title) + ": "
        loc = loc[2:]
    field = ".".join(str(part) for part in loc)
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        model: type[BaseModel] = RunTo if "run_to" in loc[:-1] else (TourStep if where else Tour)
        close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
        message = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
    elif item["type"] == "missing":
        message = "required key is missing"
    elif "input" in item and item["type"] not in ("value_error",):
        message += f" (got {item['input']!r})"
    if field == "step" and item["type"] == "missing":
        return "no [[step]] tables: a tour needs at least one step"
    return f"{where}{field}: {message}" if field else f"{where}{message}"
