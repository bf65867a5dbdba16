"""Sensitivity of the two headline figures to each main cost, halved and doubled.

    python benchmarks/sensitivity.py            # markdown table for docs/calibration.md
    python benchmarks/sensitivity.py --full     # on the full 65,536-page scenario (slow)

By default it runs a scaled-down pmbench-2s (4,096 pages per move instead of 65,536: the same
per-page mechanisms, 16x less work) as a test of 40 ms per mode, the way `migviz bench` reads the
seed (both modes for the same time, counted during the test); `--full` runs the full scenario
for 400 ms per mode, to check that the scale does not change the picture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.bench import DURATION_NS, run_bench  # noqa: E402
from core.scenario import load_scenario  # noqa: E402

SMALL = ["memory.folios=[{order = 0, count = 4096}]"]
SMALL_NS = 40_000_000
PARAMETERS = [
    "costs.ipi_send_ns", "costs.ipi_target_ns", "costs.ipi_latency_ns",
    "costs.ipi_remote_latency_ns", "costs.ipi_handler_ns", "costs.copy_page_ns",
    "costs.alloc_ns", "costs.move_ns", "costs.unmap_pte_ns", "costs.remap_pte_ns",
    "costs.walk_pte_ns", "costs.isolate_folio_ns", "costs.tlb_refill_ns",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="use the full scenario")
    args = parser.parse_args()
    base_overrides = [] if args.full else SMALL
    duration = DURATION_NS if args.full else SMALL_NS
    base = load_scenario("pmbench-2s", base_overrides)
    reference = run_bench(base, duration_ns=duration)
    print(f"scenario pmbench-2s{'' if args.full else ' scaled to 4,096 pages'}: IPI reduction "
          f"{reference['ipi_reduction_pct']:.2f}%, throughput gain "
          f"+{reference['throughput_gain_pct']:.1f}%, workload accesses "
          f"{reference['workload_gain_pct']:+.1f}%\n")
    print("| parameter | default | ×0.5: IPIs | ×0.5: pages/s | ×0.5: workload "
          "| ×2: IPIs | ×2: pages/s | ×2: workload |")
    print("|---|---|---|---|---|---|---|---|")
    for name in PARAMETERS:
        section, key = name.split(".")
        default = getattr(getattr(base, section), key)
        cells = []
        for factor in (0.5, 2.0):
            value = default * factor
            value = round(value) if isinstance(default, int) else min(value, 1.0)
            result = run_bench(load_scenario("pmbench-2s", base_overrides + [f"{name}={value}"]),
                               duration_ns=duration)
            cells += [f"−{result['ipi_reduction_pct']:.2f}%",
                      f"+{result['throughput_gain_pct']:.0f}%",
                      f"{result['workload_gain_pct']:+.0f}%"]
        print(f"| `{key}` | {default:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
