"""The lessons' quizzes (lib/quiz.py, lib/quizzes/*.json): every answer key is well formed, and
every number a quiz states is a value its lesson glues, so a quiz cannot contradict its lesson.
The browser test (test_book_in_browser.py) clicks the answers on the built pages."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from lib import quiz

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.md"))


def test_every_lesson_has_a_quiz_and_every_quiz_a_lesson():
    assert quiz.lessons() == [p.stem for p in LESSONS]


def _glued_names(text: str) -> set[str]:
    """What a lesson glues: glue("name", ...) in its code, and {glue:text}`name` in its prose
    (which also covers names glued in a loop, glue(f"jump_{name}", ...))."""
    return (set(re.findall(r"""glue\(\s*["']([A-Za-z_]\w*)["']""", text))
            | set(re.findall(r"\{glue:text\}`([A-Za-z_]\w*)", text)))


def _glued_prefixes(text: str) -> tuple[str, ...]:
    """The fixed starts of names glued in a loop: glue(f"update_ratio_{name}", ...)."""
    return tuple(re.findall(r"""glue\(\s*f["']([A-Za-z_]\w*?)\{""", text))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_the_lesson_shows_its_quiz_with_every_value_it_needs(lesson):
    text = lesson.read_text(encoding="utf-8")
    calls = re.findall(rf'quiz\.show\("{lesson.stem}"(.*?)\)\n```', text, flags=re.S)
    assert len(calls) == 1, f"{lesson.name} must call quiz.show({lesson.stem!r}) once"
    section = text.split("## Check your understanding", 1)
    assert len(section) == 2 and "quiz.show(" in section[1].split("\n## ", 1)[0], (
        f"{lesson.name}: the quiz belongs in its 'Check your understanding' section")
    passed = set(re.findall(r"(\w+)=", calls[0]))
    needed = quiz.placeholders(quiz.load(lesson.stem))
    unknown = {n for n in needed - _glued_names(text) - passed
               if not n.startswith(_glued_prefixes(text) or ("\0",))}
    assert not unknown, (f"{lesson.stem}'s quiz states {sorted(unknown)}, which the lesson "
                         f"neither glues nor passes to quiz.show")
    # The quiz reads glued values, so it must come after the cells that glue them.
    quiz_at = text.index(f'quiz.show("{lesson.stem}"')
    for name in needed - passed:
        code = re.search(rf"""glue\(\s*f?["']{name}["']""", text)
        if code:
            assert code.start() < quiz_at, f"{lesson.stem}: {name} is glued after the quiz"


@pytest.mark.parametrize("lesson", quiz.lessons())
def test_a_quiz_fills_with_numbers_and_says_why_for_every_answer(lesson):
    questions = quiz.load(lesson)
    values = {name: 0.123456 for name in quiz.placeholders(questions)}
    values.update({name: "x" for name in ("top_char",)})
    filled = quiz.fill(questions, values)
    assert len(filled) == len(questions)
    for q in filled:
        right = [a for a in q["answers"] if a["correct"]]
        assert len(right) == 1 or q["type"] == "many_choice"
        for a in q["answers"]:
            for text in (q["question"], a["answer"], a["feedback"]):
                assert "{" not in text and "}" not in text, text  # every placeholder filled
            assert a["feedback"] and a["feedback"] != a["answer"]


def _good() -> list[dict]:
    return copy.deepcopy(quiz.load("03_the_model"))


@pytest.mark.parametrize("spoil, message", [
    (lambda q: q[0]["answers"][1].update(correct=True), "exactly one correct answer"),
    (lambda q: q[0]["answers"][0].update(correct=False), "exactly one correct answer"),
    (lambda q: q[0]["answers"][0].update(feedback=" "), "feedback must explain"),
    (lambda q: q[0]["answers"][1].update(answer=q[0]["answers"][0]["answer"]), "same text"),
    (lambda q: q[1].update(question="Its loss is 1.56 nats. Why?"), "literal number"),
    (lambda q: q[1].update(question="It trained 2,000 steps. Why?"), "literal number"),
    (lambda q: q[1].update(question="Loss {val_loss:.2f. Why?"), "malformed"),
    (lambda q: q[1].update(question="Loss {1}. Why?"), "not a value's name"),
    (lambda q: q[0].update(hint="no such field"), "the fields are"),
    (lambda q: q[0].update(type="essay"), "multiple_choice or many_choice"),
    (lambda q: q[0]["answers"][0].update(correct="yes"), "'correct' true or false"),
    (lambda q: q.__delitem__(slice(2, None)), "3 to 6 questions"),
    # wrong JSON types: one line each, never a TypeError (#42)
    (lambda q: q.__setitem__(0, 42), "a question is an object"),
    (lambda q: q[0].update(question=42), "the question must be text"),
    (lambda q: q[0].update(question=None), "the question must be text"),
    (lambda q: q[0].update(answers=None), "'answers' is a list"),
    (lambda q: q[0].update(answers=7), "'answers' is a list"),
    (lambda q: q[0]["answers"].__setitem__(0, "yes"), "answer 1: needs exactly"),
    (lambda q: q[0]["answers"][0].update(answer=3), "answer 1 must be text"),
    (lambda q: q[0]["answers"][0].update(feedback=3), "answer 1's feedback must be text"),
    (lambda q: q[0]["answers"][0].update(feedback=None), "answer 1's feedback must be text"),
    (lambda q: q[0].update(literals=[128]), "'literals' is a list"),
    (lambda q: q[0].update(literals="128"), "'literals' is a list"),
    # a format that would build a gigabyte string, or take its width from a value (#42)
    (lambda q: q[1].update(question="Loss {val_loss:1000000000}. Why?"), "width or precision"),
    (lambda q: q[1].update(question="Loss {val_loss:.1000000000f}. Why?"), "width or precision"),
    (lambda q: q[1].update(question="Loss {val_loss:{val_loss}}. Why?"), "inside the format"),
])
def test_a_spoilt_answer_key_is_refused_with_the_fix(spoil, message):
    questions = _good()
    spoil(questions)
    with pytest.raises(ValueError, match=message):
        quiz.check(questions)


def test_many_choice_and_literal_givens_are_allowed():
    questions = _good()
    questions[0]["type"] = "many_choice"
    questions[0]["answers"][1]["correct"] = True
    questions[1]["question"] = "A batch of 128 windows of 256 characters: how many targets?"
    questions[1]["literals"] = ["128", "256"]
    quiz.check(questions)


def test_a_value_the_lesson_did_not_glue_is_named():
    with pytest.raises(KeyError, match=r"n_params.*glue them before the quiz"):
        quiz.fill(_good(), {"gpt2_vocab": 50257})


def test_fill_formats_the_run_s_numbers():
    questions = [{"question": "Loss {loss:.3f}, {n:,} steps?",
                  "answers": [{"answer": "a", "correct": True, "feedback": "{loss:.1f}"},
                              {"answer": "b", "correct": False, "feedback": "no"}]}] * 3
    filled = quiz.fill(questions, {"loss": 1.23456, "n": 2000})
    assert filled[0]["question"] == "Loss 1.235, 2,000 steps?"
    assert filled[0]["answers"][0]["feedback"] == "1.2"
    assert filled[0]["type"] == "multiple_choice"


def test_show_takes_the_lesson_s_glued_values(monkeypatch):
    import jupyterquiz

    from lib import book

    shown = {}
    monkeypatch.setattr(jupyterquiz, "display_quiz", lambda qs, **kw: shown.update(qs=qs, **kw))
    monkeypatch.setattr(book, "_GLUED", {})
    monkeypatch.setattr(book, "_glue_or_show", lambda name, value: None)
    passed = {"gpt2_vocab", "gpt2_d", "gpt2_T"}  # what lesson 3 passes to quiz.show itself
    for name in quiz.placeholders(quiz.load("03_the_model")) - passed:
        book.glue(name, 12345 if name.startswith("n_") else 42.0)
    quiz.show("03_the_model", gpt2_vocab=50257, gpt2_d=768, gpt2_T=1024)
    assert "12,345 parameters" in shown["qs"][2]["question"]
    assert shown["colors"] == quiz.COLORS and shown["shuffle_answers"] is True


def test_a_lesson_without_a_quiz_says_which_exist():
    with pytest.raises(FileNotFoundError, match="03_the_model"):
        quiz.load("99_nothing")


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("text, background", [
    ("--jq-text-color", "--jq-multiple-choice-bg"),
    ("--jq-text-color", "--jq-correct-color"),     # a clicked right answer
    ("--jq-text-color", "--jq-incorrect-color"),   # a clicked wrong answer
    ("#333333", "--jq-mc-button-bg"),              # jupyterquiz's answer text
    ("--jq-correct-color", "#ffffff"),             # the feedback, on the light page
    ("--jq-incorrect-color", "#ffffff"),
    ("--jq-correct-color", "#ced6dd"),             # ... and on the dark theme's output grey
    ("--jq-incorrect-color", "#ced6dd"),
])
def test_the_quiz_colours_pass_wcag_aa(text, background):
    colours = {**quiz.COLORS}
    a, b = colours.get(text, text), colours.get(background, background)
    assert _contrast(a, b) >= 4.5, f"{text} on {background}: {_contrast(a, b):.2f}:1"
