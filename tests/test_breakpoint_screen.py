"""The breakpoint screen reads on/off without colour: with NO_COLOR, a breakpoint that is on
shows [x] and one that is off [ ] (SelectionList's own box is one glyph either way)."""

from __future__ import annotations

import asyncio

import pytest

from core.breakpoints import Breakpoint
from core.scenario import load_scenario
from tui.app import MigvizApp
from tui.screens.breakpoints import BreakpointChoice, BreakpointScreen, CheckList


def boxes(checklist: CheckList) -> list[str]:
    """Each row as drawn: its box and the breakpoint's name."""
    rows = [checklist.render_line(y).text for y in range(checklist.option_count)]
    return [f"{row[:3]} {row[4:].split()[0]}" for row in rows]


def test_no_color_boxes_follow_the_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # Textual reads it when the app is made
    app = MigvizApp(load_scenario("tiny"), paused=True)

    async def main() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert app.no_color
            await pilot.press("k")
            await pilot.pause()
            assert isinstance(app.screen, BreakpointScreen)
            checklist = app.screen.query_one(CheckList)
            names = [kind.value for kind in Breakpoint] + ["folio"]
            assert boxes(checklist) == [f"[ ] {name}" for name in names]

            await pilot.press("down", "space")  # the second row (retry) on
            await pilot.pause()
            assert boxes(checklist) == [f"[{'x' if name == 'retry' else ' '}] {name}"
                                        for name in names]

            await pilot.press("down", "enter")  # enter toggles too: failure on
            await pilot.press("up", "space")  # retry off again
            await pilot.pause()
            assert boxes(checklist) == [f"[{'x' if name == 'failure' else ' '}] {name}"
                                        for name in names]

            await pilot.press("k")  # k (or escape) applies
            await pilot.pause()
            assert not isinstance(app.screen, BreakpointScreen)
            assert app.breakpoints == BreakpointChoice(frozenset({Breakpoint.FAILURE}), None)

    asyncio.run(main())


def test_boxes_show_the_choice_the_screen_opens_with() -> None:
    app = MigvizApp(load_scenario("tiny"), paused=True,
                    breakpoints=frozenset({Breakpoint.FLUSH, Breakpoint.CALL}))

    async def main() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("k")
            await pilot.pause()
            rows = boxes(app.screen.query_one(CheckList))
            on = {row.split()[-1] for row in rows if row.startswith("[x]")}
            assert on == {"flush", "call"}
            assert all(row.startswith("[ ]") for row in rows if row.split()[-1] not in on)

    asyncio.run(main())
