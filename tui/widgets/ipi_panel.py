"""IpiPanel: the TLB-shootdown round in flight, deliveries over time, and the totals.

This is where serial and batched differ most: serial sends one round per folio (each target
invalidates one page), batched one round per batch (each target flushes everything).
"""

from __future__ import annotations

from textual.content import Content

from core.events import ROUND_KIND_TEXT, RoundKind
from core.folios import PMD_PAGES
from core.scenario import Mode
from tui.units import format_ns
from tui.widgets.frame import Frame
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
        view = frame.view
        title = view.mechanism.title
        if self.border_title != title:
            self.border_title = title
        self.set_lines(self._fitted(frame))

    def on_width(self, width: int) -> None:
        if self._frame is not None:
            self.set_lines(self._fitted(self._frame))

    def _fitted(self, frame: Frame) -> list[Content]:
        lines = self.build(frame, self.text_width, self._scale)
        height = self.size.height
        if 0 < height < len(lines):
            # Drop the captions first: the sparkline's legend, then the per-page line.
            keep = [(text, rank) for text, rank in lines]
            for drop in (3, 2, 1):
                while len(keep) > height and any(rank == drop for _, rank in keep):
                    index = max(i for i, (_, rank) in enumerate(keep) if rank == drop)
                    del keep[index]
            lines = keep
        contents = [text for text, _ in lines]
        return contents[:height] if height > 0 else contents

    def build(self, frame: Frame, width: int, scale: int | None = None
              ) -> list[tuple[Content, int]]:
        """The panel's lines, each with how readily it is dropped when the panel is short
        (0: never, 3: first)."""
        view = frame.view
        counters = view.counters
        label_width = 8 if width >= 40 else 6
        lines: list[tuple[Content, int]] = []

        def label(text: str) -> tuple[str, str]:
            return (text.ljust(label_width), "$text-muted")

        round_ = view.ipi_round
        if round_ is not None and round_.targets:
            title = "last" if round_.done else "round"
            parts: list[tuple[str, str] | str] = [label(title),
                                                  (f"cpu{round_.initiator} ⇒ ", "bold $accent")]
            tight = label_width + 7 + 3 * len(round_.targets) > width
            for index, cpu in enumerate(round_.targets):
                # ✓ acknowledged after flushing; = acknowledged, nothing to flush (its TLB
                # generation was current); · not reached yet.
                skipped = index < len(round_.flushed) and round_.flushed[index] == 0
                mark = ("=" if skipped else "✓") if index < round_.acked else "·"
                text = mark if tight else f"{mark}{cpu} "
                parts.append((text, "bold $ipi" if index < round_.acked else "$text-muted"))
            lines.append((Content.assemble(*parts), 0))
            # A THP's 512 pages are one PMD-sized entry: one INVLPG with a 2 MiB stride (the
            # send traces the range in pages, each target one invalidation).
            asked = "full flush" if round_.pages == -1 else \
                "INVLPG one 2 MiB entry" if round_.pages == PMD_PAGES else \
                f"INVLPG {round_.pages} page" + ("s" if round_.pages > 1 else "")
            brief = "full" if round_.pages == -1 else \
                "INVLPG 2M" if round_.pages == PMD_PAGES else f"INVLPG {round_.pages}"
            current = round_.flushed.count(0)
            upgraded = round_.pages != -1 and -1 in round_.flushed
            if current:
                scopes = [f"{asked} asked, {current} already current", f"{brief}, {current} current"]
            elif upgraded:
                scopes = [f"{asked} asked, full flush done (behind)", f"{brief} → full"]
            else:
                scopes = [asked, brief]
            count = (f"{round_.acked} of {len(round_.targets)}", "bold $ipi")
            why_long = ROUND_KIND_TEXT.get(round_.kind, "")
            why_short = KIND_WORDS.get(round_.kind, ("", "", ""))[0]
            variants = [
                Content.assemble(label("acks"), count, (f" · {scope}", ""),
                                 (f" · {why}" if why else "", "$text-muted"))
                for scope in scopes for why in (why_long, why_short, "")
            ]
            variants.append(Content.assemble(label("acks"), count))
            lines.append((fitted(width, *variants), 1))
        elif round_ is not None and not view.interrupts:
            # A broadcast (arm64 TLBI, AMD INVLPGB): no IPI, no handler; the sender waits.
            wait = view.mechanism.wait
            what = "the batch's broadcasts" if round_.pages == -1 else "one broadcast"
            state = "done" if round_.done else "waiting"
            lines.append((Content.assemble(label("last" if round_.done else "round"),
                                           (f"cpu{round_.initiator} {wait} ", "bold $accent"),
                                           (f"{state} · {what}, no IPIs", "$text-muted")), 0))
        else:
            lines.append((Content.assemble(label("round"), ("none in flight", "$text-muted")), 0))
        lines.append((fitted(width, *[Content.assemble(label("kinds"), *kinds_text(frame, short))
                                      for short in (0, 1, 2)]), 1))
        if view.interrupts:  # a broadcast mechanism delivers no IPI: no sparkline of them
            spark_width = max(4, width - label_width - 1)
            values = frame.sparkline[-spark_width:]
            lines.append((Content.assemble(
                label("IPIs"), (sparkline(values, scale).rjust(len(values)), "$ipi on $panel")),
                0))
            lines.append((Content.assemble(
                label(""), ((f"deliveries per {format_ns(frame.spark_bucket_ns)}, now at right"
                             if width >= 46 else f"per {format_ns(frame.spark_bucket_ns)}, now →"),
                            "$text-muted")), 3))
        if view.interrupts:
            lines.append((Content.assemble(
                label("total"), (f"{counters.nr_tlb_remote_flush}", "bold"),
                " round · " if counters.nr_tlb_remote_flush == 1 else " rounds · ",
                (f"{counters.nr_tlb_remote_flush_received}", "bold $ipi"), " IPIs"), 0))
        else:  # a broadcast mechanism, once it has waited
            lines.append((Content.assemble(
                label("total"), (f"{counters.sync_waits}", "bold"),
                " wait · " if counters.sync_waits == 1 else " waits · ",
                (f"{counters.tlbi_broadcasts}", "bold"), " broadcasts · ",
                (f"{counters.nr_tlb_remote_flush_received}", "bold $ipi"), " IPIs"), 0))
        lines.append((Content.assemble(
            label(""), (f"{view.ipis_per_page:.3g}", "bold"), " IPIs per migrated page"), 2))
        return lines


