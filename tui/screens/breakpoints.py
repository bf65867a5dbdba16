"""BreakpointScreen: choose the kinds of events that stop a playing run, as in a debugger."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static
from textual.widgets.selection_list import Selection

from core.breakpoints import DESCRIPTIONS, Breakpoint

FOLIO = "folio"  # the selection value of "any event of the selected folio"


@dataclass(frozen=True, slots=True)
class BreakpointChoice:
    """What the screen returns: event kinds, and whether to stop on the selected folio."""

    kinds: frozenset[Breakpoint]
    folio: int | None  # None: not watching a folio


class BreakpointScreen(ModalScreen[BreakpointChoice]):
    """A checklist of breakpoints (space or enter toggles one); escape or k applies it."""

    BINDINGS = [
        Binding("escape,k", "apply", "Apply", id="breakpoints.apply"),
    ]

    DEFAULT_CSS = """
    BreakpointScreen { align: center middle; }
    BreakpointScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    BreakpointScreen SelectionList { height: auto; max-height: 12; border: none; }
    BreakpointScreen Static { color: $text-muted; }
    """

    def __init__(self, current: BreakpointChoice, selected_folio: int) -> None:
        super().__init__()
        self.current = current
        self.selected_folio = selected_folio

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "breakpoints · space toggles · esc applies"
            options: list[Selection[str]] = [
                Selection(f"{kind.value:<8} {DESCRIPTIONS[kind]}", kind.value,
                          kind in self.current.kinds)
                for kind in Breakpoint
            ]
            watching = self.current.folio is not None
            options.append(Selection(
                f"{'folio':<8} any event of folio {self.selected_folio} (the selected one)",
                FOLIO, watching and self.current.folio == self.selected_folio))
            yield SelectionList[str](*options, id="breakpoint-list")
            yield Static("A playing run (or p / B) stops right after such an event; "
                         "n steps on, u steps back.")

    def action_apply(self) -> None:
        chosen = set(self.query_one(SelectionList).selected)
        kinds = frozenset(Breakpoint(value) for value in chosen if value != FOLIO)
        folio = self.selected_folio if FOLIO in chosen else None
        self.dismiss(BreakpointChoice(kinds, folio))
