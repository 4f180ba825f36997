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


# Each passing run of a lesson records its wall time (the book's landing page shows it).
pytest_plugins = ["tests.lesson_times_plugin"]
