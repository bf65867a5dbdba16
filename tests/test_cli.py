"""The `migviz` command line: every command, and every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from core.scenario import builtin_names, load_scenario, scenario_from_dict
from tui.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", "tiny")
    assert code == 0 and err == ""
    assert "pages migrated" in out and "IPIs delivered" in out
    assert "batched (Linux 6.3)" in out


def test_run_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "tiny", "--json", "--mode", "serial")
    assert code == 0
    data = json.loads(out)
    for key in ("scenario", "mode", "sim_time_ns", "pgmigrate_success", "pgmigrate_fail",
                "thp_migration_success", "nr_tlb_remote_flush", "nr_tlb_remote_flush_received",
                "nr_tlb_local_flush_all", "nr_tlb_local_flush_one", "batches", "retries",
                "pages_per_sec", "stall_p50_ns", "stall_p99_ns", "events"):
        assert key in data, key
    assert data["mode"] == "serial" and data["scenario"] == "tiny"
    scenario = load_scenario("tiny")
    # Serial: one round per folio per move, to every workload thread's CPU.
    rounds = scenario.memory.total_folios * scenario.migration.moves
    assert data["nr_tlb_remote_flush"] == rounds
    assert data["nr_tlb_remote_flush_received"] == rounds * scenario.workload.threads


def test_set_overrides_reach_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "tiny", "--json", "--set", "migration.moves=1",
                           "--set", "workload.threads=1")
    assert code == 0
    data = json.loads(out)
    assert data["pgmigrate_success"] == load_scenario("tiny").memory.total_pages
    assert data["nr_tlb_remote_flush_received"] == data["nr_tlb_remote_flush"]


def test_compare_default_shows_batched_winning(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "compare", "default", "--json")
    assert code == 0
    data = json.loads(out)
    serial, batched = data["serial"], data["batched"]
    assert serial["mode"] == "serial" and batched["mode"] == "batched"
    fewer = 1 - batched["nr_tlb_remote_flush_received"] / serial["nr_tlb_remote_flush_received"]
    assert fewer >= 0.9
    assert batched["pages_per_sec"] > serial["pages_per_sec"]
    code, text, _ = run_cli(capsys, "compare", "default")
    assert code == 0 and "batched migrates" in text and "%" in text


def test_contended_run_shows_retries_and_fallback_flushes(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "contended", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["retries"] > 0
    assert data["sync_fallback_folios"] > 0
    assert data["fallback_flush_rounds"] > 0
    # One deferred round per batch at most, the rest come from the one-by-one fallback.
    assert data["nr_tlb_remote_flush"] >= data["fallback_flush_rounds"] + data["batch_flush_rounds"]


def test_trace_to_stdout_and_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "trace", "tiny")
    assert code == 0
    assert out.startswith("# tracer: nop")
    assert "mm_migrate_pages_start: mode=MIGRATE_SYNC reason=syscall_or_cpuset" in out
    target = tmp_path / "tiny.trace"
    code, _, _ = run_cli(capsys, "trace", "tiny", "-o", str(target))
    assert code == 0
    assert target.read_text() == out


def test_trace_never_overwrites_without_force(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    target = tmp_path / "mine.txt"
    target.write_text("precious notes\n")
    code, _, err = run_cli(capsys, "trace", "tiny", "-o", str(target))
    assert code == 2
    assert "already exists" in err and str(target) in err
    assert target.read_text() == "precious notes\n"
    code, _, _ = run_cli(capsys, "trace", "tiny", "-o", str(target), "--force")
    assert code == 0 and target.read_text().startswith("# tracer: nop")


def test_scenarios_list_and_show_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "scenarios")
    assert code == 0
    for name in builtin_names():
        assert name in out
    for name in builtin_names():
        code, text, _ = run_cli(capsys, "scenarios", "show", name)
        assert code == 0
        assert scenario_from_dict(tomllib.loads(text)) == load_scenario(name)
    code, text, _ = run_cli(capsys, "scenarios", "show", "default", "--set", "seed=9")
    assert code == 0
    assert scenario_from_dict(tomllib.loads(text)) == load_scenario("default", ["seed=9"])


def test_scenarios_costs_lists_sources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "scenarios", "costs")
    assert code == 0
    assert "invlpg_ns" in out and "tlb.c" in out


BAD_FILES = {
    "syntax": ("name = 'x'\n[topology\ncpus = 4\n", "TOML syntax error"),
    "unknown-key": ("name = 'x'\n[topology]\ncpu = 4\n", "topology.cpu: unknown key"),
    "wrong-type": ("name = 'x'\n[workload]\nthreads = 'six'\n", "workload.threads"),
    "bad-initiator": ("name = 'x'\n[migration]\ninitiator_cpu = 99\n", "migration.initiator_cpu"),
    "too-many-threads": ("name = 'x'\n[topology]\ncpus = 4\n[workload]\nthreads = 6\n"
                         "[migration]\ninitiator_cpu = 3\n", "workload.threads"),
    "bad-mode": ("name = 'x'\n[migration]\nmode = 'fast'\n", "migration.mode"),
    "bad-order": ("name = 'x'\n[memory]\nfolios = [{order = 12, count = 1}]\n",
                  "memory.folios.0.order"),
    "unknown-section": ("name = 'x'\n[topolgy]\nnodes = 2\n", "topolgy: unknown key"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["run", "compare", "trace", "tui"])
def test_bad_scenario_files_get_one_clear_line(
        kind: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BAD_FILES[kind]
    path = tmp_path / f"{kind}.toml"
    path.write_text(text)
    code, out, err = run_cli(capsys, command, str(path))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("migviz: error: ")
    assert str(path) in err and expected in err
    assert path.read_text() == text  # nothing the user wrote is touched


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "nosuch"], "unknown scenario 'nosuch'"),
    (["run", "defualt"], "did you mean 'default'"),
    (["run", "missing/file.toml"], "missing/file.toml: no such file"),
    (["run", "tiny", "--set", "migration.initiator_cpu=99"], "[from --set]"),
    (["run", "tiny", "--set", "workload.threads=9"], "workload.threads"),
    (["run", "tiny", "--set", "oops"], "expected section.key=value"),
    (["scenarios", "show", "nosuch"], "unknown scenario"),
])
def test_bad_names_and_overrides(argv: list[str], expected: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert expected in err and err.count("\n") == 1


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    # More cases in test_cli_errors.py.
    code, out, err = run_cli(capsys, "run", "tiny", "--mode", "fast")
    assert code == 2 and out == "" and err.count("\n") == 1
    code, out, err = run_cli(capsys, "tui", "--speed", "-1")
    assert code == 2 and out == "" and err.count("\n") == 1


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("name = 'x'\n[migration]\ninitiator_cpu = 99\n")
    result = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("migviz: error:")


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("tui", "run", "compare", "trace", "scenarios"):
        assert command in out


def test_trace_perfetto_format(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    code, _, _ = run_cli(capsys, "trace", "tiny", "--format", "perfetto", "-o", str(target))
    assert code == 0
    data = json.loads(target.read_text())
    assert any(row.get("name") == "thread_name" for row in data["traceEvents"])


def test_unknown_theme_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "tui", "tiny", "--theme", "migviz-drak")
    assert code == 2 and out == ""
    assert "unknown theme" in err and "did you mean 'migviz-dark'" in err
    assert err.count("\n") == 1


def test_keymap_file_errors_are_bad_input(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    cases = {
        "typo.toml": ('[keymap]\n"migviz.step-evnt" = "j"\n', "did you mean 'migviz.step-event'"),
        "type.toml": ('[keymap]\n"migviz.quit" = 3\n', "must be a string of keys"),
        "extra.toml": ('[keys]\n"migviz.quit" = "x"\n', "keys: unknown key"),
        "syntax.toml": ("[keymap\n", "TOML syntax error"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        code, out, err = run_cli(capsys, "tui", "tiny", "--keymap", str(path))
        assert code == 2 and out == "", name
        assert expected in err and str(path) in err and err.count("\n") == 1, err
    code, _, err = run_cli(capsys, "tui", "tiny", "--keymap", str(tmp_path / "none.toml"))
    assert code == 2 and "no such file" in err


def test_keymap_ids_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "tui", "--keymap-ids")
    assert code == 0
    assert "migviz.step-event" in out and "migviz.breakpoints" in out


def test_a_theme_file_of_ones_own(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from themes import builtin_theme_files

    source = Path(__file__).resolve().parents[1] / "themes" / "migviz-light.toml"
    good = tmp_path / "mine.toml"
    good.write_text(source.read_text().replace('"migviz-light"', '"mine"', 1))
    assert builtin_theme_files()  # the format the user copies
    seen: dict[str, object] = {}
    monkeypatch.setattr("tui.app.run_app", lambda *a, **k: seen.update(k) or 0)
    code, _, err = run_cli(capsys, "tui", "tiny", "--theme", str(good))
    assert code == 0, err
    assert seen["theme"] == "mine" and getattr(seen["user_theme"], "name", None) == "mine"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nprimary = "not a colour"\n')
    code, out, err = run_cli(capsys, "tui", "tiny", "--theme", str(bad))
    assert code == 2 and out == "" and str(bad) in err and err.count("\n") == 1
