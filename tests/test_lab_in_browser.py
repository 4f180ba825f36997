"""Lesson 01 in JupyterLab, in a real browser, as a learner runs it.

`jupyter lab` starts on a free local port with the project's settings
(binder/lab-settings/overrides.json: lessons open as Jupytext notebooks, as `make lab` and
Binder set it up), headless Chromium opens lessons/01_next_token_task.md with the default viewer
for Markdown, runs all cells and waits for the kernel; every code cell must have run and none
may show an error. The server is shut down afterwards. A screenshot goes to
_build/screenshots/jupyterlab_lesson_01.png.

Marked `browser` (run by `make browser-test`, after `make book`, and in CI). Needs chromium and
chromedriver (Debian packages) and the corpus (COURSE_DATA_DIR or a download); without them it
is skipped, unless COURSE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = "lessons/01_next_token_task.md"
SETTINGS = ROOT / "binder" / "lab-settings"
REQUIRED = os.environ.get("COURSE_REQUIRE_BROWSER") == "1"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    missing = [p for p in ("chromium", "chromedriver") if not shutil.which(p)]
    if missing:
        reason = f"{', '.join(missing)} not found (apt-get install chromium chromium-driver)"
        pytest.fail(reason) if REQUIRED else pytest.skip(reason)
    home = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_DATA_DIR": str(home / "data")}
    # The kernel finds the course's kernelspec through the environment's own share/jupyter.
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
         f"--LabApp.app_settings_dir={SETTINGS}",
         f"--LabApp.user_settings_dir={home / 'user-settings'}",
         f"--LabApp.workspaces_dir={home / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
         f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}"],  # not in lessons/
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(home / "lab.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                pytest.fail("jupyter lab exited:\n" + (home / "lab.log").read_text()[-3000:])
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer in 2 minutes")
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# What the page's app reports about the open notebook: per code cell, its execution count and
# whether any output is an error; and whether the kernel is busy.
STATE = """
const panel = window.jupyterapp.shell.currentWidget;
if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
const cells = [];
for (const cell of panel.content.model.cells) {
  if (cell.type !== 'code') continue;
  const outputs = cell.outputs.toJSON();
  cells.push([cell.executionCount, outputs.filter(o => o.output_type === 'error')
                                       .map(o => o.ename + ': ' + o.evalue)]);
}
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
return {path: panel.context.path,
        status: kernel ? kernel.status : 'none', cells: cells};
"""


def test_lesson_01_runs_in_jupyterlab_as_a_notebook(lab):
    from helpers import chromium_driver

    url, token = lab
    driver = chromium_driver()
    try:
        driver.set_script_timeout(120)
        driver.get(f"{url}/lab?token={token}")
        for _ in range(240):
            if driver.execute_script("return !!(window.jupyterapp && window.jupyterapp.shell)"):
                break
            time.sleep(0.5)
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.jupyterapp.restored.then(() => window.jupyterapp.commands"
            f".execute('docmanager:open', {{path: '{LESSON}'}})).then(() => done(true), e => done(String(e)));")
        state = None
        for _ in range(240):  # the notebook opens and its kernel starts
            state = driver.execute_script(STATE)
            if state and state["cells"] and state["status"] == "idle":
                break
            time.sleep(0.5)
        assert state and state["path"] == LESSON and state["cells"], state
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.jupyterapp.commands.execute('notebook:run-all-cells').then(() => done(true), e => done(String(e)));")
        deadline = time.time() + 600
        while time.time() < deadline:
            time.sleep(1)
            state = driver.execute_script(STATE)
            finished = all(count for count, _ in state["cells"])
            if state["status"] == "idle" and (finished or any(e for _, e in state["cells"])):
                break
        shots = ROOT / "_build" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shots / "jupyterlab_lesson_01.png"))
    finally:
        driver.quit()
    assert not (ROOT / "lessons" / ".ipynb_checkpoints").exists(), "the test left files in lessons/"
    errors = [e for _, errs in state["cells"] for e in errs]
    assert not errors, errors
    not_run = [i for i, (count, _) in enumerate(state["cells"]) if not count]
    assert not not_run, f"code cells {not_run} of {len(state['cells'])} did not run"
