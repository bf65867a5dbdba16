"""LinesView: a Line-API panel of styled lines that repaints only the lines that changed.

Panels (TLB, IPIs, the event log) build a list of :class:`~textual.content.Content` lines per
frame and hand it to :meth:`LinesView.set_lines`; equal lines are neither re-rendered nor
repainted. Styles in the lines may use theme variables (``"$ipi bold"``).
"""

from __future__ import annotations

from rich.segment import Segment
from textual import events
from textual.cache import LRUCache
from textual.content import Content
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from tui.widgets.frame import Frame

CACHED_ROWS = 1024  # rendered rows kept: bounded, the least recently drawn go first


class LinesView(ScrollView, can_focus=False, inherit_bindings=False):
    """A scrollable list of styled lines with per-line repaint."""

    DEFAULT_CSS = """
    LinesView {
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        self._lines: list[Content] = []
        self._cache: LRUCache[int, Strip] = LRUCache(CACHED_ROWS)
        super().__init__(id=id, classes=classes)

    @property
    def lines(self) -> list[Content]:
        return self._lines

    @property
    def text(self) -> str:
        """The plain text of every line (for tests)."""
        return "\n".join(line.plain for line in self._lines)

    def set_lines(self, lines: list[Content]) -> None:
        """Replace the lines; repaint those that differ."""
        old = self._lines
        self._lines = lines
        if len(lines) != len(old):
            self._cache.clear()
            self.virtual_size = Size(self.size.width, len(lines))
            self.refresh()
            return
        top = self.scroll_offset.y
        height = self.size.height
        for index, (before, after) in enumerate(zip(old, lines, strict=True)):
            if before is after or before == after:
                continue
            self._cache.discard(index)
            if top <= index < top + height:
                self.refresh_line(index)

    @property
    def text_width(self) -> int:
        """Cells a line may take: the content width, less a scrollbar if one is shown (a
        Resize event's size is the widget's outer size, borders included)."""
        return self.scrollable_content_region.width

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        self.virtual_size = Size(self.text_width, len(self._lines))
        self.on_width(self.text_width)

    def on_width(self, width: int) -> None:
        """Hook: the width changed (panels rebuild width-dependent lines here)."""

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self) -> None:
        self._cache.clear()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        row = y + self.scroll_offset.y
        width = self.scrollable_content_region.width
        strip = self._cache.get(row)
        if strip is None:
            if 0 <= row < len(self._lines):
                strip = self.render_content(self._lines[row], width)
            else:
                strip = Strip.blank(width, self.rich_style)
            self._cache[row] = strip
        return strip

    def render_content(self, content: Content, width: int) -> Strip:
        """One line of content as a Strip of exactly ``width`` cells."""
        base = self.visual_style
        parse = self.app.stylesheet.parse_style
        segments = [
            Segment(text, (base + style).rich_style)
            for text, style in content.render(base, end="", parse_style=parse)
        ]
        return Strip(segments).crop_extend(0, width, self.rich_style)


class FrameLine(Static):
    """A short text widget rebuilt from each frame: subclasses say what its content is."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self._frame: Frame | None = None
        self._content: Content | None = None

    def content_for(self, frame: Frame, width: int) -> Content:
        raise NotImplementedError

    def show(self, frame: Frame) -> None:
        self._frame = frame
        self._render_frame()

    def on_resize(self) -> None:
        self._content = None
        self._render_frame()

    def _render_frame(self) -> None:
        if self._frame is None:
            return
        content = self.content_for(self._frame, max(self.size.width, 1))
        if content != self._content:
            self._content = content
            self.update(content, layout=False)
