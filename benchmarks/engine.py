"""Engine speed: wall time, events per second and simulated time per wall time of headless runs.

    python benchmarks/engine.py              # default and large, both modes, best of 3
    python benchmarks/engine.py --repeat 1 --scenario large --set migration.moves=2

Measures `Engine.run_to_end()` exactly as `migviz run` uses it (no checkpoints, no history).
Wall times are machine-dependent: compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.engine import Engine  # noqa: E402
from core.scenario import Mode, load_scenario  # noqa: E402


def measure(name: str, mode: Mode, overrides: list[str], repeat: int) -> dict[str, object]:
    scenario = load_scenario(name, overrides)
    best = float("inf")
    for _ in range(repeat):
        engine = Engine(scenario, mode, checkpoints=False, history=1)
        start = time.perf_counter()
        engine.run_to_end()
        best = min(best, time.perf_counter() - start)
    summary = engine.summary()
    sim_ns, events = summary.sim_time_ns, summary.events
    return {
        "scenario": name, "mode": mode.value, "folios": scenario.memory.total_folios,
        "moves": scenario.migration.moves, "wall_s": round(best, 3), "events": events,
        "events_per_s": round(events / best), "sim_time_ns": sim_ns,
        "sim_ns_per_wall_ns": round(sim_ns / (best * 1e9), 4),
        "accesses": summary.accesses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", help="scenario(s); default: default, large")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is kept")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(name, mode, args.overrides, args.repeat)
            for name in (args.scenario or ["default", "large"])
            for mode in (Mode.SERIAL, Mode.BATCHED)]
    if args.json:
        print(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                          "rows": rows}, indent=2))
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.repeat}")
    print(f"{'scenario':<10}{'mode':<9}{'folios':>8}{'wall s':>9}{'events':>11}{'events/s':>11}"
          f"{'sim time':>12}{'sim/wall':>10}{'accesses':>12}")
    for row in rows:
        print(f"{row['scenario']:<10}{row['mode']:<9}{row['folios']:>8,}{row['wall_s']:>9.2f}"
              f"{row['events']:>11,}{row['events_per_s']:>11,}"
              f"{int(row['sim_time_ns']) / 1e6:>10.2f}ms"  # type: ignore[call-overload]
              f"{row['sim_ns_per_wall_ns']:>10.4f}{row['accesses']:>12,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
