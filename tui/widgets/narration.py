"""Narration: the tour's current step, its words and the keys that move through the tour."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class Narration(Static):
    """The step's title and narration, shown only while a tour runs."""

    DEFAULT_CSS = """
    Narration {
        height: auto;
        max-height: 6;
        padding: 0 1;
        background: $boost;
        border-top: heavy $warning;
        display: none;
    }
    """

    def tell(self, index: int, count: int, title: str, narration: str, keys: str,
             status: str) -> None:
        """Show step ``index`` (0-based) of ``count``."""
        self.update(Content.assemble(
            (f"tour {index + 1}/{count} · ", "bold $warning"), (title, "bold"),
            (f"   {status}" if status else "", "$text-muted italic"),
            (f"   {keys}", "$text-muted"), "\n", narration,
        ))
