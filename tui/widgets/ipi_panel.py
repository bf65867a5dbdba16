"""IpiPanel: the TLB-shootdown round in flight, deliveries over time, and the totals.

This is where serial and batched differ most: serial sends one round per folio (each target
invalidates one page), batched one round per batch (each target flushes everything).
"""

from __future__ import annotations

from textual.content import Content

from core.scenario import Mode
from tui.widgets.frame import Frame, format_ns
from tui.widgets.lines import LinesView

SPARKS = " ▁▂▃▄▅▆▇█"


def sparkline(values: tuple[int, ...], top: int | None = None) -> str:
    """Block-character sparkline; ``top`` fixes the scale (to compare two panels)."""
    if not values:
        return ""
    top = max(top if top is not None else max(values), 1)
    out = []
    for value in values:
        if value <= 0:
            out.append(" ")
        else:
            out.append(SPARKS[max(1, min(8, round(value * 8 / top)))])
    return "".join(out)


class IpiPanel(LinesView):
    """Initiator → targets with acknowledgements, a sparkline of deliveries, totals."""

    DEFAULT_CSS = """
    IpiPanel { background: $surface; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._frame: Frame | None = None
        self._scale: int | None = None
        self.border_title = "TLB shootdown IPIs"

    def show(self, frame: Frame, scale: int | None = None) -> None:
        self._frame = frame
        self._scale = scale
        self.set_lines(self._fitted(frame))

    def on_width(self, width: int) -> None:
        if self._frame is not None:
            self.set_lines(self._fitted(self._frame))

    def _fitted(self, frame: Frame) -> list[Content]:
        lines = self.build(frame, self.size.width, self._scale)
        height = self.size.height
        if 0 < height < len(lines):
            # Drop the captions first: the sparkline's legend, then the per-page line.
            for drop in (3, 4, 1):
                if len(lines) > height and drop < len(lines):
                    del lines[drop]
        return lines[: height] if height > 0 else lines

    def build(self, frame: Frame, width: int, scale: int | None = None) -> list[Content]:
        view = frame.view
        counters = view.counters
        label_width = 8 if width >= 40 else 6
        lines: list[Content] = []

        def label(text: str) -> tuple[str, str]:
            return (text.ljust(label_width), "$text-muted")

        round_ = view.ipi_round
        if round_ is not None and round_.targets:
            parts: list[tuple[str, str] | str] = [label("round"),
                                                  (f"cpu{round_.initiator} ⇒ ", "bold $accent")]
            tight = label_width + 7 + 3 * len(round_.targets) > width
            for index, cpu in enumerate(round_.targets):
                mark = "✓" if index < round_.acked else "·"
                text = mark if tight else f"{mark}{cpu} "
                parts.append((text, "bold $ipi" if index < round_.acked else "$text-muted"))
            lines.append(Content.assemble(*parts))
            scope = "full flush" if round_.pages == -1 else f"INVLPG {round_.pages} page" + (
                "s" if round_.pages > 1 else "")
            lines.append(Content.assemble(
                label("acks"), (f"{round_.acked} of {len(round_.targets)}", "bold $ipi"),
                f" · {scope}"))
        else:
            lines.append(Content.assemble(label("round"), ("none in flight", "$text-muted")))
            last = "full flush" if view.mode is Mode.BATCHED else "INVLPG"
            per = ("1 round per batch, " if view.mode is Mode.BATCHED
                   else "1 round per folio, ") + last
            if frame.scenario.migration.skip_flush:
                per, style = "no rounds at all: this kernel never flushes (teaching)", "$error"
            else:
                style = "$text-muted"
            lines.append(Content.assemble(label("per"), (per, style)))
        spark_width = max(4, width - label_width - 1)
        values = frame.sparkline[-spark_width:]
        lines.append(Content.assemble(
            label("IPIs"), (sparkline(values, scale).rjust(len(values)), "$ipi on $panel")))
        lines.append(Content.assemble(
            label(""), ((f"deliveries per {format_ns(frame.spark_bucket_ns)}, now at right"
                         if width >= 46 else f"per {format_ns(frame.spark_bucket_ns)}, now →"),
                        "$text-muted")))
        pages = max(frame.pages_done, 1)
        per_page = counters.nr_tlb_remote_flush_received / pages if frame.pages_done else 0.0
        lines.append(Content.assemble(
            label("total"), (f"{counters.nr_tlb_remote_flush}", "bold"),
            " round · " if counters.nr_tlb_remote_flush == 1 else " rounds · ",
            (f"{counters.nr_tlb_remote_flush_received}", "bold $ipi"), " IPIs"))
        lines.append(Content.assemble(
            label(""), (f"{per_page:.3g}", "bold"), " IPIs per migrated page"))
        return lines
