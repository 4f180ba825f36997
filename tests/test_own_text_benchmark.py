"""benchmarks/own_text.py, small (CI's version of the gigabyte run): the whole data path on a
50 MB corpus, as real processes. Its memory goals are checked here; its speeds are not (a busy
machine changes them), they are only recorded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RssAnon is Linux's")
def test_the_data_path_on_50_mb(tmp_path):
    out = tmp_path / "own.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_TMP": str(tmp_path)}
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "own_text.py"), "--mb", "50",
                          "--bpe-mb", "5", "--bpe-vocab", "512", "--steps", "300", "--rounds", "2",
                          "--round-steps", "3", "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["prepare"]["char"]["mb"] >= 50 and got["prepare"]["bpe"]["mb"] <= 5
    # streamed: the ids of 50 MB held as int64 alone would take 400 MB beside torch's own
    assert got["prepare"]["char"]["peak_anon_mb"] < 450
    assert set(got["train"]["anon_mb"]) == {"1", "100", "200", "300"}
    assert got["goals"]["train_anon_flat_within_32_mb"], got["train"]
    assert got["speed"]["memory_map_over_in_memory"] > 0
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # its temporary folder is gone
