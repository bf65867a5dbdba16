"""Pacing: how far simulated time goes each frame, for one lane or a race of two.

Kept apart from the app so that it can be driven, and tested, with a made-up wall clock: the
app calls ``tick(now, ...)`` once a frame while playing and draws what it says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.events import Event
from tui.lane import Lane
from tui.pace import Pace

FRAME_BUDGET_S = 0.012  # engine work per frame before the simulation is allowed to lag
EARLY_S = 0.5  # an event may be shown this much (wall time) before its simulated time
GAP_S = 1.5  # a wait for the next event longer than this (wall time) is fast-forwarded
# A longer wall-clock gap between frames (a stall) counts as this much. At least a lagging tick
# and its frame: at 0.1 s, the race's shared clock moved a third of the asked speed however much
# the engine could do.
MAX_FRAME_S = 0.5
BEHIND_BUDGET_S = 0.2  # engine work per tick while a lane lags (the app then draws less often)


@dataclass(frozen=True, slots=True)
class Tick:
    """What one frame did: events applied, the breakpoint hit (single lane only), whether
    every lane is done."""

    applied: int
    hit: Event | None
    done: bool


class Playback:
    """The simulated time shown (``target``) and how it follows the wall clock at a speed:
    ``rate_ns`` simulated ns per wall second at ×1. A quiet stretch longer than GAP_S at the
    asked rate is crossed in about GAP_S (``fast_forward``). Lanes advance together; a lane
    that cannot keep up within the frame budget holds the shared clock back (a race stays
    fair), and the achieved rate (``pace``) says so."""

    def __init__(self, rate_ns: float, *, budget_s: float = FRAME_BUDGET_S,
                 behind_budget_s: float = BEHIND_BUDGET_S) -> None:
        self.rate_ns = rate_ns
        self.budget_s = budget_s
        self.behind_budget_s = behind_budget_s
        self.target = 0.0
        self.fast_forward = False
        self.pace = Pace()
        self._gap_rate = 0.0
        self._last_tick = 0.0
        self._lagged = False  # a lane could not keep up last frame

    def restart(self, now: float, clock_ns: float | None = None) -> None:
        """Playing starts (or the speed or run changed): forget the pace, measure from now."""
        self.fast_forward = False
        self.pace.reset()
        self._last_tick = now
        if clock_ns is not None:
            self.target = clock_ns

    def achieved(self, speed: float, playing: bool) -> tuple[float | None, bool]:
        """The simulated rate actually played, and whether it falls behind the asked one (a
        fast-forwarded gap plays faster than asked, never behind)."""
        if not playing:
            return None, False
        return self.pace.rate(), not self.fast_forward and self.pace.behind(self.rate_ns * speed)

    def tick(self, now: float, lanes: Sequence[Lane], speed: float, frame_no: int,
             stop: Callable[[Event], bool] | None = None) -> Tick:
        """One frame at wall time ``now`` (seconds, any origin): move the target on and the lanes
        to it, spending at most ``budget_s`` of real time in the engines."""
        elapsed = min(max(now - self._last_tick, 0.0), MAX_FRAME_S)
        self._last_tick = now
        per_second = self.rate_ns * speed
        step = elapsed * per_second
        # An event may show up to EARLY_S early; only longer steps are held back (each hold
        # costs a back(1), i.e. a checkpoint restore and replay).
        tolerance = per_second * EARLY_S
        # Real engine work, whatever ``now`` is. While a lane lags (the top speeds), the engine
        # gets more of each tick, and the app draws only a few of them (LAGGING_FRAME_S): the
        # run goes faster, and a key waits at most a tick.
        budget = max(self.budget_s, self.behind_budget_s) if self._lagged else self.budget_s
        deadline = time.perf_counter() + budget
        target = self.target
        quiet = quiet_for(lanes, target)
        if quiet > GAP_S * per_second:
            # Nothing happens for a long while (isolating folios, copying a THP): cross the
            # gap in about GAP_S seconds, visibly, instead of making the audience wait.
            if not self.fast_forward:
                self._gap_rate = quiet / GAP_S
            self.fast_forward = True
            step = max(step, elapsed * self._gap_rate)
        else:
            self.fast_forward = False
        target += step
        applied = 0
        for lane in lanes:
            applied += lane.advance(target, tolerance, deadline, frame_no, stop)
            if lane.lagging or lane.hit is not None:
                target = min(target, float(lane.engine.clock))
        self.target = target
        self._lagged = any(lane.lagging for lane in lanes)
        self.pace.add(now, target)
        hit = next((lane.hit for lane in lanes if lane.hit is not None), None)
        return Tick(applied, hit, all(lane.engine.done for lane in lanes))


def quiet_for(lanes: Sequence[Lane], target: float) -> float:
    """Simulated ns until the next event of any lane that is waiting for one (0 if some lane
    has events due, or if none is known)."""
    gaps = []
    for lane in lanes:
        if lane.engine.done:
            continue
        if lane.next_at is None:
            return 0.0
        gaps.append(lane.next_at - target)
    return max(min(gaps), 0.0) if gaps else 0.0
