"""SVG snapshots of the main states at 80×24 and 120×40 (plain ``def`` tests, as
pytest-textual-snapshot requires). Every app starts paused and is driven by keys, so the
pictures are deterministic. Regenerate with ``pytest tests/test_app_snapshots.py
--snapshot-update`` after checking the report, and only then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from core.scenario import Mode, load_scenario
from tui.app import MigvizApp

SMALL = (80, 24)
LARGE = (120, 40)

Compare = Callable[..., bool]


def app(name: str = "default", mode: Mode | None = None, theme: str | None = None) -> MigvizApp:
    return MigvizApp(load_scenario(name), mode, paused=True, theme=theme)


def to_phase(name: str, extra_events: int = 0) -> Callable[[Pilot[Any]], Any]:
    """A run_before that presses p until the named phase, then n a few times."""

    async def run_before(pilot: Pilot[Any]) -> None:
        migviz = pilot.app
        assert isinstance(migviz, MigvizApp)
        for _ in range(12):
            if migviz.lane.engine.view().phase.name == name:
                break
            await pilot.press("p")
        for _ in range(extra_events):
            await pilot.press("n")
        await pilot.pause()

    return run_before


def test_start_small(snap_compare: Compare) -> None:
    assert snap_compare(app(), terminal_size=SMALL)


def test_start_large(snap_compare: Compare) -> None:
    assert snap_compare(app(), terminal_size=LARGE)


def test_flush_in_flight_small(snap_compare: Compare) -> None:
    assert snap_compare(app(), terminal_size=SMALL, run_before=to_phase("FLUSH", 3))


def test_flush_in_flight_large(snap_compare: Compare) -> None:
    assert snap_compare(app(), terminal_size=LARGE, run_before=to_phase("FLUSH", 3))


def test_move_phase_large(snap_compare: Compare) -> None:
    assert snap_compare(app(), terminal_size=LARGE, run_before=to_phase("MOVE", 40))


def test_serial_mode_large(snap_compare: Compare) -> None:
    assert snap_compare(app(mode=Mode.SERIAL), terminal_size=LARGE,
                        press=["B", "B", "B", "B", "B", "p", "n", "n"])


def test_pending_toggle_small(snap_compare: Compare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await to_phase("UNMAP", 1)(pilot)
        await pilot.press("b")
        await pilot.pause()

    assert snap_compare(app("tiny"), terminal_size=SMALL, run_before=run_before)


def test_split_view_large(snap_compare: Compare) -> None:
    assert snap_compare(app(), terminal_size=LARGE, press=["s", *["n"] * 30])


def test_split_view_small(snap_compare: Compare) -> None:
    assert snap_compare(app("tiny"), terminal_size=SMALL, press=["s", *["n"] * 12])


def test_help_small(snap_compare: Compare) -> None:
    assert snap_compare(app(), terminal_size=SMALL, press=["question_mark"])


def test_inspect_folio_large(snap_compare: Compare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await to_phase("MOVE", 6)(pilot)
        await pilot.press("l", "l", "enter")
        await pilot.pause()

    assert snap_compare(app(), terminal_size=LARGE, run_before=run_before)


def test_too_small(snap_compare: Compare) -> None:
    assert snap_compare(app(), terminal_size=(50, 16))


def test_light_theme_large(snap_compare: Compare) -> None:
    assert snap_compare(app(theme="migviz-light"), terminal_size=LARGE,
                        run_before=to_phase("FLUSH", 2))


def test_okabe_ito_theme_small(snap_compare: Compare) -> None:
    assert snap_compare(app("thp", theme="migviz-okabe-ito"), terminal_size=SMALL,
                        run_before=to_phase("MOVE", 10))
