"""The landing page's table of what each lesson costs (book/intro.md runs this).

The times come from the first of these records that holds any lesson of the course:

1. `lesson-times.json` in the course's cache folder, written by the root conftest.py whenever
   `pytest --nbval lessons` (`make test`) runs every cell of a lesson and they pass: the times
   of the machine that builds the book (CI runs the tests before it builds the book);
2. `book/lesson-times.json`, committed with the course: a full run on a named machine, so that a
   book built without running the tests first still shows what each lesson costs.

Both have the same format: `{"01_next_token_task.md": {"seconds": 29.0, "cells": 25,
"cold_cache": true, "machine": "2 CPU cores (x86_64)", "date": "2026-11-22"}, ...}`. With
neither, the page says so in one sentence instead of showing an empty table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

BOOK = Path(__file__).absolute().parents[1]
COMMITTED = BOOK / "lesson-times.json"
LESSONS = BOOK.parent / "lessons"


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
        if (isinstance(entry, dict) and isinstance(entry.get("seconds"), (int, float))
                and isinstance(entry.get("cold_cache"), bool)
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


def lesson_times_markdown(cache_file: Path, committed_file: Path = COMMITTED,
                          lessons: Path = LESSONS) -> str:
    """The table of lesson times in Markdown, with a line that says where they come from (which
    record, machine, date), or one sentence when no record holds any lesson."""
    entries, source = choose_record(cache_file, committed_file, lessons)
    if not entries:
        return ("*No lesson times are recorded yet: `make test` records them on the machine it "
                "runs on, and the next build of the book shows them.*")
    lines = ["| Lesson | Seconds | Run cache at the start |", "|---|--:|---|"]
    for name, entry in sorted(entries.items()):
        cache = "empty (cold): trains its runs" if entry["cold_cache"] else "warm: loads its runs"
        lines.append(f"| {lesson_title(lessons / name)} | {entry['seconds']:.0f} | {cache} |")
    where = "; ".join(sorted({f"{e['machine']} on {e['date']}" for e in entries.values()}))
    if source == "cache":
        origin = ("recorded by the last `make test` on the machine that built this book "
                  "(`lesson-times.json` in the course's cache folder)")
    else:
        origin = ("the record committed with the course (`book/lesson-times.json`): the "
                  "machine that built this book had no record of its own")
    return "\n".join(lines) + f"\n\nMeasured with {where}; {origin}."
