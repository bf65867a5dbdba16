"""Pace: how much simulated time the app actually plays per wall second.

The speed the user asks for (×N) sets a target rate; a big scenario can make the engine slower
than that, and then the clock on screen advances more slowly than the header's ×N promises. The
header shows the achieved rate, measured here over the last second of frames, and says when the
app falls behind.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 1.0  # measure over about this much wall time
MIN_SPAN_S = 0.25  # report nothing before this much has been seen (a rate from two frames lies)
BEHIND = 0.8  # below this share of the asked rate, the app is falling behind


class Pace:
    """Samples of (wall seconds, simulated ns shown) while playing."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        """Forget the samples (playback stopped, the speed changed, the run was reset)."""
        self._samples.clear()

    def add(self, wall_s: float, shown_ns: float) -> None:
        """The frame drawn at ``wall_s`` showed the simulated time ``shown_ns``."""
        samples = self._samples
        samples.append((wall_s, shown_ns))
        while len(samples) > 2 and wall_s - samples[1][0] >= WINDOW_S:
            samples.popleft()

    def rate(self) -> float | None:
        """Simulated ns per wall second over the window, or None until enough is seen."""
        if len(self._samples) < 2:
            return None
        (wall0, sim0), (wall1, sim1) = self._samples[0], self._samples[-1]
        span = wall1 - wall0
        if span < MIN_SPAN_S:
            return None
        return max(sim1 - sim0, 0.0) / span

    def behind(self, asked_ns: float) -> bool:
        """Whether the achieved rate is well below the asked one."""
        rate = self.rate()
        return rate is not None and rate < BEHIND * asked_ns
