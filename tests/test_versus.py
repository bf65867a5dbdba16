"""`migviz tui A --versus B`: split view races two configurations on one clock."""

from __future__ import annotations

import asyncio

from core.scenario import load_scenario
from tui.app import MigvizApp
from tui.widgets.ipi_panel import IpiPanel
from tui.widgets.split_view import ModeColumn, SplitView


def test_the_race_is_a_against_b_and_each_side_runs_its_own_configuration() -> None:
    a = load_scenario("tiny")
    b = load_scenario("tiny", ["topology.arch=arm64-tlbi"])
    app = MigvizApp(a, paused=True, versus=b, versus_labels=("tiny", "tiny arm64"))

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.pause()
            assert app.split and app.race is not None
            left, right = app.race
            assert left.scenario is a and right.scenario is b
            for _ in range(400):
                await pilot.press("n")
                if left.engine.done and right.engine.done:
                    break
            await pilot.pause()
            race = str(app.query_one("#race").render())
            titles = [str(column.query_one(".mode-title").render())
                      for column in app.query_one(SplitView).query(ModeColumn)]
            assert titles[0].startswith("A: tiny") and titles[1].startswith("B: tiny arm64")
            assert "arm64-tlbi" in titles[1]
            a_view, b_view = left.engine.view(), right.engine.view()
            assert a_view.done and b_view.done
            ratio = a_view.clock_ns / b_view.clock_ns
            verdict = f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"
            assert f"B is {verdict} than A" in race
            assert b_view.counters.nr_tlb_remote_flush_received == 0
            assert f"{a_view.counters.nr_tlb_remote_flush_received} IPIs" in race
            header = str(app.query_one("#header").render())
            assert "A vs B" in header and "same seed, one clock" in header
            panels = [str(panel.border_title) for panel in app.query_one(SplitView).query(IpiPanel)]
            assert panels == ["TLB shootdown IPIs", "TLB shootdowns: broadcast TLBI + DSB, no IPIs"]

    asyncio.run(main())


def test_the_header_says_same_seed_only_when_both_sides_have_it() -> None:
    app = MigvizApp(load_scenario("tiny"), paused=True, versus=load_scenario("thp"),
                    versus_labels=("tiny", "thp"))

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            header = str(app.query_one("#header").render())
            assert "one clock" in header and "same seed" not in header

    asyncio.run(main())
