"""The keys a demo uses: x (predict, then reveal), C (the closing chart), g (go to), m and '
(bookmarks), z (the projector layout), and tui --split/--big. Answers, charts and jumps are
checked against the engine run on its own."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from helpers import call
from helpers import drive as helpers_drive
from textual.pilot import Pilot

from core.bench import run_once
from core.engine import FOREVER, Engine
from core.events import EventKind
from core.scenario import Mode, load_scenario
from tui.app import MigvizApp
from tui.navigation import Goto, GotoError, GotoScreen, parse_goto
from tui.screens.chart import ChartScreen
from tui.screens.predict import PredictScreen

drive = partial(helpers_drive, size=(120, 36))


async def until(pilot: Pilot[int], done: Callable[[], bool], what: str) -> None:
    for _ in range(3000):
        if done():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"never: {what}")


def unit_ipis(mode: Mode, unit: int) -> tuple[int, int]:
    """(IPIs, rounds) of the first call's ``unit`` (batch, or serial folio), on an engine of
    its own: the counts from the unit's first event to the next unit's."""
    engine = Engine(load_scenario("default"), mode, checkpoints=False)
    events = engine.run_until(FOREVER, lambda e: e.batch == unit and e.folio >= 0 or
                              e.kind is EventKind.BATCH_START and e.batch == unit)
    assert events
    before = engine.view().counters
    if mode is Mode.SERIAL:
        engine.back(1)
        before = engine.view().counters
    engine.run_until(FOREVER, lambda e: e.batch != unit or e.kind is EventKind.MIGRATE_END)
    engine.back(1)
    after = engine.view().counters
    return (after.nr_tlb_remote_flush_received - before.nr_tlb_remote_flush_received,
            after.nr_tlb_remote_flush - before.nr_tlb_remote_flush)


@pytest.mark.parametrize("mode", [Mode.SERIAL, Mode.BATCHED])
def test_predict_then_reveal_scores_against_the_engine(mode: Mode) -> None:
    app = MigvizApp(load_scenario("default"), mode, paused=True)
    ipis, rounds = unit_ipis(mode, 1)
    assert ipis > 0

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("x")
        assert isinstance(app.screen, PredictScreen)
        text = app.screen.question
        assert "cpu0-5" in text and "cpu7" in text
        assert ("one 4 KiB page" in text) if mode is Mode.SERIAL else \
            ("96 base pages and 1 THP" in text)
        assert not app.playing and app.lane.engine.events <= 2
        for key in str(ipis):
            await pilot.press(key)
        await pilot.press("enter")
        assert app.demo.question is not None and app.demo.question.prediction == ipis
        app.set_speed(4096)
        await until(pilot, lambda: app.demo.question is None and not app.playing, "the reveal")
        assert app.demo.score == (1, 1)
        view = app.lane.engine.view()
        # Stopped at the unit's end: its last event, the next unit not begun.
        assert view.counters.nr_tlb_remote_flush == rounds
        assert view.counters.nr_tlb_remote_flush_received == ipis
        assert view.last_event is not None and view.last_event.batch == 1
        await pilot.press("x")  # the next unit; a wrong guess
        assert isinstance(app.screen, PredictScreen)
        await pilot.press("0", "enter")
        await until(pilot, lambda: app.demo.question is None and not app.playing, "the reveal")
        assert app.demo.score == (1, 2)

    drive(app, script)


def test_escape_skips_the_prediction() -> None:
    app = MigvizApp(load_scenario("default"), Mode.SERIAL, paused=True)

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("x")
        await pilot.press("escape")
        assert not isinstance(app.screen, PredictScreen)
        assert app.demo.question is None and not app.playing and app.demo.score == (0, 0)

    drive(app, script)


def test_the_chart_shows_both_modes_complete_runs() -> None:
    scenario = load_scenario("tiny")
    app = MigvizApp(scenario, None, paused=True)

    async def script(pilot: Pilot[int]) -> None:
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ChartScreen), "the chart")
        chart = app.screen
        assert isinstance(chart, ChartScreen)
        assert chart.serial.as_json() == run_once(scenario, Mode.SERIAL).as_json()
        assert chart.batched.as_json() == run_once(scenario, Mode.BATCHED).as_json()
        await pilot.press("escape")
        assert not isinstance(app.screen, ChartScreen)

    drive(app, script)


def test_the_race_ends_on_its_chart() -> None:
    app = MigvizApp(load_scenario("tiny"), None, paused=True, split=True)

    async def script(pilot: Pilot[int]) -> None:
        await until(pilot, lambda: app.split and app.race is not None, "split view")
        app.set_speed(16384)
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, ChartScreen), "the chart")
        assert app.race is not None and all(lane.engine.done for lane in app.race)
        chart = app.screen
        assert isinstance(chart, ChartScreen)
        assert chart.serial.as_json() == app.race[0].engine.summary().as_json()
        assert chart.batched.as_json() == app.race[1].engine.summary().as_json()
        assert chart.serial.mode == "serial" and chart.batched.mode == "batched"

    drive(app, script)


def test_parse_goto() -> None:
    assert parse_goto("#250") == Goto(event=250)
    assert parse_goto(" 40 ") == Goto(event=40)
    assert parse_goto("120us") == Goto(time_ns=120_000)
    assert parse_goto("1.5 ms") == Goto(time_ns=1_500_000)
    assert parse_goto("FLUSH_SEND") == Goto(kind=EventKind.FLUSH_SEND)
    for bad, words in (("", "type a target"), ("flush", "did you mean"), ("#x", "digits"),
                       ("12 parsecs", "not a time")):
        with pytest.raises(GotoError, match=words):
            parse_goto(bad)


def _fresh_events(stop: Callable[[Any], bool]) -> int:
    engine = Engine(load_scenario("default"), Mode.BATCHED, checkpoints=False)
    engine.run_until(FOREVER, stop)
    return engine.events


def test_go_to_and_bookmarks_land_where_a_fresh_engine_does() -> None:
    app = MigvizApp(load_scenario("default"), Mode.BATCHED, paused=True)

    async def go(pilot: Pilot[int], text: str) -> None:
        await pilot.press("g")
        assert isinstance(app.screen, GotoScreen)
        for key in text:
            await pilot.press({"#": "number_sign", " ": "space", ".": "full_stop",
                               "_": "underscore"}.get(key, key))
        await pilot.press("enter")
        await pilot.pause()

    async def script(pilot: Pilot[int]) -> None:
        engine = app.lane.engine
        await go(pilot, "#40")
        assert engine.events == 40 and app.solo.target == engine.clock
        await go(pilot, "flush_send")
        assert engine.last_event is not None and engine.last_event.kind is EventKind.FLUSH_SEND
        assert engine.events == _fresh_events(lambda e: e.seq >= 40 and
                                              e.kind is EventKind.FLUSH_SEND)
        await pilot.press("m")
        marked = engine.events
        await go(pilot, "20us")  # back in time: rebuilt exactly
        assert engine.events == _fresh_events(lambda e: e.time_ns >= 20_000)
        await go(pilot, "#12")
        await pilot.press("m")
        await go(pilot, "#300")
        await pilot.press("apostrophe")
        assert engine.events == 12  # the latest bookmark
        await pilot.press("apostrophe")
        assert engine.events == marked  # there already: the one before
        # The screen follows: the event log ends with the event the engine stopped at.
        assert app.last_frame is not None and app.last_frame.view.events == marked
        await go(pilot, "bogus")
        assert isinstance(app.screen, GotoScreen)  # says what is wrong and stays
        await pilot.press("escape")
        assert engine.events == marked

    drive(app, script)


def test_z_folds_to_the_projector_layout() -> None:
    app = MigvizApp(load_scenario("default"), None, paused=True)

    async def script(pilot: Pilot[int]) -> None:
        assert app.query_one("#panels").display and app.query_one("#log").display
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.has_class("-big")
        for folded in ("#panels", "#log", "#legend"):
            assert app.query_one(folded).region.height == 0, folded
        for kept in ("#grids", "#phase", "#stats"):
            assert app.query_one(kept).region.height > 0, kept
        await pilot.press("z")
        await pilot.pause()
        assert app.query_one("#panels").region.height > 0

    drive(app, script, size=(100, 30))


def test_tui_split_and_big_reach_the_app(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import tui.app

    seen: dict[str, Any] = {}

    def fake_run_app(*args: Any, **kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(tui.app, "run_app", fake_run_app)
    code, _, err = call(capsys, "tui", "tiny", "--split", "--big")
    assert code == 0, err
    assert seen["split"] is True and seen["big"] is True
    code, _, err = call(capsys, "tour", "--big")
    assert code == 0, err
    assert seen["big"] is True and seen["tour"] is not None
