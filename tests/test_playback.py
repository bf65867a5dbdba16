"""Pacing (tui/playback.py), driven with a made-up wall clock and no app."""

from __future__ import annotations

import pytest
from helpers import headless_run

from core.engine import FOREVER, Engine, EngineView
from core.events import Event, EventKind
from core.scenario import Mode, load_scenario
from tui.lane import FLASH_FRAMES, Lane
from tui.playback import EARLY_S, GAP_S, MAX_FRAME_S, Playback
from tui.widgets.frame import EventHistory

FRAME_S = 1 / 30
RATE_NS = 2_000.0  # simulated ns per wall second at x1


def race(name: str = "tiny") -> tuple[Lane, Lane]:
    scenario = load_scenario(name)
    return Lane(scenario, Mode.SERIAL, split=True), Lane(scenario, Mode.BATCHED, split=True)


def test_the_target_follows_the_wall_clock_at_the_speed() -> None:
    lane = Lane(load_scenario("tiny"), None)
    playback = Playback(RATE_NS, budget_s=60.0)
    playback.restart(0.0, 0.0)
    now = 0.0
    for frame in range(1, 20):
        before = playback.target
        now += FRAME_S
        tick = playback.tick(now, [lane], speed=4.0, frame_no=frame)
        if not playback.fast_forward:
            assert playback.target - before == FRAME_S * RATE_NS * 4.0
        # Nothing shown before its time, by more than the tolerance.
        last = lane.engine.last_event
        assert last is None or last.time_ns <= playback.target + EARLY_S * RATE_NS * 4.0
        assert not tick.done and tick.hit is None
    # A stall of the wall clock counts as one long frame, not as a leap.
    before = playback.target
    playback.tick(now + 30.0, [lane], speed=4.0, frame_no=20)
    assert playback.target - before <= max(MAX_FRAME_S * RATE_NS * 4.0,
                                           MAX_FRAME_S * playback._gap_rate)


def test_a_quiet_stretch_is_crossed_in_about_gap_s() -> None:
    """A THP's copy leaves nothing to show for a long while at x1: it is fast-forwarded, and
    the pace then is not 'behind' although it is not the asked one."""
    lane = Lane(load_scenario("thp"), Mode.SERIAL)
    playback = Playback(RATE_NS, budget_s=60.0)
    playback.restart(0.0, 0.0)
    now, crossed = 0.0, False
    for frame in range(1, 2000):
        now += FRAME_S
        playback.tick(now, [lane], speed=1.0, frame_no=frame)
        if playback.fast_forward:
            crossed = True
            achieved, behind = playback.achieved(1.0, playing=True)
            assert not behind
        if crossed and not playback.fast_forward:
            break
    assert crossed
    assert now < 10 * GAP_S * 4, "each gap takes about GAP_S of wall time"


def test_a_lagging_lane_holds_the_race_back_and_the_pace_says_so() -> None:
    serial, batched = race("default")
    # No time for engine work, even when behind: every lane lags.
    playback = Playback(RATE_NS, budget_s=0.0, behind_budget_s=0.0)
    playback.restart(0.0, 0.0)
    now, lagged = 0.0, 0
    for frame in range(1, 20):
        now += FRAME_S
        playback.tick(now, [serial, batched], speed=16384.0, frame_no=frame)
        for lane in (serial, batched):
            if lane.lagging:  # the shared clock waits for it: a fair race
                lagged += 1
                assert playback.target <= lane.engine.clock
    assert lagged
    achieved, behind = playback.achieved(16384.0, playing=True)
    assert achieved is not None and behind


def test_the_race_plays_to_the_end_with_the_headless_counters() -> None:
    serial, batched = race()
    playback = Playback(RATE_NS)
    playback.restart(0.0, 0.0)
    now, frame, tick = 0.0, 0, None
    while frame < 100_000:
        frame += 1
        now += FRAME_S
        tick = playback.tick(now, [serial, batched], speed=64.0, frame_no=frame)
        if tick.done:
            break
    assert tick is not None and tick.done
    for lane, mode in ((serial, Mode.SERIAL), (batched, Mode.BATCHED)):
        engine, _ = headless_run(load_scenario("tiny"), mode)
        assert lane.engine.summary() == engine.summary()
    achieved, behind = playback.achieved(64.0, playing=True)
    assert achieved is not None and achieved > 0 and not behind


