"""Memory of split view: serial and batched racing to the end of a scenario, as the app runs it.

    python benchmarks/split_memory.py                     # pmbench-2s
    python benchmarks/split_memory.py --scenario large --json

Both lanes advance on one simulated clock with frames built along the way (as the app pushes
them), and the process's peak resident set size is reported (``ru_maxrss``), with the resident
size before the race (imports and the two engines built) for scale. Run it in a fresh process:
peak RSS never goes down.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.engine import tune_collector  # noqa: E402
from core.scenario import Mode, load_scenario  # noqa: E402
from tui.lane import Lane  # noqa: E402


def rss_mb() -> float:
    """Resident set size now, in MB (from /proc; the peak comes from getrusage)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="pmbench-2s")
    parser.add_argument("--frame-ns", type=int, default=200_000,
                        help="simulated time per frame (the app at a high speed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    tune_collector()  # as the `migviz` command does
    started = time.perf_counter()
    lanes = (Lane(scenario, Mode.SERIAL, split=True), Lane(scenario, Mode.BATCHED, split=True))
    before = rss_mb()
    target = 0.0
    frames = 0
    while not all(lane.engine.done for lane in lanes):
        target += args.frame_ns
        for lane in lanes:
            lane.advance(target, 0.0, float("inf"), frames)
            lane.frame(clock_ns=int(target), playing=True, speed=1.0, rate_ns=1.0,
                       now_ns=int(target), bucket_ns=max(args.frame_ns, 1), selected=0,
                       frame_no=frames)
        frames += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "scenario": args.scenario, "frames": frames, "wall_s": round(time.perf_counter() - started, 1),
        "rss_before_race_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
        "events": [lane.engine.events for lane in lanes],
    }
    print(json.dumps(result, indent=2) if args.json else
          f"split view on {args.scenario}: peak RSS {result['peak_rss_mb']} MB "
          f"({result['rss_before_race_mb']} MB before the race), {frames} frames, "
          f"{result['events']} events, {result['wall_s']} s")


if __name__ == "__main__":
    main()
