"""BreakpointScreen: choose the kinds of events that stop a playing run, as in a debugger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widgets import OptionList, SelectionList, Static
from textual.widgets.option_list import OptionDoesNotExist
from textual.widgets.selection_list import Selection

from core.breakpoints import DESCRIPTIONS, Breakpoint
from tui.screens import dialog_css

FOLIO = "folio"  # the selection value of "any event of the selected folio"


@dataclass(frozen=True, slots=True)
class BreakpointChoice:
    """What the screen returns: event kinds, and whether to stop on the selected folio."""

    kinds: frozenset[Breakpoint]
    folio: int | None  # None: not watching a folio


class CheckList(SelectionList[str]):
    """A SelectionList whose boxes read ``[x]`` (on) or ``[ ]`` (off): SelectionList's own box
    is the same glyph either way, told apart by colour alone, so it reads nothing under
    NO_COLOR or on a monochrome terminal."""

    ON = "[x] "
    OFF = "[ ] "  # as wide as SelectionList's button, so the prompts keep their width

    COMPONENT_CLASSES: ClassVar[set[str]] = {"checklist--on"}

    DEFAULT_CSS = """
    CheckList > .checklist--on { color: $success; text-style: bold; }
    """

    def render_line(self, y: int) -> Strip:
        # The prompt as OptionList draws it (with room for the box), then our box in front.
        line = OptionList.render_line(self, y)
        index = self.scroll_offset.y + y
        try:
            selection = self.get_option_at_index(index)
        except OptionDoesNotExist:
            return line
        on = selection.value in self.selected
        row = next(iter(line)).style or self.rich_style
        style = row
        if on and self.highlighted != index:
            # The cursor row keeps the cursor's colours; elsewhere "on" is coloured as well.
            style = row + self.get_component_rich_style("checklist--on", partial=True)
        elif on:
            style = row + Style(bold=True)
        style += Style(meta={"option": index})  # a click on the box toggles it, as before
        return Strip([Segment(self.ON if on else self.OFF, style), *line])


class BreakpointScreen(ModalScreen[BreakpointChoice]):
    """A checklist of breakpoints (space or enter toggles one); escape or k applies it."""

    BINDINGS = [
        Binding("escape,k", "apply", "Apply", id="breakpoints.apply"),
    ]

    DEFAULT_CSS = dialog_css("BreakpointScreen") + """
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
            yield CheckList(*options, id="breakpoint-list")
            yield Static("A playing run (or p / B) stops right after such an event; "
                         "n steps on, u steps back.")

    def action_apply(self) -> None:
        chosen = set(self.query_one(SelectionList).selected)
        kinds = frozenset(Breakpoint(value) for value in chosen if value != FOLIO)
        folio = self.selected_folio if FOLIO in chosen else None
        self.dismiss(BreakpointChoice(kinds, folio))
