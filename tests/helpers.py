"""Small helpers shared by the engine tests."""

from __future__ import annotations

import pytest

from core.engine import Engine
from core.events import Event
from core.scenario import Mode, Scenario


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
