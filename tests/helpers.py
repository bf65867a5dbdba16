"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot

from core.engine import Engine
from core.events import Event
from core.scenario import Mode, Scenario, scenario_from_dict


def folio_groups(orders: list[int]) -> list[dict[str, int]]:
    """The scenario's `memory.folios` for a list of folio orders, in list order (runs of the
    same order become one group)."""
    groups: list[dict[str, int]] = []
    for order in orders:
        if groups and groups[-1]["order"] == order:
            groups[-1]["count"] += 1
        else:
            groups.append({"order": order, "count": 1})
    return groups


def build_scenario(*, name: str, orders: list[int] | None = None, count: int = 12,
                   cpus: int = 8, initiator: int | None = None, threads: int = 4,
                   lazy: Sequence[int] | None = None, interval: int | None = None,
                   write_ratio: float | None = None, mode: str | None = None,
                   batch_pages: int | None = None, moves: int = 1, seed: int | None = None,
                   contention: float | None = None, move_contention: float | None = None,
                   writeback: float | None = None, enomem: float | None = None,
                   costs: dict[str, int] | None = None) -> Scenario:
    """A small two-node scenario for the engine tests: ``count`` base pages, or folios of the
    given ``orders`` in list order; the initiator is the last CPU unless given. What is left as
    None takes the scenario's own default."""
    workload = {"threads": threads, "lazy_cpus": list(lazy) if lazy is not None else None,
                "access_interval_ns": interval, "write_ratio": write_ratio}
    migration = {"mode": mode, "initiator_cpu": cpus - 1 if initiator is None else initiator,
                 "moves": moves, "batch_pages": batch_pages, "contention": contention,
                 "move_contention": move_contention, "writeback": writeback, "enomem": enomem}
    data: dict[str, Any] = {
        "name": name,
        "topology": {"nodes": 2, "cpus": cpus},
        "memory": {"folios": [{"order": 0, "count": count}] if orders is None
                   else folio_groups(orders)},
        "workload": {key: value for key, value in workload.items() if value is not None},
        "migration": {key: value for key, value in migration.items() if value is not None},
    }
    if seed is not None:
        data["seed"] = seed
    if costs:
        data["costs"] = costs
    return scenario_from_dict(data)


def headless_run(scenario: Scenario, mode: Mode | str | None = None) -> tuple[Engine, list[Event]]:
    """Run a scenario to the end as `migviz run` does (no checkpoints); the engine and every
    event it made."""
    events: list[Event] = []
    engine = Engine(scenario, Mode(mode) if mode is not None else None, checkpoints=False)
    engine.run_to_end(events.append)
    return engine, events


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `migviz` in-process: (exit code, stdout, stderr); an exit argparse forces counts like
    a returned code."""
    from tui.cli import main

    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, *expected: str) -> None:
    """Bad input's house style: one `migviz: error:` line, no traceback, no usage block."""
    assert err.startswith("migviz: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "usage:" not in err and "Traceback" not in err
    for text in expected:
        assert text in err, (text, err)


def drive(app: App[Any], script: Callable[[Pilot[Any]], Awaitable[None]], *,
          size: tuple[int, int]) -> None:
    """Run ``script`` against the app in a headless Pilot session of this terminal size
    (each test module fixes its usual size with functools.partial)."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())

