"""Helpers the tests share: a text they make themselves, tiny configs, running lib's
command lines as a user does (in a subprocess), and loading the project's scripts that are not
in a package (benchmarks/, book/_ext/). Fixtures live in conftest.py."""

import importlib.util
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from lib.model import GPTConfig
from lib.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str):
    """A script of the project that is not in a package (`benchmarks/muon_precision.py`,
    `book/_ext/colab.py`), loaded as a module named after its file."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WORDS = "the king and queen of love shall speak to me now my lord good night sweet prince".split()


def make_text(n_words: int = 3000, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_words // 8):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(8)).capitalize() + ".")
    return "\n".join(lines) + "\n"


def tiny_model_config(vocab_size: int, **overrides) -> GPTConfig:
    return GPTConfig(**{**dict(vocab_size=vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32),
                        **overrides})


def tiny_train_config(**overrides) -> TrainConfig:
    base = dict(max_steps=30, batch_size=8, lr=3e-3, warmup_steps=5, eval_interval=10,
                eval_batches=2, log_interval=5, device="cpu", progress=False, seed=0)
    return TrainConfig(**{**base, **overrides})


TINY = ["--block-size", "16", "--n-layer", "2", "--n-head", "2", "--n-embd", "32",
        "--batch-size", "8", "--warmup-steps", "5", "--eval-interval", "20", "--eval-batches", "2",
        "--log-interval", "5", "--device", "cpu", "--no-progress", "--seed", "0"]


def run(module, *args, timeout=120, env=None, **kw):
    env = {**(os.environ if env is None else env), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def _default_ctrl_c():
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT
    # (no KeyboardInterrupt then); nohup starts them with SIGHUP ignored, which a run keeps
    # ignoring on purpose. A process in a terminal has both at their defaults: tests that press
    # Ctrl-C or close the terminal must not depend on how pytest was run.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def start(module, *args, **kw):
    """Start `python -m module args` with pipes, as a user in a terminal would (Ctrl-C works)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    preexec = _default_ctrl_c if os.name == "posix" else None
    return subprocess.Popen([sys.executable, "-m", module, *args], env=env, preexec_fn=preexec,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def chromium_driver(width: int = 1280, height: int = 900):
    """Debian's headless chromium through its chromedriver (nothing downloads a browser), with
    the browser console's messages kept for the test to read."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    driver.set_page_load_timeout(60)
    return driver
