"""Lets `pytest --nbval lessons` run the MyST-markdown lessons cell by cell.

nbval collects only `*.ipynb`; the lessons are MyST text notebooks (`lessons/*.md`). This
collector reads them with jupytext and hands the notebook to nbval's own machinery, so each
code cell becomes one test, run in order in one kernel. Text notebooks store no outputs, so
nothing is compared: a cell fails when it raises (the lessons assert their own claims).

Cell tags: `skip-execution` (the book's tag for "do not run") is mapped to nbval's skip.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

try:
    import jupytext
    import nbval.plugin as nbval_plugin
except ImportError:  # nbval or jupytext missing: leave collection to pytest
    nbval_plugin = None


def _is_myst_notebook(path: Path) -> bool:
    if path.suffix != ".md":
        return False
    with open(path, encoding="utf-8") as f:
        head = f.read(2000)
    return head.startswith("---") and "format_name: myst" in head


def read_lesson(path: Path):
    """A MyST lesson as an nbformat v4 notebook, with the book's tags mapped to nbval's."""
    nb = jupytext.read(path, fmt="md:myst")
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "skip-execution" in tags:
            cell.metadata["tags"] = [*tags, "nbval-skip"]
    return nb


if nbval_plugin is not None:

    class MystNotebook(nbval_plugin.IPyNbFile):
        """nbval's notebook collector, reading a MyST text notebook instead of JSON."""

        def collect(self):
            nb = read_lesson(Path(self.fspath))
            with mock.patch.object(nbval_plugin.nbformat, "read", lambda *a, **k: nb):
                yield from super().collect()

    def pytest_collect_file(file_path: Path, parent: pytest.Collector):
        opt = parent.config.option
        if (opt.nbval or opt.nbval_lax) and _is_myst_notebook(file_path):
            return MystNotebook.from_parent(parent, path=file_path)
        return None


# --------------------------------------------------------------------------- lesson times
# Each full, passing run of a lesson under nbval records its wall time, so the book's landing
# page can say what each lesson costs on the machine that built it. The record lives in the
# course's cache folder (lib.data.cache_dir() / "lesson-times.json").

_LESSONS: dict[str, dict] = {}


def pytest_sessionstart(session):
    from lib.data import cache_dir

    runs = cache_dir() / "runs"
    session.config._course_cold = not (runs.exists() and any(runs.iterdir()))


def pytest_collection_finish(session):
    for item in session.items:
        if isinstance(getattr(item, "parent", None), MystNotebook if nbval_plugin else ()):
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
