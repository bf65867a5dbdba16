"""TUI speed: time per frame while playing, CPU use while paused, time to the first screen.

    python benchmarks/tui.py                      # default and large at 160x48
    python benchmarks/tui.py --seconds 5 --json

A frame is what one timer tick costs: advancing the engine (``run_until``), reading its view,
pushing it into the widgets, plus the screen update that paints the result. The app runs
headless (nothing is written to a terminal), playing at a fixed speed; each tick's cost and each
screen update's cost are timed and paired. CPU use while paused is process CPU time over wall
time with the app idle. Time to first screen is measured in a fresh interpreter, from before the
first import to the moment the first frame has been painted. Targets (issue 3): frame ≤ 16 ms
on default, ≤ 50 ms on large, ~0 % CPU paused, first screen < 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402
from textual.screen import Screen  # noqa: E402

from core.scenario import load_scenario  # noqa: E402
from tui.app import MigvizApp  # noqa: E402

FIRST_SCREEN = """
import time
start = time.perf_counter()
import asyncio
from core.scenario import load_scenario
from tui.app import MigvizApp
async def pilot(p):
    await p.pause()
    print(time.perf_counter() - start)
    p.app.exit()
MigvizApp(load_scenario({name!r}), paused=True).run(headless=True, size=({w}, {h}),
                                                    auto_pilot=pilot)
"""


def first_screen(name: str, size: tuple[int, int]) -> float:
    """Seconds from interpreter start (before imports) to the first painted frame, as an
    installed migviz starts: with its modules' bytecode cached (the first start writes it), even
    where PYTHONDONTWRITEBYTECODE is set (then every start would compile every module)."""
    code = FIRST_SCREEN.format(name=name, w=size[0], h=size[1])
    env = {key: value for key, value in os.environ.items()
           if key != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def measure(name: str, speed: float, seconds: float, size: tuple[int, int]) -> dict[str, Any]:
    """Play ``seconds`` of wall time and time every frame; then idle paused and time the CPU."""
    ticks: list[float] = []
    paints: list[float] = []
    busy: list[bool] = []  # the tick applied events (engine + view + widgets + paint)
    original_tick = MigvizApp._tick
    original_paint = Screen._on_timer_update

    def timed_tick(app: MigvizApp) -> None:
        before = app.lane.engine.events
        start = time.perf_counter()
        original_tick(app)
        ticks.append(time.perf_counter() - start)
        paints.append(0.0)
        busy.append(app.lane.engine.events != before)

    def timed_paint(screen: Screen[Any]) -> None:
        start = time.perf_counter()
        original_paint(screen)
        if paints:
            paints[-1] += time.perf_counter() - start

    result: dict[str, Any] = {}

    async def pilot(p: Pilot[object]) -> None:
        app = p.app
        assert isinstance(app, MigvizApp)
        await p.pause()
        app.playing = True
        await asyncio.sleep(seconds)
        app.playing = False
        events = app.lane.engine.events
        sim_ns = app.lane.engine.clock
        await p.pause()
        await asyncio.sleep(0.5)  # let the last paint and any notification settle
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        result.update(events=events, sim_ns=sim_ns, paused_cpu=cpu)
        app.exit()

    MigvizApp._tick = timed_tick  # type: ignore[method-assign,assignment]
    Screen._on_timer_update = timed_paint  # type: ignore[method-assign,assignment]
    try:
        app = MigvizApp(load_scenario(name), paused=True, speed=speed)
        app.run(headless=True, size=size, auto_pilot=pilot)
    finally:
        MigvizApp._tick = original_tick  # type: ignore[method-assign]
        Screen._on_timer_update = original_paint  # type: ignore[method-assign]
    frames = [tick + paint for tick, paint in zip(ticks, paints, strict=True)]
    busy_frames = [f for f, b in zip(frames, busy, strict=True) if b]
    return {
        "busy_frames": len(busy_frames),
        "busy_ms_median": round(statistics.median(busy_frames) * 1e3, 2) if busy_frames
        else None,
        "scenario": name, "speed": speed, "size": f"{size[0]}x{size[1]}",
        "frames": len(frames),
        "frame_ms_median": round(statistics.median(frames) * 1e3, 2) if frames else None,
        "frame_ms_p95": round(sorted(frames)[int(0.95 * (len(frames) - 1))] * 1e3, 2)
        if frames else None,
        "tick_ms_median": round(statistics.median(ticks) * 1e3, 2) if ticks else None,
        "paint_ms_median": round(statistics.median(paints) * 1e3, 2) if paints else None,
        "events": result.get("events"), "sim_us": round(result.get("sim_ns", 0) / 1e3, 1),
        "paused_cpu_pct": round(100 * result.get("paused_cpu", 0.0), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="wall time played per case")
    parser.add_argument("--size", default="160x48")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    size = (width, height)
    # ×1 is the classroom speed; the fast cases keep the engine busy every frame.
    cases = [("default", 1.0), ("default", 64.0), ("large", 1.0), ("large", 1024.0)]
    rows = [measure(name, speed, args.seconds, size) for name, speed in cases]
    starts = {name: round(min(first_screen(name, size) for _ in range(3)), 3)
              for name in ("default", "large")}
    if args.json:
        print(json.dumps({"python": platform.python_version(), "rows": rows,
                          "first_screen_s": starts}, indent=2))
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}, headless {args.size}, "
          f"{args.seconds:g} s per case")
    print(f"{'scenario':<9}{'speed':>7}{'frames':>8}{'frame ms':>10}{'p95 ms':>8}{'busy':>6}"
          f"{'busy ms':>9}{'tick ms':>9}{'paint ms':>10}{'events':>9}{'sim µs':>10}"
          f"{'paused CPU':>12}")
    for r in rows:
        print(f"{r['scenario']:<9}{r['speed']:>7g}{r['frames']:>8}{r['frame_ms_median']:>10}"
              f"{r['frame_ms_p95']:>8}{r['busy_frames']:>6}{r['busy_ms_median']!s:>9}"
              f"{r['tick_ms_median']:>9}{r['paint_ms_median']:>10}"
              f"{r['events']:>9}{r['sim_us']:>10}{r['paused_cpu_pct']:>11}%")
    print("frame = tick (engine advance + view + widgets) + the paint it caused; busy = frames"
          " whose tick applied events (the others only move the header clock)")
    for name, seconds in starts.items():
        print(f"first screen ({name}, from interpreter start, best of 3): {seconds:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
