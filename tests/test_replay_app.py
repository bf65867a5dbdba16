"""Stepping a recorded trace: the replay's view equals a plain recount of the lines up to the
cursor at every position, stepping back is exact, and the screen shows what the view says."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from core.engine import Engine
from core.kernel_trace import Recording, load_recording, parse_recording
from core.replay import CallPhase, PageState, Replay, Stop
from core.scenario import Mode, load_scenario
from core.trace import TraceFormatter, header, write_trace
from tui.replay_app import CountersLine, CpuPanel, PagesPanel, ReplayApp, RoundPanel, TraceLog

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
SAMPLE = DATA / "compaction-6.18.perf.txt"


def model_trace(name: str, mode: Mode, overrides: tuple[str, ...] = ()) -> Recording:
    scenario = load_scenario(name, list(overrides))
    engine = Engine(scenario, mode, checkpoints=False, history=1)
    lines = [*header(scenario.topology.cpus),
             *write_trace(engine.iter_events(), TraceFormatter(scenario))]
    return parse_recording("\n".join(lines), name)


RECORDINGS = {
    "sample": lambda: load_recording(SAMPLE),
    "tracefs": lambda: load_recording(DATA / "compaction-hot-6.18.tracefs.txt"),
    "tiny-batched": lambda: model_trace("tiny", Mode.BATCHED),
    "tiny-serial": lambda: model_trace("tiny", Mode.SERIAL),
    "contended": lambda: model_trace("contended", Mode.BATCHED, ("memory.folios="
                                     "[{order=0,count=40},{order=9,count=1}]",)),
}


def recount(recording: Recording, position: int) -> dict[str, object]:
    """What the first `position` lines say, counted straight from their text."""
    seen = recording.lines[:position]
    per_cpu = [0] * recording.cpus
    sender = None
    for line in seen:
        if re.search(r"reason:remote (ipi|IPI) send", line.payload):
            sender = (line.cpu, line.pid)
        if "reason:remote shootdown (" in line.payload or (
                "reason:remote wrong CPU (" in line.payload and (line.cpu, line.pid) != sender):
            per_cpu[line.cpu] += 1
    ends = [line for line in seen if line.event == "mm_migrate_pages"]
    return {
        "sends": sum(bool(re.search(r"reason:remote (ipi|IPI) send", line.payload))
                     for line in seen),
        "per_cpu": per_cpu,
        "success": sum(line.number_of("nr_succeeded") for line in ends),
        "fail": sum(line.number_of("nr_failed") for line in ends),
        "started": sum(line.event == "mm_migrate_pages_start" for line in seen),
        "finished": len(ends),
    }


@pytest.mark.parametrize("which", list(RECORDINGS))
def test_the_view_is_the_lines_so_far(which: str) -> None:
    recording = RECORDINGS[which]()
    replay = Replay(recording)
    for position in range(replay.count + 1):
        replay.position = position
        view = replay.view()
        expected = recount(recording, position)
        assert view.sends == expected["sends"]
        assert [cpu.shootdowns for cpu in view.cpus] == expected["per_cpu"]
        assert view.shootdowns == sum(expected["per_cpu"])
        assert (view.pgmigrate_success, view.pgmigrate_fail) == (expected["success"],
                                                                 expected["fail"])
        assert (view.calls_started, view.calls_finished) == (expected["started"],
                                                             expected["finished"])
        assert view.last is (recording.lines[position - 1] if position else None)
        if view.call is not None:
            # The focus call's pages: restored = its remove lines seen, unmapped + flushed +
            # restored = its set lines seen.
            mine = [line for line in recording.lines[:position]
                    if recording.line_call[recording.lines.index(line)] == view.call.index] \
                if position < 400 else None
            states = view.page_state
            if mine is not None:
                removes = sum(line.event.startswith("remove_migration") for line in mine)
                sets = sum(line.event.startswith("set_migration") for line in mine)
                assert int((states == PageState.RESTORED).sum()) == removes
                assert int((states != PageState.WAITING).sum()) == sets
                if any(line.payload.startswith("pages:") and "send" in line.payload.lower()
                       for line in mine):
                    assert view.round is not None and view.call_rounds >= 1


def test_stepping_back_is_exact() -> None:
    replay = Replay(RECORDINGS["contended"]())
    views = []
    while not replay.done:
        views.append(replay.view())
        replay.step()
    views.append(replay.view())
    for position in range(len(views) - 1, -1, -1):
        view = replay.view()
        reference = views[position]
        assert view.position == reference.position == position
        assert (view.phase, view.call, view.round, view.receipts, view.cpus) == \
            (reference.phase, reference.call, reference.round, reference.receipts,
             reference.cpus)
        assert view.page_state.tolist() == reference.page_state.tolist()
        replay.back()


def test_phases_of_a_batched_call() -> None:
    """p walks a migviz batched call as the kernel runs it: unmap, flush, move, return."""
    replay = Replay(RECORDINGS["tiny-batched"]())
    replay.step()  # mm_migrate_pages_start
    phases = [replay.view().phase]
    while (call := replay.view().call) is not None and call.index == 0 and not replay.done:
        replay.step_phase()
        phases.append(replay.view().phase)
        if phases[-1] is CallPhase.DONE:
            break
    # Two batches of four: unmap, flush, move, twice; then the call returns.
    assert phases == [CallPhase.STARTED, CallPhase.UNMAP, CallPhase.FLUSH, CallPhase.MOVE,
                      CallPhase.UNMAP, CallPhase.FLUSH, CallPhase.MOVE, CallPhase.DONE]


def test_call_steps_and_breakpoints() -> None:
    recording = load_recording(SAMPLE)
    replay = Replay(recording)
    replay.step_call()
    assert replay.view().call is recording.calls[0]
    assert replay.view().phase is CallPhase.STARTED
    replay.step_call()
    assert replay.view().phase is CallPhase.DONE
    hit = replay.run_to_stop(frozenset({Stop.SEND}))
    assert hit is not None and "remote IPI send (4)" in hit.payload
    assert replay.view().call is recording.calls[2]
    hit = replay.run_to_stop(frozenset({Stop.SHOOTDOWN}))
    assert hit is not None and hit.cpu == 1 and replay.view().receipts == 1
    hit = replay.run_to_stop(frozenset({Stop.FAILURE}))
    assert hit is not None and hit.number_of("nr_failed") == 1
    assert replay.run_to_stop(frozenset({Stop.FAILURE})) is None and replay.done


def test_the_screen_shows_the_view() -> None:
    asyncio.run(_screen_shows_the_view())


async def _screen_shows_the_view() -> None:
    recording = load_recording(SAMPLE)
    app = ReplayApp(recording, paused=True)
    async with app.run_test(size=(140, 44)) as pilot:
        for keys in (["B", "B", "B"], ["B", "B"], ["p"], ["p"], ["n"] * 5, ["u"], ["p", "p"], ["B"]):
            for key in keys:
                await pilot.press(key)
            await pilot.pause()
            view = app.replay.view()
            pages = app.query_one(PagesPanel)
            assert view.call is not None
            assert str(pages.border_title).startswith(f"call {view.call.index + 1}/4")
            assert view.phase.value in str(pages.border_title)
            glyphs = str(pages.render())
            if view.page_state.size:
                assert len(glyphs.strip()) == view.page_state.size
                counts = {state: int((view.page_state == state).sum()) for state in PageState}
                assert glyphs.count("■") == counts[PageState.RESTORED]
                assert glyphs.count("·") == counts[PageState.WAITING]
                assert f"{counts[PageState.FLUSHED]} flushed" in str(pages.border_subtitle)
            else:
                assert "No migration entry" in glyphs
            cpus = str(app.query_one(CpuPanel).render())
            for cpu in view.cpus:
                assert f"CPU {cpu.cpu:<3}" in cpus
                assert re.search(rf"CPU {cpu.cpu}\s.*\s{cpu.shootdowns} shootdowns · \s*"
                                 rf"{cpu.vectors} IPIs · \s*{cpu.sends} sends", cpus)
            counters = str(app.query_one(CountersLine).render())
            assert f"nr_succeeded {view.pgmigrate_success}" in counters
            assert f"sends {view.sends}" in counters
            log = str(app.query_one(TraceLog).render()).splitlines()
            assert view.last is not None and log[-1] == view.last.text.strip()
            shot = str(app.query_one(RoundPanel).render())
            if view.round is not None:
                assert f"send {view.call_rounds} of call {view.call.index + 1}" in shot
        await pilot.press("enter")
        await pilot.pause()
        assert "address 0x" in str(app.screen.query_one("Static").render())


def test_tiny_terminal_says_so() -> None:
    asyncio.run(_tiny_terminal())


async def _tiny_terminal() -> None:
    app = ReplayApp(load_recording(SAMPLE), paused=True)
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        assert "needs at least 60×16" in str(app.query_one("#too-small").render())


def test_a_frame_tick_in_the_shutdown_window_draws_nothing() -> None:
    """As the model's app: a tick between Textual pruning the screens and stopping the timers
    finds no widget, and must not look."""
    app = ReplayApp(load_recording(SAMPLE), paused=False)

    async def main() -> None:
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()

    asyncio.run(main())
    assert not app.is_running
    app._tick()
