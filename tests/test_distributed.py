"""Data-parallel training with torchrun: 2 CPU processes (gloo) x batch B follow the loss
trajectory of 1 process x batch 2B, and a data-parallel run resumes from its checkpoint."""

import os
import subprocess
import sys

import pytest

from lib import checkpoint as ckpt

from helpers import make_text

COMMON = ["--block-size", "16", "--n-layer", "2", "--n-head", "2", "--n-embd", "32",
          "--warmup-steps", "2", "--eval-interval", "100", "--eval-batches", "1",
          "--log-interval", "1", "--device", "cpu", "--no-progress", "--seed", "0",
          "--dropout", "0", "--schedule", "constant",  # the LR does not depend on max_steps
          # AdamW, whatever the preset's optimizer: Muon orthogonalises in bfloat16 on CUDA,
          # which turns the last-bit differences of a gradient summed in two halves into ~1e-4
          "--optimizer", "adamw"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def train(*args, ranks=1, timeout=300):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={ranks}"] if ranks > 1 else [sys.executable])
    res = subprocess.run([*launcher, "-m", "lib.train", *COMMON, *args], capture_output=True,
                         text=True, timeout=timeout, env=ENV)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def losses(path):
    return [row["loss"] for row in ckpt.load_checkpoint(path)["history"]["train"]]


@pytest.mark.slow
def test_two_ranks_follow_one_process_with_twice_the_batch(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(make_text())
    data = ["--data", str(text)]
    train(*data, "--batch-size", "8", "--max-steps", "8", "--out", str(tmp_path / "one"))
    res = train(*data, "--batch-size", "4", "--max-steps", "5", "--out", str(tmp_path / "two"),
                ranks=2)
    assert res.stdout.count("Training ") == 1  # only rank 0 speaks
    # the data-parallel run stops at step 5, then resumes to step 8, still on 2 ranks
    train(*data, "--batch-size", "4", "--max-steps", "8", "--out", str(tmp_path / "two"),
          "--resume", ranks=2)

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 8
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-5, (one, two)
    a, b = (ckpt.load_checkpoint(tmp_path / name)["model"] for name in ("one", "two"))
    # Weights agree to rounding: summing the batch in two halves changes the last bits of the
    # gradients, and AdamW's normalised steps turn that into ~1e-5 in a few weights (measured 1.3e-5).
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    state = ckpt.load_checkpoint(tmp_path / "two")
    assert state["history"]["train"][-1]["tokens"] == 8 * 8 * 16  # global tokens, both ranks


@pytest.mark.slow
def test_two_ranks_share_a_time_budget(tmp_path):
    """With --max-time the ranks agree on the time spent (the slowest rank's), so they set the
    same time-aware LR, stop at the same step, and the run ends cleanly (no rank left waiting)."""
    text = tmp_path / "text.txt"
    text.write_text(make_text())
    train("--data", str(text), "--batch-size", "4", "--max-steps", "100000", "--max-time", "3",
          "--schedule", "cosine", "--lr", "3e-3", "--min-lr-ratio", "0.1",
          "--out", str(tmp_path / "two"), ranks=2)
    state = ckpt.load_checkpoint(tmp_path / "two")
    rows = state["history"]["train"]
    assert 0 < state["step"] < 100_000 and state["elapsed"] >= 3
    assert rows[-1]["lr"] < 0.12 * 3e-3  # the schedule reached its floor (10%) as the time ran out
