"""HelpScreen: every key, what the glyphs mean, and the idea in three lines."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets.folio_grid import GLYPHS, LEGEND
from tui.widgets.legend import GLYPH_STYLE
from tui.widgets.tlb_panel import ROLE_MEANING

IDEA = (
    "Migrating a page means: unmap it (its PTE becomes a migration entry), flush every CPU's TLB "
    "so nobody can still write to the old copy, copy it, remap it. The flush is a shootdown IPI "
    "to every CPU running the process, and each round costs microseconds.",
    "Serial (Linux 6.2) does unmap → flush → copy → remap for one folio at a time: one IPI round "
    "per PTE. Batched (Linux 6.3, \"migrate_pages(): batch TLB flushing\") unmaps up to 512 "
    "pages, flushes once (a full flush on each target), then moves them all: one round per batch. "
    "A 2 MiB THP is flushed at once in both (its PMD), so a batch holding one sends two rounds.",
    "Watch the IPI panel and the CPU rows flash: serial flashes for every page, batched once "
    "per batch. Press s to race both on the same workload.",
)


class HelpScreen(ModalScreen[None]):
    """A scrollable help page over the app."""

    BINDINGS = [
        Binding("escape,question_mark,f1", "dismiss", "Close help", id="help.close"),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 92; max-width: 100%; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    HelpScreen .help-title { text-style: bold; color: $primary; margin-top: 1; }
    """

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.key_rows = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "migviz help · esc closes"
            yield Static("The idea", classes="help-title")
            for paragraph in IDEA:
                yield Static(paragraph + "\n")
            yield Static("Keys", classes="help-title")
            width = max(len(key) for key, _ in self.key_rows) + 2
            yield Static(Content.assemble(*[
                part for key, description in self.key_rows
                for part in ((key.ljust(width), "bold $accent"), (description + "\n", ""))
            ]))
            yield Static("Folio glyphs (the grids: one per node, one cell per folio; a 2 MiB "
                         "THP is a wide [■2M■] cell, other large folios [■■])",
                         classes="help-title")
            yield Static(Content.assemble(*[
                part for code, label, meaning in LEGEND
                for part in ((f" {GLYPHS[code]} ", GLYPH_STYLE[code]),
                             (f"{label:<20}", "bold"), (meaning + "\n", ""))
            ]))
            yield Static("CPUs", classes="help-title")
            yield Static(Content.assemble(*[
                part for glyph, meaning in ROLE_MEANING
                for part in ((f" {glyph} ", "bold"), (meaning + "\n", ""))
            ] + [(" ✓ ", "bold"), ("in the process's mm_cpumask\n", ""),
                 (" █ ", "$tlb-valid"), ("valid TLB entries   ", ""),
                 ("▒ ", "$tlb-stale"), ("stale entries, which still map the old page: the "
                                        "PTE is already unmapped and the flush has not reached "
                                        "this CPU yet (or, in no-flush, never will)\n", ""),
                 (" ↯ ", "bold $ipi"), ("the row flashes while the CPU handles a shootdown IPI",
                                        "")]))
            yield Static("Panels", classes="help-title")
            yield Static(
                "Header: scenario, mode (→ pending switch), move, batch k/n (serial: folio k/n), "
                "pass, phase — all those of the last event in the log — simulated time, speed "
                "(paused: the simulated time per second it asks for; playing: the rate achieved, "
                "and 'behind' when the engine cannot keep up) and the PLAYING/PAUSED badge.\n"
                "Phase strip: unmap → flush → move progress of the current batch, or of the "
                "current folio in serial mode.\n"
                "IPI panel: the round in flight (initiator ⇒ targets, ✓ = acknowledged, = = "
                "acknowledged without flushing: its TLB generation was already the mm's) and "
                "which code path sent it, the rounds so far by kind (they add up to the total), "
                "deliveries over simulated time, totals. A target flushes by TLB generation, as "
                "x86's flush_tlb_func() does: one INVLPG when it is exactly one generation "
                "behind, a full flush when further behind, nothing when current.\n"
                "Stats: pages migrated, shootdown rounds and IPIs (/proc/vmstat names in the "
                "run report), IPIs per page, pages per simulated second, the workload's stall "
                "p99; below, where migrate_pages() has spent the migrating CPU's time so far "
                "in this run: 'flush' is sending IPIs and spinning for acks, 'copy' is "
                "folio_copy(). Compare the shares in both modes (b, or s to race them).\n"
                "Event log: the current step explained with the kernel function it mirrors, and "
                "recent events in ftrace format (# lines have no tracepoint).\n"
                "Toggling serial/batched (b) applies at the next batch boundary: a batch in "
                "flight completes in its mode.")
