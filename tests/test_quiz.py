"""`migviz quiz`: seeded questions whose answers are what `migviz run` reports, explanations that
reach the same number, the command's output and errors, and the predict screen."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_one_line, call

from core.engine import Engine
from core.events import EventKind, RoundKind
from core.folios import FolioState
from core.quiz import (
    METRIC,
    Kind,
    Question,
    answer_text,
    draw_setup,
    explain,
    make_quiz,
    oracle,
)
from core.scenario import parse_scenario
from core.summary import RunSummary
from tui.screens.predict import PredictScreen

JSON_KEYS = {"scenario", "mode", "question", "metric", "answer", "explanation"}
RUN_KEYS = set(RunSummary.keys())  # what `migviz run --json` prints


def quiz_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code, out, err = call(capsys, "quiz", *argv, "--json")
    assert code == 0 and err == "", err
    questions: list[dict[str, Any]] = json.loads(out)
    return questions


def facts(question: Question) -> dict[str, Any]:
    """What a question's scenario says, without the name, description and seed that carry the
    quiz's seed and the question's number."""
    return question.scenario.model_dump(exclude={"name", "description", "seed"})


def flat(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# Seeds


def test_same_seed_same_questions(capsys: pytest.CaptureFixture[str]) -> None:
    assert make_quiz(11, 6) == make_quiz(11, 6)
    assert make_quiz(11, 3) == make_quiz(11, 6)[:3]  # question k does not depend on --count
    assert quiz_json(capsys, "--seed", "11") == quiz_json(capsys, "--seed", "11")


def test_different_seeds_different_scenarios() -> None:
    quizzes = [[facts(question) for question in make_quiz(seed, 4)] for seed in range(5)]
    for first in range(len(quizzes)):
        for second in range(first + 1, len(quizzes)):
            assert quizzes[first] != quizzes[second], (first, second)
    # and within a quiz, not one scenario four times
    assert all(len({json.dumps(f, sort_keys=True) for f in quiz}) > 1 for quiz in quizzes)


def test_without_seed_the_random_seed_is_printed_and_asks_again(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "quiz", "--count", "2")
    assert code == 0
    match = re.search(r"seed (\d+)", out.splitlines()[0])
    assert match, out
    seed = match.group(1)
    assert f"migviz quiz --seed {seed} --count 2 -c" in out  # how to reveal the answers
    _, again, _ = call(capsys, "quiz", "--count", "2", "--seed", seed)
    assert again == out


# ---------------------------------------------------------------------------------------------
# The engine is the oracle


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_every_answer_is_what_migviz_run_reports(seed: int, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    questions = quiz_json(capsys, "--seed", str(seed))
    assert len(questions) == 5
    for number, question in enumerate(questions, 1):
        path = tmp_path / f"q{number}.toml"
        path.write_text(question["scenario"], encoding="utf-8")
        code, out, err = call(capsys, "run", str(path), "--mode", question["mode"], "--json")
        assert code == 0, err
        assert json.loads(out)[question["metric"]] == question["answer"], (seed, number)


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    questions = quiz_json(capsys, "--seed", "5", "--count", "8")
    assert len(questions) == 8
    for question in questions:
        assert set(question) == JSON_KEYS
        assert question["mode"] in ("serial", "batched")
        assert question["metric"] in RUN_KEYS
        assert isinstance(question["question"], str) and question["question"].endswith(("?", "."))
        answer = question["answer"]
        if question["metric"] == "tlb_shootdowns":
            assert isinstance(answer, list) and all(isinstance(n, int) for n in answer)
        else:
            assert isinstance(answer, int)
        scenario = parse_scenario(question["scenario"], "quiz scenario")  # valid as a file
        assert scenario.migration.mode.value == question["mode"]
    # every kind of question in each run of four
    for start in (0, 4):
        assert {q["metric"] for q in questions[start:start + 4]} == set(METRIC.values())


def test_explanations_reach_the_engine_answer() -> None:
    # Many drawn setups of every kind: the rules the explanation states give the run's figure.
    for seed in range(25):
        rng = random.Random(f"test-quiz:{seed}")
        for kind in Kind:
            setup = draw_setup(kind, rng)
            scenario = setup.scenario(f"check-{seed}", "a drawn setup", 1)
            answer = oracle(scenario, setup.mode, METRIC[kind])
            expected, why = explain(kind, setup)
            assert expected == answer, (kind, setup)
            assert why.rsplit("= ", 1)[1] == answer_text(answer), why


def test_each_question_states_its_answer_in_its_explanation() -> None:
    for seed in range(6):
        for question in make_quiz(seed, 4):
            assert question.explanation.rsplit("= ", 1)[1] == answer_text(question.answer)


def test_unmapped_at_flush_counts_the_pages_unmapped_at_the_batch_flush() -> None:
    # pgmigrate_success answers "how many pages are unmapped at the flush" only on the questions'
    # one batch: step the engine to that flush and count the pages behind migration entries.
    questions = [q for seed in range(8) for q in make_quiz(seed, 4)
                 if q.kind is Kind.UNMAPPED_AT_FLUSH]
    assert len(questions) == 8
    with_thp = 0
    for question in questions:
        engine = Engine(question.scenario, question.mode)
        seen: list[int] = []
        while not engine.done:
            for event in engine.step():
                if event.kind is EventKind.FLUSH_SEND and event.round_kind is RoundKind.BATCH:
                    view = engine.view()
                    held = (view.folio_state == FolioState.UNMAPPED) | \
                        (view.folio_state == FolioState.FLUSHED)
                    seen.append(int((1 << view.folio_order[held].astype(int)).sum()))
        assert seen == [question.answer], question.text
        with_thp += "a 2 MiB THP" in question.text
    assert 0 < with_thp < len(questions)  # both shapes were checked


# ---------------------------------------------------------------------------------------------
# Text output and bad input


def test_answers_only_with_c(capsys: pytest.CaptureFixture[str]) -> None:
    questions = make_quiz(4, 5)
    _, hidden, _ = call(capsys, "quiz", "--seed", "4")
    _, shown, _ = call(capsys, "quiz", "--seed", "4", "-c")
    assert "migviz quiz --seed 4 -c" in hidden
    for number, question in enumerate(questions, 1):
        assert f"\n{number}. " in hidden and f"\n{number}. " in shown
        assert flat(question.text) in flat(hidden) and flat(question.text) in flat(shown)
        assert flat(question.explanation) not in flat(hidden)
        assert flat(question.explanation) in flat(shown)
        assert f"answer: {answer_text(question.answer)} " in shown
    assert "answer:" not in hidden and "why:" not in hidden


BAD_ARGUMENTS = [
    (["--count", "0"], "--count"),
    (["--count", "101"], "--count"),
    (["--count", "many"], "--count"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "x"], "--seed"),
    (["--seed", "1.5"], "--seed"),
]


@pytest.mark.parametrize(("argv", "option"), BAD_ARGUMENTS,
                         ids=[" ".join(case[0]) for case in BAD_ARGUMENTS])
def test_bad_arguments_are_one_line(argv: list[str], option: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "quiz", *argv)
    assert code == 2 and out == ""
    assert_one_line(err, option, argv[1])
    assert err.endswith(" (see 'migviz quiz --help')\n"), err


# ---------------------------------------------------------------------------------------------
# The predict screen


def predict(*keys: str) -> tuple[list[int | None], bool, str]:
    """Push a PredictScreen from a bare app and press ``keys``: what the callback got, whether
    the screen is still up, and its hint line."""
    from textual.app import App
    from textual.widgets import Static

    results: list[int | None] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(PredictScreen("How many IPIs? [0, n, ...]"), results.append)

    async def main() -> tuple[bool, str]:
        app = Host()
        async with app.run_test(size=(90, 24)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, PredictScreen)
            await pilot.press(*keys)
            await pilot.pause()
            up = isinstance(app.screen, PredictScreen)
            hint = str(app.screen.query_one("#predict-hint", Static).content) if up else ""
            return up, hint

    up, hint = asyncio.run(main())
    return results, up, hint


def test_predict_returns_the_typed_number() -> None:
    assert predict("4", "2", "enter") == ([42], False, "")


def test_predict_escape_returns_none() -> None:
    assert predict("7", "escape") == ([None], False, "")


def test_predict_empty_enter_asks_for_a_number() -> None:
    results, up, hint = predict("enter")
    assert results == [] and up
    assert "number" in hint.lower()
    # letters are not taken: still nothing to submit
    results, up, _ = predict("a", "b", "enter")
    assert results == [] and up
    assert predict("enter", "-", "3", "enter")[0] == [-3]
