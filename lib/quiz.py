"""Each lesson's quiz: a few multiple-choice questions, each answer with its explanation.

The questions are data, one JSON file per lesson in `lib/quizzes/` (`<lesson stem>.json`), so
a test can check every answer key without running a lesson. A question reads

    {"question": "...", "answers": [{"answer": "...", "correct": true, "feedback": "..."}, ...]}

with exactly one correct answer, unless it says `"type": "many_choice"` (then one or more).
Text may name values of the lesson's own run as `{name}` or `{name:.2f}` (Python's format
syntax): `show` fills them from what the lesson glued (`lib.book.glue`), so a quiz states the
numbers the reader's run produced and can never contradict the lesson. A number the quiz
writes literally must not look like a measurement (a decimal, or three digits or more) unless
the question lists it as a given of its own, in `"literals"` (a hypothetical batch of 128, say):
`check` refuses any other.

`show` draws the quiz with jupyterquiz (its questions are embedded in the page: it works in the
static book, in Jupyter and in Colab). Clicking an answer says at once whether it was right and
why; a wrong one can be followed by another try.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

QUIZ_DIR = Path(__file__).resolve().parent / "quizzes"
MAX_FORMAT_NUMBER = 40  # a widest {name:>40} or finest {name:.40f}; {name:1000000000} would
# build a gigabyte string

# The quiz's colours, each pair above WCAG AA's 4.5:1 contrast: white text on the question's
# blue and on a clicked answer's green or red, dark text on the light answer buttons, and the
# feedback's green or red on the page's white, and on the light grey that the book's dark theme
# gives every HTML output (pydata-sphinx-theme's --pst-color-text-base, #ced6dd).
COLORS = {
    "--jq-multiple-choice-bg": "#1f3b63",
    "--jq-many-choice-bg": "#1f3b63",
    "--jq-mc-button-bg": "#f4f6f9",
    "--jq-mc-button-border": "#c5ccd6",
    "--jq-mc-button-inset-shadow": "#555555",
    "--jq-text-color": "#ffffff",
    "--jq-correct-color": "#125c2f",
    "--jq-incorrect-color": "#9e1f18",
    "--jq-link-color": "#cfe0ff",
}

_FIELDS = {"question", "type", "answers", "literals"}
_ANSWER_FIELDS = {"answer", "correct", "feedback"}
# A literal number that reads like a measurement: a decimal, or three digits or more.
_MEASUREMENT = re.compile(r"(?<![\w{.,])(\d{1,3}(?:,\d{3})+|\d+\.\d+|\d{3,})(?![\w}])")


def path(lesson: str) -> Path:
    return QUIZ_DIR / f"{lesson}.json"


def lessons() -> list[str]:
    """The lessons that have a quiz (the stems of their files)."""
    return sorted(p.stem for p in QUIZ_DIR.glob("*.json"))


def load(lesson: str) -> list[dict]:
    """The questions of `lesson` (e.g. "03_the_model"), checked, with their {placeholders}."""
    file = path(lesson)
    if not file.exists():
        raise FileNotFoundError(f"no quiz for lesson {lesson!r}: expected {file} "
                                f"(quizzes exist for {', '.join(lessons()) or 'no lesson'})")
    questions = json.loads(file.read_text(encoding="utf-8"))
    check(questions, where=file.name)
    return questions


def _texts(questions: list[dict]):
    for i, q in enumerate(questions, 1):
        yield f"question {i}", q["question"]
        for j, a in enumerate(q["answers"], 1):
            yield f"question {i}, answer {j}", a["answer"]
            yield f"question {i}, answer {j}'s feedback", a["feedback"]


def check(questions: list[dict], where: str = "quiz") -> None:
    """A ValueError naming the question and what to fix when the quiz is not well formed."""
    if not isinstance(questions, list) or not 3 <= len(questions) <= 6:
        raise ValueError(f"{where}: a quiz is a list of 3 to 6 questions")
    for i, q in enumerate(questions, 1):
        name = f"{where}, question {i}"
        if not isinstance(q, dict):
            raise ValueError(f"{name}: a question is an object with the fields {sorted(_FIELDS)}, "
                             f"got {type(q).__name__} {q!r:.40}")
        if set(q) - _FIELDS or "question" not in q or "answers" not in q:
            raise ValueError(f"{name}: the fields are {sorted(_FIELDS)} ('type' and "
                             f"'literals' optional), got {sorted(q)}")
        kind = q.get("type", "multiple_choice")
        if kind not in ("multiple_choice", "many_choice"):
            raise ValueError(f"{name}: type must be multiple_choice or many_choice, got {kind!r}")
        _check_text(q["question"], f"{name}: the question")
        literals = q.get("literals", [])
        if not isinstance(literals, list) or not all(isinstance(n, str) for n in literals):
            raise ValueError(f"{name}: 'literals' is a list of numbers written as strings "
                             f"(\"128\"), got {literals!r:.60}")
        answers = q["answers"]
        if not isinstance(answers, list) or len(answers) < 2:
            raise ValueError(f"{name}: 'answers' is a list of at least two answers, "
                             f"got {answers!r:.60}")
        for j, a in enumerate(answers, 1):
            if (not isinstance(a, dict) or set(a) != _ANSWER_FIELDS
                    or not isinstance(a["correct"], bool)):
                raise ValueError(f"{name}, answer {j}: needs exactly {sorted(_ANSWER_FIELDS)}, "
                                 f"'correct' true or false, got {a!r:.200}")
            _check_text(a["answer"], f"{name}, answer {j}")
            _check_text(a["feedback"], f"{name}, answer {j}'s feedback")
            if not a["feedback"].strip():
                raise ValueError(f"{name}, answer {j}: the feedback must explain the answer")
        right = sum(a["correct"] for a in answers)
        if kind == "multiple_choice" and right != 1:
            raise ValueError(f"{name}: a multiple_choice question has exactly one correct answer, "
                             f"this one has {right} (or mark it \"type\": \"many_choice\")")
        if kind == "many_choice" and right < 1:
            raise ValueError(f"{name}: no correct answer")
        if len({a["answer"] for a in answers}) != len(answers):
            raise ValueError(f"{name}: two answers have the same text")
    for i, q in enumerate(questions, 1):
        for name, text in _texts([q]):
            name = name.replace("question 1", f"question {i}", 1)
            try:
                plain = _strip_placeholders(text)
            except ValueError as e:  # fails here, not in the reader's browser
                raise ValueError(f"{where}, {name}: a malformed {{placeholder}} ({e}) in "
                                 f"{text!r}") from None
            literal = [n for n in _MEASUREMENT.findall(plain) if n not in q.get("literals", [])]
            if literal:
                raise ValueError(
                    f"{where}, {name}: {literal} written as a literal number; a number from the "
                    f"lesson's run must be a {{placeholder}} naming a glued value (or, for a given "
                    f"of the question itself, list it in the question's \"literals\")")
            placeholders(text)


def _check_text(text, name: str) -> None:
    """A question, answer or feedback is a string (JSON's numbers and null are refused)."""
    if not isinstance(text, str):
        raise ValueError(f"{name} must be text (a JSON string), got {type(text).__name__} "
                         f"{text!r:.40}")


def _strip_placeholders(text: str) -> str:
    return "".join(lit for lit, *_ in string.Formatter().parse(text))


def placeholders(text_or_questions) -> set[str]:
    """The value names a text (or a whole quiz) refers to as {name} or {name:format}."""
    if isinstance(text_or_questions, list):
        return set().union(*(placeholders(t) for _, t in _texts(text_or_questions)))
    names = set()
    for _, field, spec, _ in string.Formatter().parse(text_or_questions):
        if field is not None:
            if not field.isidentifier():
                raise ValueError(f"{{{field}}} in {text_or_questions!r:.80} is not a value's name")
            if "{" in (spec or "") or any(int(n) > MAX_FORMAT_NUMBER
                                          for n in re.findall(r"\d+", spec or "")):
                raise ValueError(f"{{{field}:{spec:.20}}} in {text_or_questions!r:.80}: a width or "
                                 f"precision above {MAX_FORMAT_NUMBER} (or a {{field}} inside the "
                                 "format) is not a quiz's number format; write e.g. {name:.2f}")
            names.add(field)
    return names


def fill(questions: list[dict], values: dict) -> list[dict]:
    """The quiz with its {placeholders} replaced by the lesson's values, as jupyterquiz reads it."""
    missing = placeholders(questions) - set(values)
    if missing:
        raise KeyError(f"the quiz needs the values {sorted(missing)}, which the lesson has not "
                       f"glued: glue them before the quiz (lib.book.glue) or pass them to "
                       f"lib.quiz.show(..., name=value)")
    out = []
    for q in questions:
        out.append({
            "question": q["question"].format(**values),
            "type": q.get("type", "multiple_choice"),
            "answers": [{"answer": a["answer"].format(**values), "correct": a["correct"],
                         "feedback": a["feedback"].format(**values)} for a in q["answers"]],
        })
    return out


def show(lesson: str, **values) -> None:
    """Draw the lesson's quiz, its numbers taken from what the lesson glued (and `values`)."""
    from jupyterquiz import display_quiz

    from .book import glued

    questions = fill(load(lesson), {**glued(), **values})
    display_quiz(questions, shuffle_answers=True, colors=COLORS, max_width=720)
