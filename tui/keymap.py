"""User keymaps: a TOML file whose ``[keymap]`` table maps binding ids to keys.

    [keymap]
    "migviz.step-event" = "n,j"     # several keys, comma-separated
    "migviz.quit" = "ctrl+q"

The ids are those `migviz tui --keymap-ids` prints. The file is read before the screen starts, so
a typo is reported like any other bad input. Textual's ``App.set_keymap`` applies it, and the
footer and the help show the keys as remapped.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path

from textual.binding import Binding, BindingType


class KeymapError(Exception):
    """A bad keymap file; the message names the file, the id and the reason."""


def default_path() -> Path:
    """Where a keymap is read from when none is given: $XDG_CONFIG_HOME/migviz/keymap.toml."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "migviz" / "keymap.toml"


def binding_ids() -> dict[str, str]:
    """Every remappable binding id with its description."""
    from tui.app import MigvizApp
    from tui.screens.breakpoints import BreakpointScreen
    from tui.screens.help import HelpScreen
    from tui.screens.inspect import InspectScreen
    from tui.widgets.folio_grid import FolioGrid

    ids: dict[str, str] = {}
    for owner in (MigvizApp, FolioGrid, HelpScreen, InspectScreen, BreakpointScreen):
        bindings: list[BindingType] = list(owner.BINDINGS)
        for binding in bindings:
            if isinstance(binding, Binding) and binding.id:
                ids.setdefault(binding.id, binding.tooltip or binding.description or
                               binding.action)
    return ids


def load_keymap(path: Path) -> dict[str, str]:
    """Read and check a keymap file."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise KeymapError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise KeymapError(f"{path}: cannot read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise KeymapError(f"{path}: TOML syntax error: {err}") from None
    extra = sorted(set(data) - {"keymap"})
    if extra:
        raise KeymapError(f"{path}: {extra[0]}: unknown key (the file has one [keymap] table)")
    table = data.get("keymap", {})
    if not isinstance(table, dict):
        raise KeymapError(f"{path}: keymap: must be a table ([keymap])")
    known = binding_ids()
    keymap: dict[str, str] = {}
    for binding_id, keys in table.items():
        if binding_id not in known:
            close = difflib.get_close_matches(binding_id, list(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise KeymapError(f"{path}: keymap.{binding_id}: unknown binding id (see "
                              f"`migviz tui --keymap-ids`){hint}")
        if not isinstance(keys, str) or not keys.strip():
            raise KeymapError(f"{path}: keymap.{binding_id}: must be a string of keys, "
                              "e.g. \"n,j\"")
        keymap[binding_id] = keys.strip()
    return keymap
