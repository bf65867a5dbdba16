"""FolioLegend: what each folio glyph means, in the grid's own colours."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from core.folios import FolioState
from tui.widgets.folio_grid import ABSENT, ARRIVING, GLYPHS, LEGEND, RESERVED

GLYPH_STYLE: dict[int, str] = {
    FolioState.MAPPED: "$node-0",
    FolioState.UNMAPPED: "bold $state-unmapped",
    FolioState.FLUSHED: "bold $state-flushed",
    FolioState.COPYING: "bold $state-copying",
    ARRIVING: "$state-copying",
    RESERVED: "$node-1",
    FolioState.REMAPPED: "$state-remapped",
    FolioState.RETRYING: "bold $state-retrying",
    FolioState.FAILED: "bold $state-failed",
    FolioState.SPLIT: "$state-failed",
    FolioState.PROT_NONE: "$node-0",
    ABSENT: "$state-absent",
}
# Shown first when space is short: the states every batch goes through.
PRIORITY = (FolioState.MAPPED, FolioState.UNMAPPED, FolioState.FLUSHED, FolioState.COPYING,
            RESERVED, ARRIVING, FolioState.REMAPPED, FolioState.RETRYING, FolioState.FAILED,
            ABSENT)
# NUMA balancing: its scans' PROT_NONE pages come second, and retries and failures (which a
# one-folio MIGRATE_ASYNC call of an idle folio does not meet here) give way first.
NUMA_PRIORITY = (FolioState.MAPPED, FolioState.PROT_NONE, FolioState.UNMAPPED,
                 FolioState.FLUSHED, FolioState.COPYING, RESERVED, ARRIVING,
                 FolioState.REMAPPED, ABSENT, FolioState.RETRYING, FolioState.FAILED)
SHORT: dict[int, str] = {FolioState.UNMAPPED: "unmapped"}


def legend_content(width: int, numa: bool = False) -> Content:
    """The legend line; ``numa``: NUMA balancing runs, whose scans make pages PROT_NONE (no
    other run has that state, so no other legend spends room on it)."""
    entries: dict[int, str] = {code: label for code, label, _ in LEGEND
                               if numa or code != FolioState.PROT_NONE}
    if sum(len(label) + 4 for label in entries.values()) > width:
        entries.update(SHORT)
    chosen: list[int] = []
    used = 0
    for code in NUMA_PRIORITY if numa else PRIORITY:
        size = len(entries[code]) + 4
        if used + size > width:
            break
        chosen.append(code)
        used += size
    parts: list[tuple[str, str] | str] = []
    for code in sorted(chosen, key=lambda c: [e[0] for e in LEGEND].index(c)):
        parts.append((GLYPHS[code], GLYPH_STYLE[code]))
        parts.append((f" {entries[code]}  ", "$text-muted"))
    return Content.assemble(*parts)


class FolioLegend(Static):
    """One line under the grids."""

    DEFAULT_CSS = """
    FolioLegend { height: 1; padding: 0 1; }
    """

    def __init__(self, *, numa: bool = False, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self._width = -1
        self._numa = numa

    def on_resize(self) -> None:
        width = self.content_region.width
        if width != self._width:
            self._width = width
            self.update(legend_content(width, self._numa))
