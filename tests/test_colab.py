"""The lessons as Colab notebooks (book/_ext/colab.py): what they hold, where their buttons
point, and what their set-up cell does with and without the course installed."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/gpt-course/how-a-gpt-learns-to-write"


colab = load_script("book/_ext/colab.py")
LESSONS = re.findall(r"file: (lessons/\S+)", (ROOT / "_toc.yml").read_text())


def test_the_book_links_the_repository_the_notebooks_are_made_for():
    assert f"url: {REPO}\n" in (ROOT / "_config.yml").read_text()
    assert "colab: book/_ext" in (ROOT / "_config.yml").read_text()


def test_every_lesson_becomes_a_notebook_with_the_set_up_cell_first(tmp_path):
    import jupytext
    import nbformat

    written = colab.write_notebooks(ROOT, ["book/intro", *LESSONS], tmp_path, REPO)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [f"{d}.ipynb" for d in LESSONS]
    for docname, path in zip(LESSONS, written):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        setup, *code = [c for c in nb.cells if c.cell_type == "code"]
        assert setup.metadata["tags"] == ["colab-setup"] and REPO in setup.source
        lesson = [c for c in jupytext.read(ROOT / f"{docname}.md").cells if c.cell_type == "code"]
        assert [c.source for c in code] == [c.source for c in lesson]  # the lesson, unchanged
        assert not any(c.get("outputs") for c in code)
        assert nb.metadata["kernelspec"]["name"] == "python3" and "jupytext" not in nb.metadata
        assert not any("{literalinclude}" in c.source for c in nb.cells)  # shown as code instead


def test_lib_code_the_book_includes_is_written_into_the_notebook():
    md = "Before.\n\n```{literalinclude} ../lib/model.py\n:pyobject: GPT.forward\n```\n\nAfter."
    out = colab.inline_includes(md, ROOT / "lessons")
    assert out.startswith("Before.\n\n```python\ndef forward(self") and out.endswith("\n\nAfter.")
    assert "*`GPT.forward` in `lib/model.py`*" in out


def test_the_button_points_at_the_notebook_the_build_writes():
    url = colab.colab_url(REPO + "/", "lessons/01_next_token_task")
    assert url == ("https://colab.research.google.com/github/gpt-course/how-a-gpt-learns-to-write"
                   "/blob/notebooks/lessons/01_next_token_task.ipynb")


RUN_SETUP = """
import os, subprocess, sys
calls = []
subprocess.run = lambda args, **kw: calls.append(args)
os.chdir = lambda path: calls.append(["chdir", path])
if sys.argv[1] in ("missing", "clone"):
    sys.modules["lib"] = None  # as on a fresh Colab runtime: `import lib` fails
if sys.argv[1] == "other":
    sys.path.insert(0, "other")  # another project's package named lib, with a course module
exec(sys.argv[2])
stale = [m for m in sys.modules if m == "lib" or m.startswith("lib.")]
print([calls, stale, sys.path[0]])
"""


def _package(folder: Path, init: str) -> Path:
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "__init__.py").write_text(init)
    (folder / "lib" / "course.py").write_text("PRESETS = {}\n")
    (folder / "lessons").mkdir()
    return folder


@pytest.mark.parametrize("course", ["present", "missing", "other", "clone"])
def test_the_set_up_cell_installs_the_course_only_where_it_is_missing(course, tmp_path):
    """Installed: nothing to do. Missing, or another package named lib in its place: clone,
    install, and put this course's lib first. Run inside a clone's lessons/ folder: that clone."""
    _package(tmp_path / "other", "")
    clone = _package(tmp_path / "clone", f'COURSE = "{colab.COURSE}"\n')
    cwd = clone / "lessons" if course == "clone" else tmp_path
    res = subprocess.run([sys.executable, "-c", RUN_SETUP, course, colab.setup_cell(REPO)],
                         capture_output=True, text=True, cwd=cwd, timeout=120)
    assert res.returncode == 0, res.stderr
    calls, stale, first = eval(res.stdout)
    if course == "present":
        assert calls == []
        return
    where = str(clone if course == "clone" else tmp_path / "how-a-gpt-learns-to-write")
    if course != "clone":
        assert calls.pop(0) == ["git", "clone", "--depth", "1", REPO, where]
    install, chdir = calls
    assert install[1:] == ["-m", "pip", "install", "--quiet", "-e", where]
    assert chdir == ["chdir", os.path.join(where, "lessons")]
    assert stale == [] and first == where  # the other lib forgotten, this course's found first


def test_the_course_s_lib_names_the_course_the_cell_looks_for():
    import lib

    assert lib.COURSE == colab.COURSE
