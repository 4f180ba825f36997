"""`import lib` works from any working directory once the course is installed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("where", ["/", "tmp", "root", "lessons", "venv_lib"])
def test_import_lib_from_anywhere(where, tmp_path):
    cwd = {
        "/": Path("/"),
        "tmp": tmp_path,
        "root": ROOT,
        "lessons": ROOT / "lessons",
        # a folder that holds its own `lib/`: the trap of setuptools' editable installs
        "venv_lib": tmp_path,
    }[where]
    if where == "venv_lib":
        (tmp_path / "lib").mkdir()
    out = subprocess.run(
        [sys.executable, "-c", "import lib.data, lib; print(lib.__file__)"],
        cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(out) == ROOT / "lib" / "__init__.py"


def test_importing_lib_prints_nothing():
    out = subprocess.run(
        [sys.executable, "-c", "import lib, lib.data, lib.plotting"],
        cwd="/", capture_output=True, text=True, check=True,
    )
    assert out.stdout == "" and out.stderr == ""


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COURSE_DATA_DIR"), reason="needs the corpus in COURSE_DATA_DIR")
def test_a_learner_installs_the_course_and_runs_lesson_01_outside_a_clone(tmp_path):
    """`pip install <repository>` (not editable) into a new virtual environment, then lesson 01
    as the Colab notebook the book publishes, executed by nbclient in a folder of its own.

    torch and the other dependencies come from this environment (a .pth line puts its
    site-packages after the new one's) instead of a download of several GB; pip still resolves
    lib's declared dependencies against them, and `pip check` must find nothing missing."""
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "course_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    res = subprocess.run([python, "-m", "pip", "install", "--quiet", str(ROOT)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([python, "-m", "pip", "check"], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and "gpt-course-lib" not in res.stdout, res.stdout

    elsewhere = tmp_path / "learner"
    elsewhere.mkdir()
    where = subprocess.run([python, "-c", "import lib; print(lib.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv), f"lib came from {where}, not the new environment"
    # The widgets' HTML and JavaScript are package data files: the install must carry them.
    show = ("from lib import widgets; from lib.model import GPTConfig; "
            "m, s = widgets.model_calculator({'x': GPTConfig()}); "
            "assert 'id=\"course-calc-' in m and 'function sizes' in s; "
            "m, s = widgets.sampling_explorer('p', ['a', 'rest'], [1.0], ['none'], "
            "{('none', 1.0): {'probs': [1.0, 0.0], 'kept': 1, 'text': 't'}}); "
            "assert 'course-sampling' in m and 'course-sampling' in s; "
            "from lib.records import load_records; assert load_records()")  # the recorded runs
    res = subprocess.run([python, "-c", show], cwd=elsewhere, env=env, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]

    colab = load_script("book/_ext/colab.py")
    import nbformat

    notebook = elsewhere / "01_next_token_task.ipynb"
    nbformat.write(colab.make_notebook(ROOT / "lessons" / "01_next_token_task.md",
                                       "https://github.com/gpt-course/how-a-gpt-learns-to-write"), notebook)
    execute = ("import sys, nbformat, nbclient; nb = nbformat.read(sys.argv[1], as_version=4); "
               "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3').execute(); "
               "nbformat.write(nb, sys.argv[1])")
    env["COURSE_CACHE_DIR"] = str(tmp_path / "cache")
    res = subprocess.run([python, "-c", execute, str(notebook)], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every cell ran"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    assert code[0].outputs == []  # the set-up cell found the course installed and did nothing
    assert sorted(p.name for p in elsewhere.iterdir()) == ["01_next_token_task.ipynb"]
