"""`migviz quiz`: predict, then reveal. OSTEP-style questions on small random scenarios, with
the engine as the oracle (core/quiz.py).

Text output numbers the questions and says how to reveal the answers (``-c``: each answer, the
`migviz run --json` key it is, and why). ``--json`` prints a list of objects with ``scenario``
(TOML), ``mode``, ``question``, ``metric``, ``answer`` and ``explanation``: save a scenario to a
file, run ``migviz run FILE --mode MODE --json`` and its ``metric`` is the answer. Without
``--seed`` the seed is random and the text output names it, so the class can ask again.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import textwrap

from core.quiz import Question, answer_text, make_quiz
from tui.cli import as_json_text
from tui.output import emit

DEFAULT_COUNT = 5
MAX_COUNT = 100  # each question is one run of a small scenario
MAX_SEED = (1 << 64) - 1
RANDOM_SEEDS = 100_000  # a seed drawn for the class is short enough to read out and type
UNIT = re.compile(r"(\d) (KiB|MiB)\b")


def count_arg(text: str) -> int:
    """--count: 1 to MAX_COUNT questions."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_COUNT} questions, got {text}")
    return value


def seed_arg(text: str) -> int:
    """--seed: a whole number from 0 to 2**64 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SEED}, got {text}")
    return value


def quiz_command(args: argparse.Namespace) -> int:
    """Run `migviz quiz` with the parsed ``args``; returns the exit code."""
    seed = args.seed if args.seed is not None else secrets.randbelow(RANDOM_SEEDS)
    questions = make_quiz(seed, args.count)
    if args.json:
        emit(as_json_text(list(questions)))
        return 0
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 100)) - 1
    emit(format_quiz(questions, seed, args.count, answers=args.answers, width=width))
    return 0


def format_quiz(questions: tuple[Question, ...], seed: int, count: int, *, answers: bool,
                width: int = 99) -> str:
    """The questions, numbered; with ``answers``, each answer and why under its question."""
    again = f"migviz quiz --seed {seed}" + (f" --count {count}" if count != DEFAULT_COUNT else "")
    plural = "s" if len(questions) > 1 else ""
    lines = [f"migviz quiz · seed {seed} · {len(questions)} question{plural}"]
    if answers:
        lines += wrap(f"Each answer is what `migviz run` reports: `{again} --json` gives every "
                      "scenario as TOML to check it with.", width, "", "")
    else:
        lines.append(f"Predict each answer, then reveal them: {again} -c")
    for number, question in enumerate(questions, 1):
        label = f"{number}. "
        indent = " " * len(label)
        lines.append("")
        lines += wrap(question.text, width, label, indent)
        if answers:
            lines.append("")
            lines.append(f"{indent}answer: {answer_text(question.answer)}   "
                         f"({question.metric}, migviz run --mode {question.mode.value})")
            lines += wrap(question.explanation, width, f"{indent}why: ", indent + "     ")
    return "\n".join(lines)


def wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """Wrap a paragraph between words only: never inside ``TLB-shootdown`` or ``0-5``, nor
    between a number and its unit (``4 KiB``, ``2 MiB``)."""
    kept = UNIT.sub("\\1\u00a0\\2", text)
    return [line.replace("\u00a0", " ") for line in
            textwrap.wrap(kept, width, initial_indent=first, subsequent_indent=rest,
                          break_on_hyphens=False, break_long_words=False)]
