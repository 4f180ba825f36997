"""benchmarks/gpu_check.py: its dry mode runs on a CPU in seconds and writes the file the
Performance appendix reads, so the script a GPU session runs is known to work."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_dry_gpu_check_writes_every_part(tmp_path):
    out = tmp_path / "gpu-check.json"
    env = {**os.environ, "COURSE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("COURSE_REQUIRE_GPU", None)
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["dry"] and r["machine"]["device"] and r["seconds"] < r["budget_seconds"]
    tests = r["gpu_tests"]
    assert tests["files"] and tests["failed"] == 0 and tests["passed"] + tests["skipped"] >= 4
    run = r["course_run"]
    assert run["steps"] == 20 and run["val_loss"] > 0 and run["tokens_per_sec"] > 0
    assert any("The course's run: 20 steps" in line for line in run["said"])  # said before training
    assert run["verdict"] and run["verdict_text"]
    assert r["lessons"] == {"00_tiny.ipynb": {"exit_code": 0, "seconds": r["lessons"]["00_tiny.ipynb"]["seconds"],
                                           "passed": 2, "failed": 0, "skipped": 0}}


def test_without_a_gpu_the_real_check_refuses_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("there is a GPU here: the real check would run")
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path / "x.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "PyTorch sees no CUDA GPU" in proc.stderr
    assert not (tmp_path / "x.json").exists()