KIND_WORDS: dict[RoundKind, tuple[str, str, str]] = {
    # kind: (one round, several, short) as the kinds line counts them
    RoundKind.PTE: ("per-PTE flush", "per-PTE flushes", "PTE"),
    RoundKind.PMD: ("THP PMD flush", "THP PMD flushes", "PMD"),
    RoundKind.BATCH: ("batch flush", "batch flushes", "batch"),
    RoundKind.FALLBACK: ("sync-fallback flush", "sync-fallback flushes", "fallback"),
    RoundKind.PROT_NONE: ("NUMA scan flush", "NUMA scan flushes", "scan"),
}


def fitted(width: int, *variants: Content) -> Content:
    """The first variant that fits ``width`` (the last one, cropped, if none does)."""
    for variant in variants:
        if width <= 0 or variant.cell_length <= width:
            return variant
    return variants[-1]


def kinds_text(frame: Frame, short: int = 0) -> list[tuple[str, str]]:
    """The rounds sent so far by the code path that sent them (they add up to the total), or
    before the first one what each mode sends; ``short`` 1 and 2 are ever briefer."""
    view = frame.view
    counts = view.counters.rounds_by_kind
    parts: list[tuple[str, str]] = []
    for kind, (one, several, brief) in KIND_WORDS.items():
        count = int(counts[kind])
        if count:
            if parts:
                parts.append((" · ", "$text-muted"))
            parts += [(f"{count} ", "bold"),
                      (brief if short else (one if count == 1 else several), "")]
    if parts:
        return parts
    if not any(view.cpu_in_mask):
        return [("none: no other CPU runs the process", "$text-muted")]
    if frame.scenario.migration.skip_flush:
        return [("none: this kernel never flushes" if short else
                 "none: this kernel never flushes (teaching)", "$error")]
    if view.numa:
        return [(("NUMA scans flush what they make PROT_NONE; a fault's THP flushes its PMD",
                  "scans' PROT_NONE flushes, + THP PMDs", "scans (+THP PMDs)")[short],
                 "$text-muted")]
    if view.mode is Mode.BATCHED:
        return [(("1 full flush per batch; a THP's PMD and the sync fallback flush at once",
                  "1 per batch, + THP PMDs, + sync fallback", "1 per batch (+THP, +fallback)")
                 [short], "$text-muted")]
    return [(("1 INVLPG round per PTE (a THP: one for its PMD)", "1 per PTE (THP: its PMD)",
              "1 per PTE")[short], "$text-muted")]
