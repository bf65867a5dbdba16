"""SplitView: serial and batched racing on the same scenario and seed, on one simulated clock.

Each side has its own grids, phase strip, IPI panel and counters; the line on top says how the
race stands: "batched is N× faster, M% fewer IPIs".
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Static

from core.scenario import Mode
from tui.units import format_ns
from tui.widgets.folio_grid import FolioGrid
from tui.widgets.frame import Frame
from tui.widgets.header_bar import mode_piece
from tui.widgets.ipi_panel import IpiPanel
from tui.widgets.phase_strip import PhaseStrip
from tui.widgets.stats_line import StatsLine


@dataclass(frozen=True, slots=True)
class RaceResult:
    """Where the race stands."""

    serial: Frame  # the left side: serial, or A in a race of two configurations
    batched: Frame  # the right side: batched, or B
    labels: tuple[str, str] | None = None  # A's and B's, when racing two configurations

    @property
    def serial_end_ns(self) -> int | None:
        """When serial finished (its run's end, as `migviz run` reports it), or None."""
        view = self.serial.view
        return view.clock_ns if view.done else None

    @property
    def batched_end_ns(self) -> int | None:
        """When batched finished, or None."""
        view = self.batched.view
        return view.clock_ns if view.done else None


def _rounds(count: int) -> str:
    return f"{count} round{'' if count == 1 else 's'}"


def race_content(race: RaceResult, width: int = 200) -> Content:
    """The comparison line (the bracketed details only when there is room)."""
    if race.labels is not None:
        return versus_content(race, width)
    wide = width >= 100
    s, b = race.serial, race.batched
    s_ipis = s.view.counters.nr_tlb_remote_flush_received
    b_ipis = b.view.counters.nr_tlb_remote_flush_received
    if race.serial_end_ns is not None and race.batched_end_ns is not None:
        speedup = race.serial_end_ns / max(race.batched_end_ns, 1)
        fewer = 100.0 * (1 - b_ipis / s_ipis) if s_ipis else 0.0
        return Content.assemble(
            ("batched is ", ""), (f"{speedup:.1f}× faster", "bold $success"), (", ", ""),
            (f"{fewer:.0f}% fewer IPIs", "bold $ipi"),
            (f"   (done in {format_ns(race.batched_end_ns)} vs {format_ns(race.serial_end_ns)};"
             f" {b_ipis} vs {s_ipis} IPIs)" if wide else "", "$text-muted"))
    s_pages, b_pages = s.view.pages_done, b.view.pages_done
    per_s, per_b = s.view.ipis_per_page, b.view.ipis_per_page
    fewer_text = ""
    if per_s > 0:
        fewer_text = f"{100.0 * (1 - per_b / per_s):.0f}% fewer IPIs per page"
    if race.batched_end_ns is not None:
        ahead = max(s.view.clock_ns, b.view.clock_ns) / max(race.batched_end_ns, 1)
        return Content.assemble(
            ("batched finished at ", ""), (format_ns(race.batched_end_ns), "bold"),
            ("; serial still running: batched is ", ""), (f"≥{ahead:.1f}× faster", "bold $success"),
            (f", {fewer_text}" if fewer_text else "", "bold $ipi"))
    if s_pages and b_pages:
        return Content.assemble(
            ("so far batched moved ", ""), (f"{b_pages / s_pages:.1f}× the pages", "bold $success"),
            (f" ({b_pages} vs {s_pages})" if wide else "", "$text-muted"),
            (f", {fewer_text}" if fewer_text else "", "bold $ipi"))
    s_rounds = s.view.counters.nr_tlb_remote_flush
    b_rounds = b.view.counters.nr_tlb_remote_flush
    if s_rounds or b_rounds:
        return Content.assemble(
            ("so far: serial ", ""), (f"{_rounds(s_rounds)}, {s_ipis} IPIs", "bold $ipi"),
            (" · batched ", ""), (f"{_rounds(b_rounds)}, {b_ipis} IPIs", "bold $ipi"),
            ("  (no page finished yet)" if wide else "", "$text-muted"))
    return Content.assemble(("both modes start together on one simulated clock; "
                             "space plays, n steps", "$text-muted"))


def versus_content(race: RaceResult, width: int = 200) -> Content:
    """The comparison line of two configurations: B against A."""
    assert race.labels is not None
    wide = width >= 100
    a, b = race.serial.view, race.batched.view
    a_ipis, b_ipis = a.counters.nr_tlb_remote_flush_received, b.counters.nr_tlb_remote_flush_received
    if race.serial_end_ns is not None and race.batched_end_ns is not None:
        ratio = race.serial_end_ns / max(race.batched_end_ns, 1)
        verdict = f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"
        return Content.assemble(
            ("B is ", ""), (verdict, "bold $success"), (" than A", ""),
            (f"   (done in {format_ns(race.batched_end_ns)} vs {format_ns(race.serial_end_ns)};"
             f" {b_ipis} vs {a_ipis} IPIs)" if wide else "", "$text-muted"))
    if a.pages_done and b.pages_done:
        return Content.assemble(
            ("so far B moved ", ""), (f"{b.pages_done / a.pages_done:.2f}× A's pages", "bold"),
            (f" ({b.pages_done} vs {a.pages_done}; {b_ipis} vs {a_ipis} IPIs)" if wide else "",
             "$text-muted"))
    return Content.assemble((f"A: {race.labels[0]}  ·  B: {race.labels[1]}; one simulated "
                             "clock, space plays", "$text-muted"))


class ModeColumn(Vertical):
    """One side of the race."""

    def __init__(self, mode: Mode, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.mode = mode
        self._title: Content | None = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="mode-title")
        with Horizontal(classes="split-grids"):
            yield FolioGrid(0, classes="split-grid")
            yield FolioGrid(1, classes="split-grid")
        yield PhaseStrip()
        yield IpiPanel(classes="split-ipi")
        yield StatsLine()

    def show(self, frame: Frame, scale: int | None, label: str | None = None) -> None:
        title = self.query_one(".mode-title", Static)
        view = frame.view
        if label is not None:  # one side of a race of two configurations
            text = Content.assemble((label, "bold"), (f"  {view.mode.value}, {view.arch}",
                                                      "$text-muted"),
                                    ("   done" if view.done else "", "bold $success"))
        else:
            text = Content.assemble(
                mode_piece(view.mode, view.pending_mode),
                (" Linux 6.2 per-folio flush" if self.mode is Mode.SERIAL else
                 " Linux 6.3 batched flush", "$text-muted"),
                ("   done" if view.done else "", "bold $success"))
        if text != self._title:
            self._title = text
            title.update(text, layout=False)
        for grid in self.query(FolioGrid):
            grid.show(frame)
        self.query_one(PhaseStrip).show(frame)
        self.query_one(IpiPanel).show(frame, scale)
        self.query_one(StatsLine).show(frame)


class SplitView(Vertical):
    """Both modes side by side."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._race: Content | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="race")
        with Horizontal(id="split-columns"):
            yield ModeColumn(Mode.SERIAL, id="split-serial")
            yield ModeColumn(Mode.BATCHED, id="split-batched")

    def show(self, race: RaceResult) -> None:
        scale = max(max(race.serial.sparkline, default=0), max(race.batched.sparkline, default=0))
        line = race_content(race, self.size.width)
        if line != self._race:
            self._race = line
            self.query_one("#race", Static).update(line, layout=False)  # one line, always
        labels = race.labels or (None, None)
        self.query_one("#split-serial", ModeColumn).show(race.serial, scale,
                                                         labels[0] and f"A: {labels[0]}")
        self.query_one("#split-batched", ModeColumn).show(race.batched, scale,
                                                          labels[1] and f"B: {labels[1]}")
