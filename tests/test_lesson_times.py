"""The landing page's lesson times (book/_ext/lesson_times.py): the cache's record first, then
the one committed with the course, then one sentence instead of an empty table."""

import json
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lesson_times():
    return load_script("book/_ext/lesson_times.py")


@pytest.fixture
def lessons(tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "01_first.md").write_text("---\njupytext: {}\n---\n\n# The first lesson\n\nText.\n")
    (folder / "02_second.md").write_text("# The second lesson\n")
    return folder


def entry(seconds, cold=True, machine="2 CPU cores (x86_64)", date="2026-01-02"):
    return {"seconds": seconds, "cells": 3, "cold_cache": cold, "machine": machine, "date": date}


def write(path: Path, record) -> Path:
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


def test_the_cache_record_comes_first(lesson_times, lessons, tmp_path):
    cache = write(tmp_path / "cache.json", {"01_first.md": entry(12.4)})
    committed = write(tmp_path / "committed.json", {"01_first.md": entry(99.0, machine="other")})
    entries, source = lesson_times.choose_record(cache, committed, lessons)
    assert source == "cache" and entries["01_first.md"]["seconds"] == 12.4
    text = lesson_times.lesson_times_markdown(cache, committed, lessons)
    assert "| The first lesson | 12 | empty (cold)" in text
    assert "2 CPU cores (x86_64) on 2026-01-02" in text and "last `make test`" in text
    assert "other" not in text


def test_the_committed_record_when_the_cache_has_none(lesson_times, lessons, tmp_path):
    committed = write(tmp_path / "committed.json",
                      {"02_second.md": entry(30, cold=False), "01_first.md": entry(61.6)})
    text = lesson_times.lesson_times_markdown(tmp_path / "missing.json", committed, lessons)
    rows = [line for line in text.splitlines() if line.startswith("| The ")]
    assert rows == ["| The first lesson | 62 | empty (cold): trains its runs |",
                    "| The second lesson | 30 | warm: loads its runs |"]
    assert "`book/lesson-times.json`" in text and "no record of its own" in text


@pytest.mark.parametrize("broken", ["{not json", "[]", json.dumps({"01_first.md": {"seconds": 1}}),
                                    json.dumps({"09_gone.md": entry(5)})])
def test_a_broken_or_stale_cache_record_falls_back(lesson_times, lessons, tmp_path, broken):
    cache = write(tmp_path / "cache.json", broken)
    committed = write(tmp_path / "committed.json", {"01_first.md": entry(7)})
    assert lesson_times.choose_record(cache, committed, lessons)[1] == "committed"


def test_no_record_says_so_in_one_sentence(lesson_times, lessons, tmp_path):
    text = lesson_times.lesson_times_markdown(tmp_path / "a.json", tmp_path / "b.json", lessons)
    assert "|" not in text and len(text.splitlines()) == 1 and "No lesson times are recorded" in text


def test_the_committed_record_is_well_formed_when_there_is_one(lesson_times):
    """book/lesson-times.json, once committed, names lessons that exist, each with its numbers."""
    if not lesson_times.COMMITTED.exists():
        pytest.skip("no committed record yet")
    raw = json.loads(lesson_times.COMMITTED.read_text())
    assert raw and lesson_times.read_record(lesson_times.COMMITTED) == raw
