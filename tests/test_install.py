"""`import lib` works from any working directory once the course is installed."""

import subprocess
import sys
from pathlib import Path

import pytest

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
