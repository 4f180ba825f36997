"""The landing page's lesson times (book/_ext/lesson_times.py): the cache's record first, then
the one committed with the course, then one sentence instead of an empty table; a row for every
lesson; the sentence that sums the record up; and the plugin that records each lesson's time
and the runs it trained (tests/lesson_times_plugin.py)."""

import json
import os
import re
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lesson_times():
    return load_script("book/_ext/lesson_times.py")


@pytest.fixture(scope="module")
def plugin():
    return load_script("tests/lesson_times_plugin.py")


@pytest.fixture
def lessons(tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "01_first.md").write_text("---\njupytext: {}\n---\n\n# The first lesson\n\nText.\n")
    (folder / "02_second.md").write_text("# The second lesson\n")
    return folder


def entry(seconds, runs=1, machine="2 CPU cores (x86_64)", date="2026-01-02", **more):
    return {"seconds": seconds, "cells": 3, "runs_trained": runs, "machine": machine,
            "date": date, **more}


def write(path: Path, record) -> Path:
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


def rows(text):
    return [line for line in text.splitlines() if line.startswith("| The ")]


def test_the_cache_record_comes_first(lesson_times, lessons, tmp_path):
    cache = write(tmp_path / "cache.json", {"01_first.md": entry(12.4, runs=2)})
    committed = write(tmp_path / "committed.json", {"01_first.md": entry(99.0, machine="other")})
    entries, source = lesson_times.choose_record(cache, committed, lessons)
    assert source == "cache" and entries["01_first.md"]["seconds"] == 12.4
    text = lesson_times.lesson_times_markdown(cache, committed, lessons)
    assert "| The first lesson | 12 | 2 |  |" in text
    assert "2 CPU cores (x86_64) on 2026-01-02" in text and "last `make test`" in text
    assert "other" not in text


def test_the_committed_record_when_the_cache_has_none(lesson_times, lessons, tmp_path):
    committed = write(tmp_path / "committed.json",
                      {"02_second.md": entry(30, runs=0), "01_first.md": entry(61.6, warm_seconds=4.2)})
    text = lesson_times.lesson_times_markdown(tmp_path / "missing.json", committed, lessons)
    assert rows(text) == ["| The first lesson | 62 | 1 | 4 |",
                          "| The second lesson | 30 | 0 |  |"]
    assert "`book/lesson-times.json`" in text and "no record of its own" in text


def test_a_lesson_missing_from_the_record_has_a_row_that_says_so(lesson_times, lessons, tmp_path):
    (lessons / "10_new.md").write_text("# A new lesson\n")  # any set of lessons, not a fixed list
    cache = write(tmp_path / "cache.json", {"02_second.md": entry(8, runs=0)})
    text = lesson_times.lesson_times_markdown(cache, tmp_path / "none.json", lessons)
    table = [line for line in text.splitlines() if line.startswith("| ") and "Lesson" not in line]
    assert table == ["| The first lesson | not in the record | | |",
                     "| The second lesson | 8 | 0 |  |",
                     "| A new lesson | not in the record | | |"]


def test_an_old_record_without_a_count_per_lesson_says_it_was_not_recorded(lesson_times, lessons,
                                                                            tmp_path):
    old = {"seconds": 20.0, "cells": 3, "cold_cache": True, "machine": "m", "date": "2026-01-01"}
    cache = write(tmp_path / "cache.json", {"01_first.md": old})
    assert rows(lesson_times.lesson_times_markdown(cache, tmp_path / "no.json", lessons))[0] == \
        "| The first lesson | 20 | not recorded |  |"


@pytest.mark.parametrize("broken", ["{not json", "[]", json.dumps({"01_first.md": {"seconds": 1}}),
                                    json.dumps({"09_gone.md": entry(5)}),
                                    json.dumps({"01_first.md": entry(5, warm_seconds="fast")})])
def test_a_broken_or_stale_cache_record_falls_back(lesson_times, lessons, tmp_path, broken):
    cache = write(tmp_path / "cache.json", broken)
    committed = write(tmp_path / "committed.json", {"01_first.md": entry(7)})
    assert lesson_times.choose_record(cache, committed, lessons)[1] == "committed"


def test_no_record_says_so_in_one_sentence(lesson_times, lessons, tmp_path):
    text = lesson_times.lesson_times_markdown(tmp_path / "a.json", tmp_path / "b.json", lessons)
    assert "|" not in text and len(text.splitlines()) == 1 and "No lesson times are recorded" in text
    summary = lesson_times.lesson_times_summary(tmp_path / "a.json", tmp_path / "b.json", lessons)
    assert summary.startswith("No lesson times are recorded")


