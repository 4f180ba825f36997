"""A pytest plugin: each full, passing run of a lesson under nbval records its wall time, so the
book's landing page can say what each lesson costs on the machine that built it.

The record lives in the course's cache folder (lib.data.cache_dir() / "lesson-times.json");
book/_ext/lesson_times.py reads it. A run with the course's model swapped (COURSE_PRESET, as
`make test-swap` does) records nothing: it is not what readers run. Loaded by the root
conftest.py (`pytest_plugins`).
"""

from __future__ import annotations

from pathlib import Path

_LESSONS: dict[str, dict] = {}


def pytest_sessionstart(session):
    from lib.data import cache_dir

    runs = cache_dir() / "runs"
    session.config._course_cold = not (runs.exists() and any(runs.iterdir()))


def pytest_collection_finish(session):
    for item in session.items:
        if Path(str(item.fspath)).suffix == ".md":  # a lesson's cell, collected by conftest.py
            entry = _LESSONS.setdefault(Path(str(item.fspath)).name, {"cells": 0, "passed": 0, "seconds": 0.0})
            entry["cells"] += 1


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

    done = {k: v for k, v in _LESSONS.items() if v["cells"] and v["passed"] == v["cells"]}
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
        record[name] = {"seconds": round(entry["seconds"], 1), "cells": entry["cells"],
                        "cold_cache": session.config._course_cold, "machine": machine,
                        "date": datetime.date.today().isoformat()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True))