def test_a_lane_that_lagged_gets_more_of_the_next_frame() -> None:
    """At the top speeds the engine gets the behind budget once a lane lags: the next frame
    makes up the ground a frame with the normal budget could not."""
    serial, batched = race("default")
    playback = Playback(RATE_NS, budget_s=0.0, behind_budget_s=60.0)
    playback.restart(0.0, 0.0)
    playback.tick(FRAME_S, [serial, batched], speed=16384.0, frame_no=1)
    assert serial.lagging or batched.lagging
    playback.tick(2 * FRAME_S, [serial, batched], speed=16384.0, frame_no=2)
    assert not (serial.lagging or batched.lagging)


@pytest.mark.parametrize(("name", "mode"), [("default", Mode.SERIAL), ("contended", Mode.BATCHED)])
def test_a_side_that_lags_folds_its_receipts_and_shows_what_each_receipt_would(
        name: str, mode: Mode) -> None:
    """A side of the race that lagged last frame folds the IPI receipts of the rounds that end
    before its target into the round. At every frame it rests where a side making every receipt
    would rest after as many events, shows nothing early, its sparkline counts the same
    deliveries at the same times, and the CPUs it flashes are those that took an IPI since the
    last frame."""
    scenario = load_scenario(name)
    lane = Lane(scenario, mode, split=True)
    receipts: list[tuple[int, int]] = []  # (time, CPU) of every receipt, in order
    made = Engine(scenario, mode, checkpoints=False, history=1)
    made.run_to_end(lambda e: receipts.append((e.time_ns, e.cpu))
                    if e.kind is EventKind.IPI_RECV else None)
    mirror = Engine(scenario, mode)  # steps event by event, every receipt made
    shown = EventHistory(rows=False, base_ns=lane.history.base_ns)
    target, frame, seen, folds = 0.0, 0, 0, 0
    while not lane.engine.done:
        frame += 1
        target += 15_000
        lane.lagging = True  # as if the last frame lagged: this one folds
        before = lane.engine.events
        applied = lane.advance(target, 0.0, float("inf"), frame)
        engine = lane.engine
        folds += engine.events - before - applied
        last = engine.last_event
        assert last is None or last.time_ns <= target or engine.done  # nothing shown early
        count = engine.events
        if mirror.events < count:
            mirror.run_until(FOREVER, lambda e: e.seq + 1 >= count)  # noqa: B023 (called now)
        assert (mirror.events, mirror.last_event) == (engine.events, last)
        assert mirror.counters.tlb_shootdowns.tolist() == engine.counters.tlb_shootdowns.tolist()
        assert mirror.task.s.unit == engine.task.s.unit
        received = engine.counters.nr_tlb_remote_flush_received
        assert received == mirror.counters.nr_tlb_remote_flush_received
        new = receipts[seen:received]
        shown.extend(Event(i, time, EventKind.IPI_RECV, cpu) for i, (time, cpu) in enumerate(new))
        seen = received
        assert lane.history.ipi_total() == received
        bucket = lane.history.base_ns
        assert lane.history.ipi_buckets(engine.clock, bucket, 64) == \
            shown.ipi_buckets(engine.clock, bucket, 64)
        flashed = {cpu for cpu, until in lane.flash_until.items()
                   if until == frame + FLASH_FRAMES}
        assert flashed == {cpu for _, cpu in new}
    assert folds > 0, "no receipt was folded"
    assert lane.engine.summary() == made.summary()


def test_a_finished_lanes_view_is_read_once_and_a_step_back_reads_it_again() -> None:
    """A finished run's view does not change while the race goes on beside it: the lane reads
    it once. Stepping back (or on again) gives a fresh one."""
    lane = Lane(load_scenario("tiny"), Mode.SERIAL)

    def view_now() -> EngineView:
        return lane.frame(clock_ns=None, playing=False, speed=1.0, rate_ns=1.0, now_ns=0,
                          bucket_ns=1000, selected=0, frame_no=0).view

    lane.engine.run_to_end()
    end = view_now()
    assert end.done and view_now() is end
    lane.engine.back(1)
    before = view_now()
    assert not before.done and before.events == end.events - 1
    lane.engine.run_to_end()
    again = view_now()
    assert again.done and again is not end and again.events == end.events
