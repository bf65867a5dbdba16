"""Test-wide settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# In CI the property tests explore the same examples on every run, so a landing never depends on
# luck; locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True, scope="session")
def _no_user_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read the tester's own files: `migviz tui` loads $XDG_CONFIG_HOME/migviz/keymap.toml
    when it exists, so XDG_CONFIG_HOME points at an empty folder. Session-scoped so that
    Hypothesis does not see a function-scoped fixture around its property tests."""
    empty: Path = tmp_path_factory.mktemp("config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(empty))
        yield
