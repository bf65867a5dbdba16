"""PredictScreen: a quiz question and a box for the student's prediction (a whole number)."""

from __future__ import annotations

from tui.screens.ask import AskScreen


class PredictScreen(AskScreen[int]):
    """Shows the question and dismisses with the number typed (enter), or None (escape). An
    empty enter keeps the screen open and asks for a number."""

    NAME = "predict"
    TITLE = "predict · enter answers · esc skips"
    HINT = "Type your prediction (a whole number) and press enter; esc skips."
    PLACEHOLDER = "your prediction"
    INPUT_TYPE = "integer"

    def parse(self, text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:  # empty, or a lone "-"
            raise ValueError("Type a number first (esc skips).") from None