def test_the_summary_says_what_the_record_shows(lesson_times, lessons, tmp_path):
    (lessons / "03_third.md").write_text("# The third lesson\n")
    record = {"01_first.md": entry(12.1, runs=0), "02_second.md": entry(201.3, runs=3)}
    text = lesson_times.lesson_times_summary(write(tmp_path / "c.json", record),
                                             tmp_path / "none.json", lessons)
    assert "from 12 seconds to about 3.4 minutes each on 2 CPU cores (x86_64)" in text
    assert "lesson 2 took more than 2 minutes and trained runs of its own" in text
    assert "loads the runs it trained from the cache" in text  # no time run again: no number
    assert text.endswith("The record has no time for lesson 3.")
    record["02_second.md"]["warm_seconds"] = 9.5
    record["03_third.md"] = entry(5, runs=0)
    text = lesson_times.lesson_times_summary(write(tmp_path / "c.json", record),
                                             tmp_path / "none.json", lessons)
    assert "Run again with those runs in the cache, it took 10 seconds or less." in text
    assert "no time" not in text
    fast = {"01_first.md": entry(12.1), "02_second.md": entry(30)}
    assert "every one within 2 minutes" in lesson_times.lesson_times_summary(
        write(tmp_path / "c.json", fast), tmp_path / "none.json", lessons)


def test_the_summary_does_not_say_trained_when_the_record_does_not_know(lesson_times, lessons,
                                                                       tmp_path):
    old = {"seconds": 161.3, "cells": 3, "cold_cache": True, "machine": "m", "date": "d"}
    text = lesson_times.lesson_times_summary(write(tmp_path / "c.json", {"02_second.md": old}),
                                             tmp_path / "none.json", lessons)
    assert "lesson 2 took more than 2 minutes." in text and "trained runs" not in text


def test_the_intro_says_what_the_committed_record_shows(lesson_times):
    """book/intro.md glues the summary (no typed claim about how long lessons take), and the
    summary of the committed record names exactly the lessons over the budget in it."""
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "{glue:text}`lesson_times_summary`" in intro and "lesson_times_summary(" in intro
    assert "two minutes or less" not in intro
    record = lesson_times.read_record(lesson_times.COMMITTED)
    if not record:
        pytest.skip("no committed record")
    text = lesson_times.lesson_times_summary(ROOT / "no-such-record.json")
    slow = sorted(str(int(n[:2])) for n, e in record.items() if e["seconds"] > lesson_times.BUDGET)
    named = re.search(r"lessons? ([\d, and]+) took more than", text)
    assert sorted(re.findall(r"\d+", named.group(1)) if named else []) == slow
    longest = max(e["seconds"] for e in record.values())
    assert f"{longest / 60:.1f} minutes" in text or f"{longest:.0f} seconds" in text


def test_the_committed_record_is_well_formed_when_there_is_one(lesson_times):
    """book/lesson-times.json, once committed, names lessons that exist, each with its numbers."""
    if not lesson_times.COMMITTED.exists():
        pytest.skip("no committed record yet")
    raw = json.loads(lesson_times.COMMITTED.read_text())
    assert raw and lesson_times.read_record(lesson_times.COMMITTED) == raw


# --------------------------------------------------------------------------- the plugin


def test_runs_trained_counts_new_and_rewritten_runs_only(plugin, tmp_path):
    runs = tmp_path / "runs"
    assert plugin.run_cache_state(runs) == {}
    for key in ("a", "b"):
        (runs / key).mkdir(parents=True)
        (runs / key / "ckpt.pt").write_bytes(b"run")
    (runs / "half").mkdir()  # a folder without a checkpoint is no run
    before = plugin.run_cache_state(runs)
    assert set(before) == {"a", "b"}
    assert plugin.runs_trained(before, plugin.run_cache_state(runs)) == 0  # loaded: nothing written
    (runs / "c").mkdir()
    (runs / "c" / "ckpt.pt").write_bytes(b"new run")
    os.utime(runs / "a" / "ckpt.pt", ns=(1, before["a"] + 10**9))  # a run trained again
    assert plugin.runs_trained(before, plugin.run_cache_state(runs)) == 2


def test_a_warm_run_is_kept_beside_the_cold_one(plugin):
    cold = entry(150.0, runs=3)
    warm = entry(6.0, runs=0)
    assert plugin.merge_entry(cold, warm) == {**cold, "warm_seconds": 6.0}
    assert plugin.merge_entry(None, warm) == warm  # never trained anything: its own time
    assert plugin.merge_entry(cold, entry(140.0, runs=2)) == entry(140.0, runs=2)  # cold again
    assert plugin.merge_entry(cold, entry(6.0, runs=0, machine="other")) == entry(6.0, runs=0, machine="other")
    old = {"seconds": 20.0, "cells": 3, "cold_cache": True, "machine": "2 CPU cores (x86_64)", "date": "d"}
    assert plugin.merge_entry(old, warm) == warm  # an old entry does not say it trained runs
