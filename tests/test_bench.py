"""The seed's measurement: a scaled-down pmbench-2s must land in the same ranges (a model test,
not a timing test), and the batch-size sweep must show the latency side of the trade-off."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line, call

from core.bench import RANGES, SEED, TimedRun, parse_sweep, run_bench, run_once, sweep
from core.scenario import Mode, ScenarioError, load_scenario
from tui.cli import main

# 8 batches of 512 per move instead of 128: same per-page mechanisms, 16x less work.
SMALL = ["memory.folios=[{order = 0, count = 4096}]"]


TEST_NS = 40_000_000  # 40 ms of simulated time: ~2 moves of the small map serially, ~10 batched


@pytest.fixture(scope="module")
def bench() -> dict[str, object]:
    return run_bench(load_scenario("pmbench-2s", SMALL), duration_ns=TEST_NS)


@pytest.mark.parametrize("key", sorted(RANGES))
def test_headline_figures_land_in_range(bench: dict[str, object], key: str) -> None:
    low, high = RANGES[key]
    value = bench[key]
    assert isinstance(value, float)
    assert low <= value <= high, f"{key} = {value}, seed {SEED[key]}, range {low}..{high}"


def test_figures_follow_from_the_counters(bench: dict[str, object]) -> None:
    # A test of fixed length: both modes ran for the same simulated time, so the reduction
    # "during the test" compares IPIs over that time, and pages per second pages over it.
    serial_run, batched_run = bench["serial"], bench["batched"]
    assert isinstance(serial_run, TimedRun) and isinstance(batched_run, TimedRun)
    serial, batched = serial_run.summary, batched_run.summary
    # duration_ns is the test's length in *simulated* time (what --duration sets), the same in
    # both modes by construction; no wall-clock time is measured or asserted here.
    assert serial_run.duration_ns == batched_run.duration_ns == bench["duration_ns"] == TEST_NS
    reduction = 100 * (1 - batched.nr_tlb_remote_flush_received
                       / serial.nr_tlb_remote_flush_received)
    assert bench["ipi_reduction_pct"] == pytest.approx(reduction, abs=0.01)
    gain = 100 * (batched_run.pages_migrated / serial_run.pages_migrated - 1)
    assert bench["throughput_gain_pct"] == pytest.approx(gain, abs=0.01)
    for run in (serial_run, batched_run):
        assert run.summary.pages_per_sec == pytest.approx(run.pages_migrated / (TEST_NS / 1e9))
    per_page = 100 * (1 - (batched.nr_tlb_remote_flush_received / batched_run.pages_migrated)
                      / (serial.nr_tlb_remote_flush_received / serial_run.pages_migrated))
    assert bench["ipi_per_page_reduction_pct"] == pytest.approx(per_page, abs=0.005)
    # Per page the reduction is larger: batched moved more pages in the same time.
    assert float(bench["ipi_per_page_reduction_pct"]) > float(bench["ipi_reduction_pct"])  # type: ignore[arg-type]
    # The test outlasts a move: the folios went back and forth, the last move cut short.
    scenario = load_scenario("pmbench-2s", SMALL)
    assert serial_run.moves_started >= 2 and batched_run.moves_started > serial_run.moves_started
    assert serial_run.pages_migrated > scenario.memory.total_pages
    # Serial: one round per page (the one in flight at the end may not be remapped yet).
    assert serial.nr_tlb_remote_flush - serial_run.pages_migrated in (0, 1)
    # Batched, with no busy folios: one deferred round per batch of 512 (the last one maybe
    # unfinished), no sync fallback.
    batches = -(-batched_run.pages_migrated // scenario.migration.batch_pages)
    assert batched.nr_tlb_remote_flush - batches in (0, 1)
    assert batched.fallback_flush_rounds == batched.sync_fallback_folios == 0


def test_ipi_cost_follows_the_x86_round_shape() -> None:
    # The IPIs go out one after another and the acknowledgements are awaited together: a round
    # grows a little with each target, and a target on the other socket adds its distance once
    # (the slowest target decides the wait), not once per remote target.
    def per_round(cpus: list[int]) -> float:
        scenario = load_scenario("pmbench-2s", SMALL + [
            "migration.moves=1", f"workload.threads={len(cpus)}", f"workload.cpus={cpus}"])
        result = run_once(scenario, Mode.SERIAL)
        return float(result.time_flush_ns / result.nr_tlb_remote_flush)

    # The initiator is CPU 47, on node 1 (CPUs 24-47).
    same_8 = per_round(list(range(24, 32)))
    same_16 = per_round(list(range(24, 40)))
    other_1 = per_round([0])
    other_8 = per_round(list(range(0, 8)))
    both_16 = per_round(list(range(0, 8)) + list(range(24, 32)))
    costs = load_scenario("pmbench-2s").costs
    distance = 2 * (costs.ipi_remote_latency_ns - costs.ipi_latency_ns)  # there and back
    assert same_16 - same_8 == 8 * costs.ipi_target_ns
    assert other_8 - same_8 == distance
    assert other_8 - other_1 == 7 * costs.ipi_target_ns
    # Remote targets first in cpumask order: the local ones, sent later, finish earlier.
    assert both_16 == other_8


def test_sweep_stall_p99_grows_with_batch_size() -> None:
    scenario = load_scenario("pmbench-2s", SMALL + ["migration.moves=1", "migration.contention=0"])
    rows = sweep(scenario, "migration.batch_pages=1,16,128,512")
    assert [row.value for row in rows] == [1, 16, 128, 512]
    p99 = [row.summary.stall_p99_ns for row in rows]
    assert p99 == sorted(p99) and p99[0] < p99[-1]
    ipis = [row.summary.nr_tlb_remote_flush_received for row in rows]
    assert ipis == sorted(ipis, reverse=True) and ipis[0] > ipis[-1]


def test_parse_sweep() -> None:
    assert parse_sweep("migration.batch_pages=1,8,64") == ("migration.batch_pages", [1, 8, 64])
    assert parse_sweep("migration.mode=serial,batched")[1] == ["serial", "batched"]
    for bad in ("batch_pages=1,2", "migration.batch_pages", "migration.batch_pages="):
        with pytest.raises(ScenarioError):
            parse_sweep(bad)


def test_bench_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--json", "--duration", "5"]
    for override in SMALL + ["migration.moves=1"]:
        argv += ["--set", override]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("ipi_reduction_pct", "throughput_gain_pct", "ipi_per_page_reduction_pct",
                "serial_flush_share_pct", "batched_copy_share_pct",
                "batched_unmap_flush_share_pct", "wall_s", "sim_time_ns", "duration_ns"):
        assert key in data
    assert data["duration_ns"] == 5_000_000  # --duration 5: 5 ms of simulated time, not wall time
    for mode in ("serial", "batched"):
        assert data[mode]["mode"] == mode and "pgmigrate_success" in data[mode]


def test_bench_sweep_command(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "tiny", "--sweep", "migration.batch_pages=1,4", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["value"] for row in rows] == [1, 4]
    assert all("nr_tlb_remote_flush_received" in row for row in rows)
    assert main(["bench", "tiny", "--sweep", "migration.batch_pages=1,4"]) == 0
    assert "stall p99" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["migration.batch_pages=0,4", "migration.nope=1,2", "bad"])
def test_bad_sweeps_get_one_line(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "tiny", "--sweep", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("migviz: error:") and err.count("\n") == 1


def test_pmbench_figures_list_each_seed_figure(bench: dict[str, object]) -> None:
    rows = bench["figures"]
    assert isinstance(rows, list)
    assert [row["name"] for row in rows] == list(RANGES)
    for row in rows:
        assert row["published"] == SEED[row["name"]]
        assert row["model"] == bench[row["name"]]
        assert row["in_range"] == (row["low"] <= row["model"] <= row["high"])


@pytest.mark.parametrize(("name", "overrides"), [
    # Scaled down: the figures are ratios per page, so fewer pages give the same shape.
    ("copy-offload", ["memory.folios=[{order=0,count=2048}]"]),
    ("invlpgb", ["memory.folios=[{order=0,count=256}]"]),
])
def test_published_shapes_land_in_range(name: str, overrides: list[str]) -> None:
    from core.bench import RECIPES, run_recipe

    result = run_recipe(load_scenario(name, overrides), RECIPES[name])
    assert result["figures"] and result["all_within_range"], result["figures"]
    for row in result["figures"]:
        assert row["low"] <= row["model"] <= row["high"]


def test_arm64_figure_follows_from_its_runs() -> None:
    """The migration takes more than half less time batched, also on a scaled-down run; the
    figure is that ratio, and where it falls outside (a DSB made cheap) the bench says what it
    rests on."""
    from core.bench import RECIPES, run_recipe

    small = ["memory.folios=[{order=0,count=256}]", "migration.moves=4"]
    result = run_recipe(load_scenario("arm64-128", small), RECIPES["arm64-128"])
    (row,) = result["figures"]
    serial, batched = result["runs"]["serial"], result["runs"]["batched"]
    assert row["model"] == round(100 * (1 - batched.sim_time_ns / serial.sim_time_ns), 2)
    assert row["in_range"] and result["why_outside"] == ""
    assert serial.nr_tlb_remote_flush_received == batched.nr_tlb_remote_flush_received == 0
    cheap = load_scenario("arm64-128", [*small, "costs.dsb_ns=100", "costs.broadcast_remote_ns=0"])
    result = run_recipe(cheap, RECIPES["arm64-128"])
    assert not result["figures"][0]["in_range"] and "dsb_ns" in result["why_outside"]


def test_bench_recipe_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "copy-offload", "--json", "--set",
                 "memory.folios=[{order=0,count=1024}]"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in data["figures"]} >= {"dma16_2m_speedup", "baseline_4k_gbps"}
    assert main(["bench", "copy-offload", "--set", "memory.folios=[{order=0,count=1024}]"]) == 0
    assert "dma16_2m_speedup" in capsys.readouterr().out


def test_runs_in_parallel_processes_give_the_serial_results() -> None:
    """--jobs: the same sweep, recipe and bench, one run after another or two at a time."""
    from core.bench import RECIPES, Pool, run_recipe

    scenario = load_scenario("pmbench-2s", SMALL)
    spec = "migration.batch_pages=1,16,128"
    assert sweep(scenario, spec, pool=Pool(jobs=2)) == sweep(scenario, spec)
    small = load_scenario("copy-offload", ["memory.folios=[{order=0,count=256}]"])
    one = run_recipe(small, RECIPES["copy-offload"])
    two = run_recipe(small, RECIPES["copy-offload"], Pool(jobs=2))
    assert one["runs"] == two["runs"] and one["figures"] == two["figures"]
    finished: list[tuple[int, int]] = []
    both = run_bench(scenario, Pool(jobs=2, done=lambda done, total: finished.append(
        (done, total))), duration_ns=TEST_NS // 4)
    alone = run_bench(scenario, duration_ns=TEST_NS // 4)
    assert both["serial"] == alone["serial"] and both["batched"] == alone["batched"]
    assert finished == [(1, 2), (2, 2)]


def test_jobs_must_be_a_whole_number_of_one_or_more(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "two"):
        code, out, err = call(capsys, "bench", "tiny", "--sweep", "migration.batch_pages=1,2",
                              "--jobs", bad)
        assert code == 2 and out == ""
        assert_one_line(err, "--jobs", bad)
