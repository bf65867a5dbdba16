"""Engine speed: wall time, events per second, simulated time per wall time and peak memory of
headless runs, and of `migviz bench`; optionally beside another commit, measured side by side.

    python benchmarks/engine.py                          # default and large, both modes
    python benchmarks/engine.py --repeat 1 --scenario large
    python benchmarks/engine.py --scenario large --bench --against HEAD~5
    python benchmarks/engine.py --sweep migration.batch_pages=1,8,64,512,4096

Each measurement runs in a fresh Python process (so that its peak resident memory is its own),
importing migviz from the tree measured: the working tree, or with --against REV a copy of that
commit (`git archive`). The trees take turns, round after round, and each keeps its best time:
absolute times vary between machines and runs, so compare the ratio, not the seconds.
The "workload" column is the share of an engine run spent simulating the workload's accesses
(Workload.advance_to, including loading the compiled access loop, about 0.8 s, in runs long
enough to want it); the rest is the migrating task.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# In the child process: one measurement, against the tree on sys.path[0].


def _field(summary: Any, name: str) -> Any:
    """A run summary's figure: a record's field, or (older commits) a dict's key."""
    return summary[name] if isinstance(summary, dict) else getattr(summary, name)


def _time_workload() -> list[float]:
    """Time spent simulating the workload (Workload.advance_to), so far: the rest of a run is
    the migrating task. The one-element list fills in as the run goes."""
    from core.workload import Workload

    spent = [0.0]
    advance = Workload.advance_to

    def timed(self: Any, horizon: int) -> None:
        start = time.perf_counter()
        advance(self, horizon)
        spent[0] += time.perf_counter() - start

    Workload.advance_to = timed  # type: ignore[method-assign]
    return spent


def tune_as_migviz_does() -> None:
    """The `migviz` command tunes the garbage collector before it runs a command: so does a
    measurement (trees from before core.engine.tune_collector run with the default)."""
    from core import engine

    tune = getattr(engine, "tune_collector", None)
    if tune is not None:
        tune()


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Measure one case in this process: an engine run ("engine") or a CLI command ("cli"); or
    ("warm") load the tree's compiled code once, so that no timed run pays for compiling it."""
    if case["kind"] == "warm":
        try:
            from core import accesses
        except ImportError:  # a tree from before the compiled access loop
            return {}
        accesses.compiled()  # numba's cache on disk: compiled here the first time
        return {}
    if case["kind"] == "engine":
        from core.engine import Engine
        from core.scenario import Mode, load_scenario

        scenario = load_scenario(case["scenario"], case["overrides"])
        engine = Engine(scenario, Mode(case["mode"]), checkpoints=False, history=1)
        tune_as_migviz_does()
        workload_s = _time_workload()
        start = time.perf_counter()
        engine.run_to_end()
        wall = time.perf_counter() - start
        summary = engine.summary()
        sim_ns, events = int(_field(summary, "sim_time_ns")), int(_field(summary, "events"))
        return {"wall_s": wall, "events": events, "sim_time_ns": sim_ns,
                "pages": int(_field(summary, "pgmigrate_success")),
                "ipis": int(_field(summary, "nr_tlb_remote_flush_received")),
                "workload_s": workload_s[0], "peak_mb": _peak_mb()}
    from tui.cli import main

    tune_as_migviz_does()
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(case["argv"])
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"migviz {' '.join(case['argv'])} exited {code}")
    return {"wall_s": wall, "peak_mb": _peak_mb(), "output_bytes": len(out.getvalue())}


def _peak_mb() -> float:
    """Peak resident memory of this process or of the largest of its workers (--jobs), MB."""
    peaks = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                            resource.RUSAGE_CHILDREN))
    return max(peaks) / 1024  # KiB on Linux


def child_main(tree: str, case_json: str) -> int:
    sys.path.insert(0, tree)
    print(json.dumps(run_case(json.loads(case_json))))
    return 0


# ---------------------------------------------------------------------------------------------
# In the parent: the cases, the trees, the table.


def measure(tree: Path, case: dict[str, Any]) -> dict[str, Any]:
    """One measurement of a case in a fresh process importing migviz from ``tree``."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(tree),
                           json.dumps(case)], capture_output=True, text=True, cwd=tree,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark of {label(case)} in {tree} failed:\n{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def warm(trees: dict[str, Path]) -> None:
    """Compile what each tree compiles before anything is timed: a tree exported from git has
    an empty cache, and its first run would pay seconds that the working tree does not."""
    for tree in trees.values():
        measure(tree, {"kind": "warm"})


def label(case: dict[str, Any]) -> str:
    if case["kind"] == "warm":
        return "loading the compiled code"
    if case["kind"] == "engine":
        extra = f" ({', '.join(case['overrides'])})" if case["overrides"] else ""
        return f"{case['scenario']} {case['mode']}{extra}"
    return "migviz " + " ".join(case["argv"])


def export(rev: str, into: Path) -> Path:
    """The tracked files of commit ``rev`` in a directory of their own."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--against {rev}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def best_of(trees: dict[str, Path], case: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Each tree's best measurement of the case, the trees taking turns round after round."""
    best: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for name, tree in trees.items():
            result = measure(tree, case)
            if name not in best or result["wall_s"] < best[name]["wall_s"]:
                best[name] = result
    return best


