"""Small helpers shared by the engine tests."""

from __future__ import annotations

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
