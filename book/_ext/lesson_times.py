"""The landing page's table of what each lesson costs, and the sentence that sums it up
(book/intro.md runs both).

The times come from the first of these records that holds any lesson of the course:

1. `lesson-times.json` in the course's cache folder, written by tests/lesson_times_plugin.py
   whenever `pytest --nbval lessons` (`make test`) runs every cell of a lesson and they pass:
   the times of the machine that builds the book (CI runs the tests before it builds the book);
2. `book/lesson-times.json`, committed with the course: a full run on a named machine, so that a
   book built without running the tests first still shows what each lesson costs.

Both have the same format: `{"01_next_token_task.md": {"seconds": 29.0, "cells": 25,
"runs_trained": 2, "machine": "2 CPU cores (x86_64)", "date": "2026-11-22"}, ...}`, where
`runs_trained` counts the runs that the lesson itself trained (0: every run it used came from
the cache), and an entry may add `warm_seconds`: a later full run of the lesson on the same
machine that trained nothing. Older records have a `cold_cache` flag of the whole test session
instead of `runs_trained`: the table then says that the lesson's own count was not recorded.
With no record, the page says so in one sentence instead of showing an empty table. Every
lesson of the course has a row; one that the record does not hold says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

BOOK = Path(__file__).absolute().parents[1]
COMMITTED = BOOK / "lesson-times.json"
LESSONS = BOOK.parent / "lessons"
BUDGET = 120.0  # seconds: what the course allows a lesson with an empty cache on 2 cores


def course_lessons(lessons: Path = LESSONS) -> list[str]:
    """The lessons' file names (NN_slug.md), in order: whatever lessons the folder holds."""
    return sorted(p.name for p in Path(lessons).glob("[0-9][0-9]_*.md"))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def read_record(path: Path, lessons: Path = LESSONS) -> dict[str, dict]:
    """The entries of a record that are well formed and name a lesson that exists; {} when the
    file is missing or unreadable."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    kept = {}
    for name, entry in record.items():
        if (isinstance(entry, dict) and _number(entry.get("seconds"))
                and (isinstance(entry.get("runs_trained"), int)
                     or isinstance(entry.get("cold_cache"), bool))
                and ("warm_seconds" not in entry or _number(entry["warm_seconds"]))
                and entry.get("machine") and entry.get("date") and (lessons / name).is_file()):
            kept[name] = entry
    return kept


def choose_record(cache_file: Path, committed_file: Path = COMMITTED,
                  lessons: Path = LESSONS) -> tuple[dict[str, dict], str | None]:
    """(entries, where they come from): the cache's record when it holds any lesson, else the
    committed one, else ({}, None)."""
    for path, source in ((cache_file, "cache"), (committed_file, "committed")):
        entries = read_record(path, lessons)
        if entries:
            return entries, source
    return {}, None


def lesson_title(path: Path) -> str:
    match = re.search(r"^# (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return match.group(1).strip() if match else path.stem


def _runs(entry: dict) -> str:
    n = entry.get("runs_trained")
    if n is None:
        return "not recorded"
    return str(n)


def lesson_times_markdown(cache_file: Path, committed_file: Path = COMMITTED,
                          lessons: Path = LESSONS) -> str:
    """The table of lesson times in Markdown, a row for every lesson (one the record lacks says
    so), with a line that says where the times come from (which record, machine, date), or one
    sentence when no record holds any lesson."""
    entries, source = choose_record(cache_file, committed_file, lessons)
    if not entries:
        return ("*No lesson times are recorded yet: `make test` records them on the machine it "
                "runs on, and the next build of the book shows them.*")
    lines = ["| Lesson | Seconds | Runs it trained | Seconds, run again |", "|---|--:|---|--:|"]
    for name in course_lessons(lessons):
        title = lesson_title(lessons / name)
        entry = entries.get(name)
        if entry is None:
            lines.append(f"| {title} | not in the record | | |")
            continue
        warm = f"{entry['warm_seconds']:.0f}" if "warm_seconds" in entry else ""
        lines.append(f"| {title} | {entry['seconds']:.0f} | {_runs(entry)} | {warm} |")
    where = "; ".join(sorted({f"{e['machine']} on {e['date']}" for e in entries.values()}))
    if source == "cache":
        origin = ("recorded by the last `make test` on the machine that built this book "
                  "(`lesson-times.json` in the course's cache folder)")
    else:
        origin = ("the record committed with the course (`book/lesson-times.json`): the "
                  "machine that built this book had no record of its own")
    return "\n".join(lines) + f"\n\nMeasured with {where}; {origin}."


def _seconds(s: float) -> str:
    """A time as a reader says it: "12 seconds", "about 3.4 minutes"."""
    return f"{s:.0f} seconds" if s < 100 else f"about {s / 60:.1f} minutes"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def lesson_times_summary(cache_file: Path, committed_file: Path = COMMITTED,
                         lessons: Path = LESSONS, budget: float = BUDGET) -> str:
    """One or two sentences that say what the record of lesson times shows: the range, which
    lessons took longer than `budget` and whether they trained runs, what running them again
    with a warm cache took where the record holds it, and which lessons it lacks."""
    entries, _ = choose_record(cache_file, committed_file, lessons)
    if not entries:
        return "No lesson times are recorded yet (the table below says how to record them)."
    number = {name: str(int(name[:2])) for name in course_lessons(lessons)}
    times = [e["seconds"] for e in entries.values()]
    first = (f"In the record of lesson times at the end of this page, the lessons took from "
             f"{_seconds(min(times))} to {_seconds(max(times))} each on "
             f"{_and(sorted({e['machine'] for e in entries.values()}))}")
    slow = sorted((n for n, e in entries.items() if e["seconds"] > budget), key=number.get)
    if not slow:
        text = f"{first}: every one within {budget / 60:.0f} minutes."
    else:
        which = _and([number[n] for n in slow])
        lesson = "lesson" if len(slow) == 1 else "lessons"
        text = f"{first}; {lesson} {which} took more than {budget / 60:.0f} minutes"
        counted = [entries[n].get("runs_trained") for n in slow]
        if all(c is not None and c > 0 for c in counted):
            text += " and trained runs of their own" if len(slow) > 1 else " and trained runs of its own"
        warm = [entries[n]["warm_seconds"] for n in slow if "warm_seconds" in entries[n]]
        if len(warm) == len(slow):
            text += (f". Run again with those runs in the cache, {'it' if len(slow) == 1 else 'they'}"
                     f" took {_seconds(max(warm))} or less.")
        else:
            text += (". Run again, a lesson loads the runs it trained from the cache instead "
                     "of training them.")
    missing = [number[n] for n in course_lessons(lessons) if n not in entries]
    if missing:
        text += (f" The record has no time for lesson{'s' if len(missing) > 1 else ''} "
                 f"{_and(missing)}.")
    return text
