"""The split race in the app at its top speed: simulated time played per wall second.

    python benchmarks/race.py                                  # pmbench-2s, 15 s, 160x48
    python benchmarks/race.py --seconds 10 --against fa34387   # beside another commit
    python benchmarks/race.py --to-end --seconds 300           # the whole race, timed

The app runs headless (nothing is drawn to a terminal, everything is rendered), opens split
view, goes to the top speed and plays for ``--seconds``; the result is the simulated time both
sides reached over the wall time. With ``--to-end`` it plays until both sides are done (or
``--seconds`` ran out) and reports how long the whole race took. With --against, each tree
is measured in a fresh process, taking turns: compare the ratio, not the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def play(scenario: str, seconds: float, size: tuple[int, int], to_end: bool = False
         ) -> dict[str, Any]:
    """In this process, against the tree first on sys.path."""
    from engine import tune_as_migviz_does  # benchmarks/engine.py

    from core.scenario import load_scenario
    from tui.app import SPEEDS, MigvizApp
    tune_as_migviz_does()

    result: dict[str, Any] = {}

    async def pilot(p: Any) -> None:
        app = p.app
        await p.pause()
        await app.run_action("split")
        await p.pause()
        app._speed_index = len(SPEEDS) - 1
        app.playing = True
        start = time.perf_counter()
        if to_end:
            while time.perf_counter() - start < seconds \
                    and not all(lane.engine.done for lane in app.race):
                await asyncio.sleep(0.05)
            result["done"] = all(lane.engine.done for lane in app.race)
        else:
            await asyncio.sleep(seconds)
        app.playing = False
        result["sim_ns"] = min(lane.engine.clock for lane in app.race)
        result["wall_s"] = time.perf_counter() - start
        app.exit()

    MigvizApp(load_scenario(scenario), paused=True).run(headless=True, size=size,
                                                        auto_pilot=pilot)
    result["ms_per_s"] = result["sim_ns"] / 1e6 / result["wall_s"]
    return result


def measure(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(tree),
                           args.scenario, str(args.seconds), args.size,
                           "end" if args.to_end else "for"], capture_output=True,
                          text=True, cwd=tree, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the race in {tree} failed:\n{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        sys.path.insert(0, sys.argv[2])
        width, height = (int(n) for n in sys.argv[5].split("x"))
        print(json.dumps(play(sys.argv[3], float(sys.argv[4]), (width, height),
                              sys.argv[6] == "end")))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="pmbench-2s")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--size", default="160x48")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; each tree's best is kept")
    parser.add_argument("--against", metavar="REV", help="measure this commit too, side by side")
    parser.add_argument("--to-end", action="store_true",
                        help="play until both sides are done (at most --seconds); time it")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from engine import export, warm  # benchmarks/engine.py: `git archive` of a commit

    with tempfile.TemporaryDirectory(prefix="migviz-race-") as tmp:
        trees = {"this": ROOT}
        if args.against:
            trees[args.against] = export(args.against, Path(tmp))
        warm(trees)
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeat):
            for name, tree in trees.items():
                result = measure(tree, args)
                if name not in best or result["ms_per_s"] > best[name]["ms_per_s"]:
                    best[name] = result
    for name, result in best.items():
        if args.to_end:
            print(f"{name:>10}: {args.scenario} race at the top speed, {args.size}: "
                  + (f"the whole race in {result['wall_s']:.1f} s" if result["done"] else
                     f"not done after {result['wall_s']:.1f} s "
                     f"({result['sim_ns'] / 1e6:.2f} ms simulated)"))
            continue
        print(f"{name:>10}: {args.scenario} race at the top speed, {args.size}: "
              f"{result['ms_per_s']:.2f} ms simulated per wall second "
              f"({result['sim_ns'] / 1e6:.2f} ms in {result['wall_s']:.1f} s)")
    if args.against:
        ratio = best[args.against]["wall_s"] / best["this"]["wall_s"] if args.to_end \
            else best["this"]["ms_per_s"] / best[args.against]["ms_per_s"]
        print(f"ratio: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
