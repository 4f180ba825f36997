"""A pytest plugin: each full, passing run of a lesson under nbval records its wall time, and how
many runs that lesson trained itself, so the book's landing page can say what each lesson costs
on the machine that built it.

How many runs a lesson trained is read from the run cache (lib.data.cache_dir() / "runs"): a
run entry that appears or is rewritten between the lesson's first cell and its last was
trained by it. (A run the cache could not keep is not counted; another process training into
the same cache at the same time would be counted.) A lesson that trains nothing after one that
did, on the same machine, keeps the first run's time and adds its own as `warm_seconds`.

The record lives in the course's cache folder (lib.data.cache_dir() / "lesson-times.json");
book/_ext/lesson_times.py reads it. A run with the course's model swapped (COURSE_PRESET, as
`make test-swap` does) records nothing: it is not what readers run. Loaded by the root
conftest.py (`pytest_plugins`).
"""

from __future__ import annotations

from pathlib import Path

_LESSONS: dict[str, dict] = {}
_BEFORE: dict[str, dict[str, int]] = {}  # lesson -> the run cache when its first cell started


def run_cache_state(runs: Path) -> dict[str, int]:
    """Each cached run's key and the time its checkpoint was last written (ns)."""
    state = {}
    if runs.is_dir():
        for entry in runs.iterdir():
            try:
                state[entry.name] = (entry / "ckpt.pt").stat().st_mtime_ns
            except OSError:
                continue  # no checkpoint (yet): not a run
    return state


def runs_trained(before: dict[str, int], after: dict[str, int]) -> int:
    """Runs written between two states of the cache: new ones and rewritten ones."""
    return sum(1 for key, written in after.items() if before.get(key) != written)


def merge_entry(old: dict | None, new: dict) -> dict:
    """The record's entry for a lesson after a new full run of it (`new`: seconds, cells,
    runs_trained, machine, date): a run that trained nothing, after a recorded one that trained
    runs on the same machine, is kept beside it as `warm_seconds`; any other replaces it."""
    if (old and new["runs_trained"] == 0 and old.get("runs_trained", 0) > 0
            and old.get("machine") == new["machine"] and old.get("cells") == new["cells"]):
        return {**old, "warm_seconds": new["seconds"]}
    return dict(new)


def _lesson(item) -> str | None:
    name = Path(str(item.fspath)).name
    return name if name in _LESSONS else None


def _runs_dir() -> Path:
    from lib.data import cache_dir

    return cache_dir() / "runs"


def pytest_collection_finish(session):
    for item in session.items:
        if Path(str(item.fspath)).suffix == ".md":  # a lesson's cell, collected by conftest.py
            entry = _LESSONS.setdefault(Path(str(item.fspath)).name,
                                        {"cells": 0, "passed": 0, "seconds": 0.0})
            entry["cells"] += 1


def pytest_runtest_setup(item):
    name = _lesson(item)
    if name and name not in _BEFORE:
        _BEFORE[name] = run_cache_state(_runs_dir())


def pytest_runtest_teardown(item, nextitem):
    name = _lesson(item)
    if name and (nextitem is None or _lesson(nextitem) != name):  # the lesson's last cell
        _LESSONS[name]["runs_trained"] = runs_trained(_BEFORE[name], run_cache_state(_runs_dir()))


def pytest_runtest_logreport(report):
    name = Path(report.fspath).name if report.fspath else ""
    if name in _LESSONS and report.when == "call":
        _LESSONS[name]["seconds"] += report.duration
        _LESSONS[name]["passed"] += int(report.passed or report.skipped)


def pytest_sessionfinish(session, exitstatus):
    import datetime
    import json
    import os
    import platform

    done = {k: v for k, v in _LESSONS.items()
            if v["cells"] and v["passed"] == v["cells"] and "runs_trained" in v}
    if not done or os.environ.get("COURSE_PRESET"):
        return  # a run with the course's model swapped (make test-swap) is not what readers run
    from lib.data import cache_dir

    path = cache_dir() / "lesson-times.json"
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        record = {}
    import torch

    machine = f"{os.cpu_count()} CPU cores ({platform.machine()})"
    if torch.cuda.is_available():
        machine += f" and a {torch.cuda.get_device_name()} GPU"
    for name, entry in done.items():
        new = {"seconds": round(entry["seconds"], 1), "cells": entry["cells"],
               "runs_trained": entry["runs_trained"], "machine": machine,
               "date": datetime.date.today().isoformat()}
        old = record.get(name)
        record[name] = merge_entry(old if isinstance(old, dict) else None, new)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True))
