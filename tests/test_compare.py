"""`migviz compare`: serial against batched, or any two configurations."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest
from helpers import headless_run

from core.scenario import load_scenario
from core.summary import RunSummary
from tui.cli import main
from tui.report import METRICS


def json_of(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_two_scenarios_each_as_run_gives_it(capsys: pytest.CaptureFixture[str]) -> None:
    both = json_of(capsys, "compare", "tiny", "thp", "--json")
    assert both["labels"] == {"a": "tiny", "b": "thp"}
    assert both["a"] == json_of(capsys, "run", "tiny", "--json")
    assert both["b"] == json_of(capsys, "run", "thp", "--json")


def test_one_scenario_two_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    both = json_of(capsys, "compare", "tiny", "--a", "topology.arch=x86-ipi",
                   "--b", "topology.arch=arm64-tlbi", "--json")
    a, b = both["a"], both["b"]
    assert isinstance(a, dict) and isinstance(b, dict)
    assert a == json_of(capsys, "run", "tiny", "--json")
    assert b["arch"] == "arm64-tlbi" and b["nr_tlb_remote_flush_received"] == 0
    assert b["sync_waits"] > 0
    assert main(["compare", "tiny", "--a", "topology.arch=x86-ipi",
                 "--b", "topology.arch=arm64-tlbi"]) == 0
    text = capsys.readouterr().out
    assert "A = tiny topology.arch=x86-ipi" in text and "broadcast waits" in text


def test_the_default_form_stays_serial_against_batched(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    both = json_of(capsys, "compare", "tiny", "--json")
    assert set(both) == {"serial", "batched"}


def test_same_setup_twice_is_labelled_a_and_b(capsys: pytest.CaptureFixture[str]) -> None:
    both = json_of(capsys, "compare", "tiny", "tiny", "--json")
    assert both["labels"] == {"a": "A: tiny", "b": "B: tiny"}
    assert both["a"] == both["b"]


def test_an_error_in_one_side_names_its_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "tiny", "--b", "topology.arch=riscv"]) == 2
    err = capsys.readouterr().err
    assert "topology.arch" in err and "[from --b]" in err and err.count("\n") == 1
    assert main(["compare", "tiny", "--a", "nonsense"]) == 2
    assert capsys.readouterr().err.startswith("migviz: error: --a nonsense:")


def test_run_json_is_the_typed_summary_and_the_tables_name_its_fields(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`run --json` prints the RunSummary record, field for field, in its order; every figure a
    comparison table shows is one of its fields."""
    data = json_of(capsys, "run", "tiny", "--json")
    assert list(data) == list(RunSummary.keys())
    engine, _ = headless_run(load_scenario("tiny"))
    assert data == engine.summary().as_json()
    assert set(METRICS) <= set(RunSummary.keys())
    with pytest.raises(FrozenInstanceError):
        engine.summary().pages_per_sec = 0.0  # type: ignore[misc]


def test_compare_in_two_processes_prints_what_one_does(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["compare", "default"], ["compare", "tiny", "thp"],
                 ["compare", "default", "--b", "topology.arch=arm64-tlbi"]):
        assert json_of(capsys, *argv, "--json", "--jobs", "2") == \
            json_of(capsys, *argv, "--json", "--jobs", "1")
