"""`core` never imports textual, rich or tui (README "Layout"; data flows one way: tui -> core)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import core

FORBIDDEN = ("textual", "rich", "tui")
ROOT = Path(core.__path__[0]).parent

# Run in a fresh interpreter (this test process may have textual loaded by the app tests):
# import core and every module under it, then list the forbidden top-level packages loaded.
PROBE = """
import importlib, json, pkgutil, sys
preload, forbidden = sys.argv[1], set(sys.argv[2:])
if preload:
    importlib.import_module(preload)
import core
names = ["core"] + [m.name for m in pkgutil.walk_packages(core.__path__, "core.")]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({"imported": names, "forbidden": loaded}))
"""


def probe(preload: str = "") -> dict[str, list[str]]:
    result = subprocess.run([sys.executable, "-c", PROBE, preload, *FORBIDDEN],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    report: dict[str, list[str]] = json.loads(result.stdout)
    return report


def test_every_core_module_is_probed() -> None:
    imported = set(probe()["imported"])
    for name in ("engine", "scenario", "kernel", "workload", "tlb", "folios", "timeline",
                 "events", "stats", "costs"):
        assert f"core.{name}" in imported
    on_disk = {f"core.{p.stem}" for p in Path(core.__path__[0]).glob("*.py")
               if p.stem != "__init__"}
    assert imported >= on_disk
    assert imported == {"core"} | {m.name for m in pkgutil.walk_packages(core.__path__, "core.")}


def test_core_does_not_import_textual_rich_or_tui() -> None:
    assert probe()["forbidden"] == []


def test_the_probe_notices_a_ui_import() -> None:
    # The same probe in an interpreter that did import textual must report it, so the test
    # above is able to fail.
    assert "textual" in probe("textual")["forbidden"]
