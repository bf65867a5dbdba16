"""The README's two commands stay the ones CI runs and the ones that start the app."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shell_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S)]


def test_the_two_commands() -> None:
    single_line = [b for b in shell_blocks() if "\n" not in b]
    run, test = single_line[0], single_line[1]
    assert run.startswith("python3 -m venv .venv") and run.endswith(".venv/bin/migviz")
    assert test.startswith("python3 -m venv .venv") and test.endswith("-m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci, "CI must run the README's test command"


def test_every_builtin_scenario_is_named_in_the_readme() -> None:
    from core.scenario import builtin_names

    text = (ROOT / "README.md").read_text()
    for name in builtin_names():
        assert f"`{name}`" in text, name