def row_of(case: dict[str, Any], best: dict[str, dict[str, Any]], names: list[str]
           ) -> dict[str, Any]:
    row: dict[str, Any] = {"case": label(case)}
    for name in names:
        result = best[name]
        wall = result["wall_s"]
        figures = {"wall_s": round(wall, 3), "peak_mb": round(result["peak_mb"], 1)}
        if "events" in result:
            figures |= {"events": result["events"], "events_per_s": round(result["events"] / wall),
                        "sim_ns_per_wall_ns": round(result["sim_time_ns"] / (wall * 1e9), 5),
                        "pages": result["pages"], "ipis": result["ipis"],
                        "workload_s": round(result.get("workload_s", 0.0), 3)}
        row[name] = figures
    if len(names) == 2:
        this, other = (best[name] for name in names)
        row["speedup"] = round(other["wall_s"] / this["wall_s"], 2)
        if "events" in this:
            row["same_counts"] = all(this[key] == other[key]
                                     for key in ("events", "sim_time_ns", "pages", "ipis"))
    return row


def print_table(rows: list[dict[str, Any]], names: list[str], repeat: int) -> None:
    print(f"python {platform.python_version()} on {platform.machine()}, best of {repeat}; "
          + (f"this tree against {names[1]}, side by side" if len(names) == 2 else "this tree"))
    width = max(len(row["case"]) for row in rows) + 2
    header = (f"{'case':<{width}}{'wall s':>9}{'workload':>9}{'events/s':>11}{'sim/wall':>10}"
              f"{'peak MB':>9}")
    if len(names) == 2:
        header += f"{names[1] + ' s':>14}{'peak MB':>9}{'speedup':>9}  counts"
    print(header)
    for row in rows:
        this = row["this"]
        share = f"{this['workload_s'] / this['wall_s']:.0%}" if "workload_s" in this else ""
        # A command (bench, sweep) reports no events or simulated time: blank, not zero.
        rate = f"{this['events_per_s']:,}" if "events_per_s" in this else "-"
        sim = f"{this['sim_ns_per_wall_ns']:.4f}" if "sim_ns_per_wall_ns" in this else "-"
        line = (f"{row['case']:<{width}}{this['wall_s']:>9.2f}{share:>9}{rate:>11}{sim:>10}"
                f"{this['peak_mb']:>9.0f}")
        if len(names) == 2:
            other = row[names[1]]
            same = {True: "same", False: "DIFFER", None: ""}[row.get("same_counts")]
            line += (f"{other['wall_s']:>14.2f}{other['peak_mb']:>9.0f}{row['speedup']:>8.2f}×"
                     f"  {same}")
        print(line)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        return child_main(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append",
                        help="scenario(s) run in both modes; default: default, large")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="SECTION.KEY=VALUE for the scenario runs")
    parser.add_argument("--bench", action="store_true", help="also time `migviz bench`")
    parser.add_argument("--sweep", metavar="SPEC",
                        help="also time `migviz bench --sweep SPEC`")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each tree's best is kept")
    parser.add_argument("--against", metavar="REV", help="measure this commit too, side by side")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases: list[dict[str, Any]] = [
        {"kind": "engine", "scenario": name, "mode": mode, "overrides": args.overrides}
        for name in (args.scenario or ["default", "large"]) for mode in ("serial", "batched")]
    if args.bench:
        cases.append({"kind": "cli", "argv": ["bench", "--json"]})
    if args.sweep:
        cases.append({"kind": "cli", "argv": ["bench", "--sweep", args.sweep, "--json"]})
    with tempfile.TemporaryDirectory(prefix="migviz-against-") as tmp:
        trees = {"this": ROOT}
        if args.against:
            trees[args.against] = export(args.against, Path(tmp))
        names = list(trees)
        warm(trees)
        rows = [row_of(case, best_of(trees, case, args.repeat), names) for case in cases]
    if args.json:
        print(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                          "repeat": args.repeat, "against": args.against, "rows": rows},
                         indent=2))
    else:
        print_table(rows, names, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
