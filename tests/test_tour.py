"""Guided tours: the built-in tour's steps stop where their narration says, the app plays them
on its real widgets (highlights included) and goes back to exactly the same instant, and a
malformed tour gets one line naming the step and the field."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import assert_one_line, call

from core.bench import run_once
from core.engine import FOREVER, Engine
from core.events import EventKind, RoundKind
from tui.app import MigvizApp
from tui.screens.chart import ChartScreen
from tui.screens.help import HelpScreen
from tui.tour import LoadedTour, load_tour
from tui.widgets.code_panel import CodePanel
from tui.widgets.narration import Narration
from tui.widgets.stats_line import stats_content


def _engine_at(tour: LoadedTour, index: int) -> Engine:
    setup = tour.setups[index]
    stop = tour.stop_at(index)
    assert stop is not None
    engine = Engine(setup.scenario, setup.mode, checkpoints=False)
    engine.run_until(FOREVER, lambda event: event.seq + 1 >= stop)
    return engine


def _step(tour: LoadedTour, title: str) -> int:
    return next(i for i, step in enumerate(tour.steps) if step.title == title)


def test_the_builtin_tour_stops_where_its_narration_says() -> None:
    tour = load_tour(None)
    assert 8 <= len(tour.steps) <= 16
    # "Six IPIs for one page": one serial round, to CPUs 0-5, all acknowledged.
    index = _step(tour, "Six IPIs for one page")
    assert "Six IPIs" in tour.steps[index].narration
    view = _engine_at(tour, index).view()
    assert view.last_event is not None and view.last_event.kind is EventKind.FLUSH_DONE
    assert view.counters.nr_tlb_remote_flush == 1
    assert view.counters.nr_tlb_remote_flush_received == 6
    assert sorted(view.last_event.targets) == [0, 1, 2, 3, 4, 5]
    assert view.pages_done == 0
    # "One flush for the batch": the batch round of 96 base pages goes to the same six CPUs.
    index = _step(tour, "One flush for the batch")
    view = _engine_at(tour, index).view()
    event = view.last_event
    assert event is not None and event.kind is EventKind.FLUSH_DONE
    assert event.round_kind is RoundKind.BATCH and len(event.targets) == 6
    assert view.unit.folios == 97 and view.unit.pages - 512 == 96  # 96 base pages and the THP
    # "A THP cannot wait": its PMD round comes before the batch's, in the same batch.
    pmd = _engine_at(tour, _step(tour, "A THP cannot wait")).view().last_event
    assert pmd is not None and pmd.round_kind is RoundKind.PMD and pmd.batch == event.batch
    # "How big should a batch be?": bigger batches, fewer rounds, longer stalls.
    setup = tour.setups[_step(tour, "How big should a batch be?")]
    assert setup.versus is not None
    big, small = run_once(setup.scenario, None), run_once(setup.versus, None)
    assert big.nr_tlb_remote_flush < small.nr_tlb_remote_flush
    assert big.stall_p99_ns > small.stall_p99_ns
    # Each step of one run stops later than the one before it.
    stops = [tour.stop_at(i) for i in range(len(tour.steps))]
    for i in range(1, len(stops)):
        if not tour.starts_fresh(i):
            assert stops[i] is not None and stops[i - 1] is not None
            assert stops[i] > stops[i - 1]  # type: ignore[operator]


async def _wait(pilot, app: MigvizApp) -> None:  # type: ignore[no-untyped-def]
    """Until the step has stopped playing (the race plays to its end)."""
    for _ in range(2000):
        if not app.playing:
            return
        await pilot.pause(0.02)
    raise AssertionError("the step never stopped")


def _quick(tour: LoadedTour) -> LoadedTour:
    """The tour with every step that plays fast played far faster (the races end sooner)."""
    steps = tuple(step.model_copy(update={"speed": 4096.0}) if step.speed else step
                  for step in tour.steps)
    return replace(tour, tour=tour.tour.model_copy(update={"step": steps}))


def test_the_app_plays_the_tour_and_goes_back_to_the_same_instants() -> None:
    tour = _quick(load_tour(None))
    app = MigvizApp(tour.setups[0].scenario, tour.setups[0].mode, paused=True, tour=tour)

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.tour is not None
            narration = app.query_one(Narration)
            seen: dict[int, tuple[int, str]] = {}
            for index in range(len(tour.steps)):
                if index:
                    await pilot.press("right")
                await _wait(pilot, app)
                await pilot.pause()
                assert app.tour.index == index
                step = tour.steps[index]
                assert narration.display
                text = str(narration.render())
                assert f"tour {index + 1}/{len(tour.steps)}" in text and step.title in text
                assert app.split == step.split
                for mark in step.highlight:
                    kind, _, name = mark.partition(":")
                    if kind == "panel":
                        assert app.query_one(f"#{name}").has_class("-tour-mark")
                    elif kind == "folio":
                        assert app.selected == int(name)
                    else:
                        assert app.last_frame is not None and mark in app.last_frame.marks
                counters = [mark.partition(":")[2] for mark in step.highlight
                            if mark.startswith("counter:")]
                if counters and not step.split:
                    assert app.last_frame is not None
                    content = stats_content(app.last_frame, 200)
                    marked = {content.plain[span.start:span.end].strip() for span in content.spans
                              if "reverse" in str(span.style)}
                    assert set(counters) <= marked
                if not step.split:
                    assert app.lane.engine.events == tour.stop_at(index)
                    lit = app.query_one(CodePanel).lit if app.code_shown else -1
                    seen[index] = (app.lane.engine.view().clock_ns, str(lit))
                else:
                    assert app.race is not None and all(lane.engine.done for lane in app.race)
            for _ in range(500):  # the last step ends on the chart
                if isinstance(app.screen, ChartScreen):
                    break
                await pilot.pause(0.02)
            assert isinstance(app.screen, ChartScreen)
            await pilot.press("escape")
            await pilot.press("right")  # past the last step: it stays
            assert app.tour.index == len(tour.steps) - 1
            for index in range(len(tour.steps) - 2, -1, -1):
                await pilot.press("left")
                await pilot.pause()
                assert app.tour.index == index and not app.playing
                if index in seen:
                    lit = app.query_one(CodePanel).lit if app.code_shown else -1
                    assert (app.lane.engine.view().clock_ns, str(lit)) == seen[index]
            await pilot.press("escape")
            assert app.tour is None and not narration.display
            assert not app.query(".-tour-mark")
            events = app.lane.engine.events
            await pilot.press("right")  # without a tour, → steps the engine again
            assert app.lane.engine.events == events + 1

    asyncio.run(main())


def test_the_tour_ends_on_the_closing_chart() -> None:
    tour = _quick(load_tour(None))
    last = len(tour.steps) - 1
    assert tour.steps[last].chart and tour.setups[last].split

    async def main() -> None:
        app = MigvizApp(tour.setups[0].scenario, None, paused=True, tour=tour)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.tour is not None
            await app.tour.go(last, play=False)
            for _ in range(500):
                if isinstance(app.screen, ChartScreen):
                    break
                await pilot.pause(0.02)
            assert isinstance(app.screen, ChartScreen)
            assert app.race is not None
            assert app.screen.serial.as_json() == app.race[0].engine.summary().as_json()
            await pilot.press("escape")  # the chart closes; the tour stays
            assert app.tour is not None and not isinstance(app.screen, ChartScreen)
            await pilot.press("escape")
            assert app.tour is None

    asyncio.run(main())


def test_t_starts_the_tour_and_escape_still_closes_a_dialog_first() -> None:
    tour = load_tour(None)
    app = MigvizApp(tour.setups[0].scenario, None, paused=True)

    async def main() -> None:
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            await pilot.press("t")
            await pilot.pause()
            assert app.tour is not None and app.tour.index == 0
            await pilot.press("question_mark")
            await pilot.pause()  # the screen is pushed once the key's handler has run
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)
            assert app.tour is not None  # the dialog took the escape, not the tour
            await pilot.press("t")
            await pilot.pause()
            assert app.tour is None

    asyncio.run(main())


def test_tour_check_lists_the_steps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "tour", "--check")
    tour = load_tour(None)
    assert code == 0, err
    assert f"{len(tour.steps)} steps, all valid" in out
    for step in tour.steps:
        assert step.title in out
    code, out, _ = call(capsys, "tour", "--show")
    assert code == 0 and "[[step]]" in out


GOOD = '''
title = "mine"
[[step]]
title = "start"
scenario = "tiny"
narration = "Two threads."
[[step]]
title = "flush"
narration = "One round."
run_to = { event = "flush_send" }
'''


@pytest.mark.parametrize(("change", "expected"), [
    (('run_to = { event = "flush_send" }', 'run_to = { event = "flush_sent" }'),
     ("step 2 ('flush'): run_to", "unknown event kind 'flush_sent'", "did you mean 'flush_send'")),
    (('run_to = { event = "flush_send" }', 'run_to = { evnt = "flush_send" }'),
     ("step 2 ('flush'): run_to.evnt", "unknown key", "did you mean 'event'")),
    (('narration = "One round."', 'narration = "One round."\nhighlight = ["cpu:9"]'),
     ("step 2 ('flush')", "highlight 'cpu:9'", "4 CPUs")),
    (('narration = "One round."', 'narration = "One round."\nhighlight = ["panel:tlbs"]'),
     ("step 2 ('flush')", "highlight 'panel:tlbs'", "panel:NAME")),
    (('scenario = "tiny"', 'scenario = "tinny"'), ("step 1 ('start')", "unknown scenario 'tinny'")),
    (('scenario = "tiny"\n', ''), ("step 1 ('start')", "must name a scenario")),
    (('narration = "One round."', 'narration = "One round."\nsplit = true'),
     ("step 2 ('flush')", "split step", "end = true")),
    (('title = "flush"\n', ''), ("step 2: title", "required key is missing")),
    (('narration = "Two threads."', 'narration = "Two threads."\nafter_s = -1'),
     ("step 1 ('start'): after_s", "greater than 0")),
])
def test_a_malformed_tour_names_the_step_and_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str],
        expected: tuple[str, ...]) -> None:
    path = tmp_path / "mine.toml"
    old, new = change
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    before = path.read_text()
    code, out, err = call(capsys, "tour", str(path), "--check")
    assert code == 2 and not out
    assert_one_line(err, str(path), *expected)
    assert path.read_text() == before


def test_a_good_tour_file_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    code, out, err = call(capsys, "tour", str(path), "--check")
    assert code == 0, err
    assert "2 steps, all valid" in out and "[tiny, batched, at the start]" in out


@pytest.mark.parametrize(("text", "expected"), [
    (None, "no such file"),
    ("title = ", "not valid TOML"),
    ('title = "x"\n', "no [[step]] tables"),
])
def test_a_tour_that_is_not_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                text: str | None, expected: str) -> None:
    path = tmp_path / "t.toml"
    if text is not None:
        path.write_text(text)
    for options in ((), ("--show",), ("--check",)):
        code, out, err = call(capsys, "tour", str(path), *options)
        assert code == 2 and not out
        assert_one_line(err, expected)


def test_a_step_continues_the_run_unless_the_presenter_changed_it() -> None:
    tour = _quick(load_tour(None))
    app = MigvizApp(tour.setups[0].scenario, tour.setups[0].mode, paused=True, tour=tour)

    async def main() -> None:
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            assert app.tour is not None
            await app.tour.go(2, play=False)
            lane = app.lane
            await app.tour.go(3, play=True)  # the same run goes on from where step 3 stopped
            for _ in range(500):
                if not app.playing:
                    break
                await pilot.pause(0.02)
            assert app.lane is lane and lane.engine.events == tour.stop_at(3)
            await pilot.press("b")  # the presenter asks for batched mid-run
            for _ in range(5):
                await pilot.press("n")
            app.set_speed(4096)
            await app.tour.go(4, play=True)
            for _ in range(500):
                if not app.playing:
                    break
                await pilot.pause(0.02)
            engine = app.lane.engine
            assert engine.mode is tour.setups[4].mode and engine.pending_mode is None
            assert engine.events == tour.stop_at(4)
            assert engine.last_event is not None and engine.last_event.serial

    asyncio.run(main())


def test_a_step_with_after_s_goes_on_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "auto.toml"
    path.write_text(GOOD.replace('narration = "Two threads."',
                                 'narration = "Two threads."\nafter_s = 1'))
    tour = load_tour(str(path))
    app = MigvizApp(tour.setups[0].scenario, tour.setups[0].mode, paused=True, tour=tour)

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.tour is not None
            if app.tour.index == 0:  # (a loaded machine may have gone on already)
                assert "goes on in 1 s" in str(app.query_one(Narration).render())
            for _ in range(300):
                if app.tour.index == 1 and not app.playing:
                    break
                await pilot.pause(0.02)
            assert app.tour.index == 1
            assert app.lane.engine.last_event is not None
            assert app.lane.engine.last_event.kind is EventKind.FLUSH_SEND

    asyncio.run(main())


def test_the_projector_layout_unfolds_what_a_step_points_at() -> None:
    tour = load_tour(None)
    app = MigvizApp(tour.setups[0].scenario, tour.setups[0].mode, paused=True, tour=tour,
                    big=True)
    folded = _step(tour, "Copy, then remap")
    assert not any(mark in ("panel:tlb", "panel:ipi") for mark in tour.steps[folded].highlight)

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.tour is not None and app.screen.has_class("-big")
            assert "panel:tlb" in tour.steps[0].highlight
            assert app.query_one("#panels").region.height > 0  # step 1 points at the TLBs
            await app.tour.go(folded, play=False)
            await pilot.pause()
            assert app.query_one("#panels").region.height == 0
            assert app.query_one("#log").region.height == 0

    asyncio.run(main())
