"""AskScreen: a small dialog that asks one thing, reads the answer typed in and dismisses with
it (enter) or with None (escape). What is typed is checked by ``parse``; a ValueError's message
replaces the hint and the dialog stays."""

from __future__ import annotations

from typing import ClassVar, Generic, Literal, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui.screens import dialog_css

T = TypeVar("T")


class AskScreen(ModalScreen[T | None], Generic[T]):
    """Shows ``question`` (plain text: "[0, n]" in it is not markup) over an input box."""

    NAME: ClassVar[str]  # the ids of the parts: "<NAME>-question", "-input", "-hint"
    TITLE: ClassVar[str]  # the border title
    HINT: ClassVar[str]
    PLACEHOLDER: ClassVar[str]
    INPUT_TYPE: ClassVar[Literal["integer", "number", "text"]] = "text"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "skip", "Skip", id="ask.skip"),
    ]

    DEFAULT_CSS = dialog_css("AskScreen") + """
    AskScreen .ask-question { margin-bottom: 1; }
    AskScreen .ask-hint { color: $text-muted; }
    AskScreen .ask-hint.-asking { color: $warning; text-style: bold; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.TITLE
            yield Static(self.question, markup=False, id=f"{self.NAME}-question",
                         classes="ask-question")
            yield Input(placeholder=self.PLACEHOLDER, type=self.INPUT_TYPE, id=f"{self.NAME}-input")
            yield Static(self.HINT, id=f"{self.NAME}-hint", classes="ask-hint")

    def parse(self, text: str) -> T:
        """The answer in ``text``; a ValueError says what is wrong with it."""
        raise NotImplementedError

    @on(Input.Submitted)
    def _answer(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            answer = self.parse(event.value)
        except ValueError as err:
            hint = self.query_one(f"#{self.NAME}-hint", Static)
            hint.update(str(err))
            hint.add_class("-asking")
            return
        self.dismiss(answer)

    def action_skip(self) -> None:
        self.dismiss(None)
