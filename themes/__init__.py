"""migviz colour themes, kept as data: one TOML file per theme, validated with pydantic.

Each file gives Textual's base colours plus migviz's own variables (per-node and per-folio-state
colours, the IPI flash, TLB bars, phases). :func:`load_builtin_themes` returns them as Textual
``Theme`` objects for ``App.register_theme``, so the command palette's theme picker lists them.
Glyphs always carry meaning as well, so no theme (and ``NO_COLOR``) relies on hue alone.

Textual's own themes (nord, solarized-light, …) know nothing of migviz's variables: the app fills
them in from one of two fallback palettes, ``fallback/dark.toml`` or ``fallback/light.toml``, by
the kind of background the theme has (:func:`fallback_palette`); :func:`offered` says whether a
theme's state colours can be shown to reach WCAG's 3:1 against its grid, so the picker can leave
out those where they cannot.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from textual.color import Color, ColorParseError
from textual.theme import Theme

from themes.contrast import GLYPH, css_variables, pair_ratio

DEFAULT_THEME = "migviz-dark"

# Every migviz-specific variable a theme must define, with what it colours.
VARIABLES: dict[str, str] = {
    "node-0": "node 0: its folios while mapped there, its title and CPUs",
    "node-1": "node 1: its folios while mapped there, its title and CPUs",
    "state-unmapped": "PTE is a migration entry, TLB flush pending (stale entries may hit)",
    "state-flushed": "unmapped and every TLB flushed: safe to copy",
    "state-copying": "folio_copy() in progress (source and destination)",
    "state-remapped": "migrated in this move, mapped on the destination node",
    "state-retrying": "-EAGAIN or given up by the async batch: tried again",
    "state-failed": "could not be migrated in this move",
    "state-absent": "an empty slot: the folio lives on the other node",
    "ipi": "a CPU handling a TLB-shootdown IPI, and IPI counts",
    "tlb-valid": "valid TLB entries of the workload",
    "tlb-stale": "stale TLB entries (the PTE is already a migration entry)",
    "phase-unmap": "the unmap phase (migrate_folio_unmap)",
    "phase-flush": "the flush phase (try_to_unmap_flush)",
    "phase-move": "the move phase (migrate_folio_move)",
}


class ThemeError(Exception):
    """A theme file is unreadable or invalid; the message names the file and the field."""


def _check_colour(value: str) -> str:
    try:
        Color.parse(value)
    except ColorParseError as err:
        raise ValueError(f"not a colour: {value!r} ({err})") from None
    return value


def _check_variables(value: dict[str, str]) -> dict[str, str]:
    missing = [name for name in VARIABLES if name not in value]
    if missing:
        raise ValueError(f"missing variables: {', '.join(missing)}")
    for name, colour in value.items():
        try:
            _check_colour(colour)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    return value


class ThemeFile(BaseModel):
    """The contents of one theme file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    dark: bool = True
    primary: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)

    @field_validator(
        "primary", "secondary", "accent", "warning", "error", "success", "foreground",
        "background", "surface", "panel", "boost",
    )
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        return None if value is None else _check_colour(value)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_variables(value)

    def to_textual_theme(self) -> Theme:
        """The Textual theme for ``App.register_theme``."""
        fields: dict[str, Any] = self.model_dump(exclude={"description"})
        return Theme(**fields)


def parse_theme(text: str, label: str) -> ThemeFile:
    """Validate one theme's TOML text; ``label`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ThemeError(f"{label}: TOML syntax error: {err}") from None
    try:
        return ThemeFile.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'theme'}: "
            f"{item['msg'].removeprefix('Value error, ')}"
            for item in err.errors()
        )
        raise ThemeError(f"{label}: {problems}") from None


def load_theme_file(path: Path) -> Theme:
    """Load a user's theme file (raises ThemeError)."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ThemeError(f"{path}: cannot read: {err}") from None
    return parse_theme(text, str(path)).to_textual_theme()


def builtin_theme_files() -> list[ThemeFile]:
    """The themes shipped in this package, dark default first."""
    files = []
    for entry in resources.files(__package__).iterdir():
        if entry.name.endswith(".toml"):
            files.append(parse_theme(entry.read_text("utf-8"), f"themes/{entry.name}"))
    files.sort(key=lambda t: (t.name != DEFAULT_THEME, t.name))
    return files


def load_builtin_themes() -> list[Theme]:
    """The shipped themes as Textual themes."""
    return [theme.to_textual_theme() for theme in builtin_theme_files()]


class Palette(BaseModel):
    """A fallback palette: migviz's variables for themes that do not define them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    variables: dict[str, str]

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_variables(value)


_PALETTES: dict[bool, dict[str, str]] = {}


def fallback_palette(dark: bool) -> dict[str, str]:
    """migviz's variables for a theme without them, made for a dark or a light background."""
    if dark not in _PALETTES:
        name = "dark.toml" if dark else "light.toml"
        text = resources.files(__package__).joinpath("fallback", name).read_text("utf-8")
        label = f"themes/fallback/{name}"
        try:
            palette = Palette.model_validate(tomllib.loads(text))
        except (tomllib.TOMLDecodeError, ValidationError) as err:
            raise ThemeError(f"{label}: {err}") from None
        _PALETTES[dark] = dict(palette.variables)
    return dict(_PALETTES[dark])


# The state colours: every migviz variable but the empty-slot dot, which is decoration.
STATE_COLOURS = tuple(name for name in VARIABLES if name != "state-absent")

_OFFERED: dict[int, tuple[Theme, bool]] = {}  # id → (the theme, kept alive; the verdict)


def offered(theme: Theme) -> bool:
    """Whether the theme picker offers ``theme``: it defines migviz's variables itself (the
    user chose those colours), or with its fallback palette every state colour reaches 3:1
    against its grid (``$surface``). Themes painting on the terminal's own background (the
    ANSI ones) cannot be measured, so they are not offered."""
    cached = _OFFERED.get(id(theme))
    if cached is not None and cached[0] is theme:
        return cached[1]
    if all(name in theme.variables for name in VARIABLES):
        verdict = True
    else:
        variables = css_variables(theme, fallback_palette(theme.dark))
        try:
            verdict = all(pair_ratio(f"${name}", ("$surface",), variables) >= GLYPH
                          for name in STATE_COLOURS)
        except ValueError:  # no opaque $surface: the terminal's background
            verdict = False
    _OFFERED[id(theme)] = (theme, verdict)
    return verdict
