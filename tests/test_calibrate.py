"""`migviz calibrate`: a real measurement of this host (--quick), the profile it writes, and
--costs applying a profile. Counts are checked, never timings: no figure has to be fast."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from core.calibrate import (
    Calibration,
    CopyFigures,
    Host,
    RoundPoint,
    _slowest_share_median,
    _tlb_row,
    check_profile,
    render_profile,
)
from core.costs import Costs
from tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
CPUS = len(os.sched_getaffinity(0))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One real `migviz calibrate --quick --json -o FILE`, in its own process (it pins its
    threads to CPUs), shared by the tests below."""
    if CPUS < 2:
        pytest.skip("one CPU: a shootdown round needs a second CPU to interrupt")
    if _tlb_row() is None:
        pytest.skip("/proc/interrupts has no TLB row (not x86): shootdowns cannot be counted")
    path = tmp_path_factory.mktemp("calibrate") / "host.toml"
    done = subprocess.run([sys.executable, "-m", "tui.cli", "calibrate", "--quick", "--json",
                           "-o", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no progress line, and a round was measured
    data: dict[str, Any] = json.loads(done.stdout)
    return data, path


def test_the_json_has_the_figures(calibrated: tuple[dict[str, Any], Path]) -> None:
    data, path = calibrated
    assert data["host"]["kernel"] == platform.release()
    assert data["host"]["cpus"] == CPUS
    rounds = data["round"]
    assert rounds["note"] is None
    targets = min(CPUS - 1, 8)
    assert [p["k"] for p in rounds["points"]] == list(range(targets + 1))
    for point in rounds["points"]:
        assert len(point["target_cpus"]) == point["k"]
        assert rounds["initiator_cpu"] not in point["target_cpus"]
        assert point["ns_per_change"] > 0 and point["ns_per_null"] > 0
    assert set(rounds["rounds_ns"]) == {str(k) for k in range(1, targets + 1)}
    assert rounds["intercept_ns"] is not None
    assert (rounds["slope_ns"] is None) == (targets == 1)  # one target: no slope to fit
    copy = data["copy"]
    assert copy["page_ns"] > 0 and copy["huge_ns"] > 0 and copy["page_gbps"] > 0
    assert set(data["profile"]) == {"ipi_send_ns", "ipi_target_ns", "ipi_latency_ns",
                                    "ipi_remote_latency_ns", "ipi_handler_ns", "invlpg_ns",
                                    "copy_page_ns"}
    assert data["defaults"] == {name: getattr(Costs(), name) for name in data["profile"]}
    assert data["profile_file"] == str(path)


def test_the_shootdowns_reached_the_targets(calibrated: tuple[dict[str, Any], Path]) -> None:
    # Real counts from /proc/interrupts: each change of the page's protection sends one IPI to
    # each target. A target busy with another task at that moment is skipped (so is a
    # preempted vCPU on a VM), and other processes' shootdowns land there too: hence the
    # generous bounds, but the row must have grown by the right order of magnitude.
    points = calibrated[0]["round"]["points"]
    assert points[0]["deliveries_expected"] == points[0]["deliveries_observed"] == 0
    for point in points[1:]:
        expected, observed = point["deliveries_expected"], point["deliveries_observed"]
        assert expected == point["changes"] * point["k"] > 0
        assert observed > 0, point
        assert expected / 20 <= observed <= 2 * expected, point
        assert point["confirmed"]


def test_the_profile_parses_and_holds_the_json_figures(
        calibrated: tuple[dict[str, Any], Path]) -> None:
    data, path = calibrated
    text = path.read_text(encoding="utf-8")
    costs = tomllib.loads(text)["costs"]
    assert costs == data["profile"]
    assert set(costs) <= set(Costs.model_fields)
    assert platform.release() in text and "migviz calibrate --quick -o" in text
    for line in text.splitlines():  # every value says how it was obtained
        if "=" in line and not line.startswith("#") and "[" not in line:
            assert any(f"# {how}" in line for how in ("measured", "inferred", "kept")), line


def test_the_profile_reproduces_the_measured_round(
        calibrated: tuple[dict[str, Any], Path]) -> None:
    # migviz's round to k targets of the initiator's node (core/tlb.py round_plan, INVLPG).
    data, _ = calibrated
    costs, fit = Costs(**data["profile"]), data["round"]
    slope = fit["slope_ns"] if fit["slope_ns"] is not None else Costs().ipi_target_ns
    for k in range(1, len(fit["points"])):
        model = (costs.ipi_send_ns + k * costs.ipi_target_ns + 2 * costs.ipi_latency_ns
                 + costs.ipi_handler_ns + costs.invlpg_ns)
        assert model == pytest.approx(max(fit["intercept_ns"], costs.invlpg_ns) + slope * k,
                                      abs=5 + k)


def test_costs_applies_the_profile(calibrated: tuple[dict[str, Any], Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    data, path = calibrated
    code, out, err = run_cli(capsys, "scenarios", "show", "tiny", "--costs", str(path))
    assert code == 0, err
    shown = tomllib.loads(out)["costs"]
    assert {name: shown[name] for name in data["profile"]} == data["profile"]

    code, with_profile, err = run_cli(capsys, "run", "tiny", "--costs", str(path), "--json")
    assert code == 0, err
    sets = [f"--set=costs.{name}={value}" for name, value in data["profile"].items()]
    code, with_sets, _ = run_cli(capsys, "run", "tiny", "--json", *sets)
    assert json.loads(with_profile) == json.loads(with_sets)
    code, plain, _ = run_cli(capsys, "run", "tiny", "--json")
    if data["profile"] != data["defaults"]:
        assert json.loads(with_profile)["sim_time_ns"] != json.loads(plain)["sim_time_ns"]


def test_an_existing_file_is_not_overwritten(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("my notes\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "calibrate", "--quick", "-o", str(mine))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("migviz: error: ") and "--force" in err
    assert mine.read_text(encoding="utf-8") == "my notes\n"
    assert list(tmp_path.iterdir()) == [mine]  # no temporary file left beside it


@pytest.mark.parametrize(("table", "words"), [
    ("ipi_latncy_ns = 1500", ["ipi_latncy_ns", "unknown cost", "ipi_latency_ns"]),
    ('ipi_latency_ns = "fast"', ["ipi_latency_ns", "must be a number"]),
    ("ipi_latency_ns = true", ["ipi_latency_ns", "must be a number"]),
])
def test_a_bad_profile_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   table: str, words: list[str]) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text(f"[costs]\n{table}\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "run", "tiny", "--costs", str(profile))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("migviz: error: ")
    for word in words:
        assert word in err


def test_one_cpu_measures_the_copy_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    path = tmp_path / "host.toml"
    code, out, err = run_cli(capsys, "calibrate", "--quick", "--json", "-o", str(path))
    assert code == 0
    assert err.count("\n") == 1 and "one CPU only" in err
    data = json.loads(out)
    assert data["round"]["points"] == [] and data["round"]["intercept_ns"] is None
    assert list(data["profile"]) == ["copy_page_ns"]
    assert tomllib.loads(path.read_text(encoding="utf-8"))["costs"] == data["profile"]


# ------------------------------------------------------------------------------------------
# The arithmetic, on made-up measurements


def _calibration(rounds: dict[int, float], delivered: float = 1.0) -> Calibration:
    host = Host("h", "6.18", "cpu", len(rounds) + 1, 1, False, "today")
    points = [RoundPoint(0, (), 4000.0, 3000.0, 1000, 0, 0)]
    points += [RoundPoint(k, tuple(range(1, k + 1)), 4000.0 + ns, 3000.0, 1000, 1000 * k,
                          round(1000 * k * delivered)) for k, ns in rounds.items()]
    return Calibration(host, 0, tuple(points), CopyFigures(500.0, 450.0, 300_000.0, 280_000.0, 32),
                       None)


def test_the_fit_gives_the_slope_and_the_intercept() -> None:
    calibration = _calibration({1: 3000.0, 2: 3500.0, 3: 4000.0})
    assert calibration.rounds() == [(1, 3000.0), (2, 3500.0), (3, 4000.0)]
    slope, intercept = calibration.fit() or (None, 0.0)
    assert slope == pytest.approx(500.0) and intercept == pytest.approx(2500.0)
    profile = {name: value for name, (value, _) in calibration.profile().items()}
    assert profile["ipi_target_ns"] == 500 and profile["copy_page_ns"] == 500
    # 2500 - invlpg 100 = 2400 = 1800 x 4/3: each part of the fixed round scaled alike
    assert profile["ipi_send_ns"] == 533 and profile["ipi_latency_ns"] == 600
    assert profile["ipi_handler_ns"] == 667 and profile["ipi_remote_latency_ns"] == 1200
    assert check_profile(render_profile(calibration, "migviz calibrate")) == profile


def test_unconfirmed_points_are_left_out() -> None:
    lazy = _calibration({1: 3000.0}, delivered=0.01)
    assert lazy.rounds() == [] and lazy.fit() is None
    assert "not confirmed" in render_profile(lazy, "migviz calibrate")


def test_the_slowest_calls_stand_for_the_rounds_that_sent_ipis() -> None:
    times = [1000] * 60 + [5000] * 40
    assert _slowest_share_median(times, 0.4) == 5000
    assert _slowest_share_median(times, 1.0) == 1000  # every IPI arrived: the plain median


def test_a_profile_with_an_unknown_cost_is_refused() -> None:
    with pytest.raises(ValueError, match="ipi_fast_ns"):
        check_profile("[costs]\nipi_fast_ns = 1\n")
