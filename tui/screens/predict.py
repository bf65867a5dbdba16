"""PredictScreen: a quiz question and a box for the student's prediction (a whole number)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

HINT = "Type your prediction (a whole number) and press enter; esc skips."


class PredictScreen(ModalScreen[int | None]):
    """Shows ``question`` and dismisses with the number typed (enter), or None (escape). An
    empty enter keeps the screen open and asks for a number."""

    BINDINGS = [
        Binding("escape", "skip", "Skip", id="predict.skip"),
    ]

    DEFAULT_CSS = """
    PredictScreen { align: center middle; }
    PredictScreen > Vertical {
        width: 80; max-width: 100%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    PredictScreen #predict-question { margin-bottom: 1; }
    PredictScreen #predict-hint { color: $text-muted; }
    PredictScreen #predict-hint.-asking { color: $warning; text-style: bold; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "predict · enter answers · esc skips"
            # The question is plain text: "[0, 4, ...]" in it is not markup.
            yield Static(self.question, markup=False, id="predict-question")
            yield Input(placeholder="your prediction", type="integer", id="predict-input")
            yield Static(HINT, id="predict-hint")

    @on(Input.Submitted, "#predict-input")
    def _answer(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            value = int(event.value.strip())
        except ValueError:  # empty, or a lone "-"
            hint = self.query_one("#predict-hint", Static)
            hint.update("Type a number first (esc skips).")
            hint.add_class("-asking")
            return
        self.dismiss(value)

    def action_skip(self) -> None:
        self.dismiss(None)
