"""The command line, run as a user runs it: in a subprocess."""

import re
import signal
import subprocess
import sys
import time

import pytest

from lib import checkpoint as ckpt
from lib.cli import load_corpus
from lib.checkpoint import load_model
from lib.evaluation import split_loss

from helpers import TINY, make_text, run


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text(make_text())
    return path


@pytest.fixture(scope="module")
def small_checkpoint(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    res = run("lib.train", "--data", str(text_file), "--out", str(out), "--max-steps", "5", *TINY)
    assert res.returncode == 0, res.stderr
    return out


def test_help_explains_every_flag():
    from lib.model import GPTConfig
    from lib.trainer import TrainConfig
    import dataclasses

    out = run("lib.train", "--help").stdout
    for cls in (GPTConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            if f.name != "out_dir":
                assert "--" + f.name.replace("_", "-") in out
    assert "stop after this many seconds" in out  # the field's comment is its help
    assert "--top-p" in run("lib.sample", "--help").stdout


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--preset", "nope"], "invalid choice: 'nope'"),
        (["--n-layer", "x"], "invalid int value: 'x'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--n-embd", "33", "--n-head", "2"], "divisible by n_head"),
        (["--lr", "-1"], "lr must be a finite number > 0"),
        (["--schedule", "cosin"], "schedule must be one of"),
        (["--data", "/no/such/file.txt"], "no such file"),
        (["--resume", "--out", "/no/such/run"], "No checkpoint"),
    ],
)
def test_bad_train_flags_give_one_line_errors(args, pattern):
    res = run("lib.train", *args)
    assert res.returncode == 2
    assert pattern in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(("python -m lib.train: error", "usage"))


def test_train_then_sample(text_file, tmp_path):
    out = tmp_path / "run"
    res = run("lib.train", "--data", str(text_file), "--out", str(out), "--max-steps", "20", *TINY)
    assert res.returncode == 0, res.stderr
    assert "val loss" in res.stdout and str(out / "ckpt.pt") in res.stdout
    full = float(re.search(r"whole validation split \(([\d,]+) tokens\): ([\d.]+)", res.stdout)[2])
    model, _, _ = load_model(out, "cpu")
    val = load_corpus(str(text_file)).val
    assert full == pytest.approx(split_loss(model, val), abs=1e-4)  # the printed loss is the split's
    a = run("lib.sample", "--checkpoint", str(out), "--prompt", "The king", "--tokens", "40",
            "--temperature", "0.8", "--top-k", "5", "--top-p", "0.95", "--seed", "1")
    b = run("lib.sample", "--checkpoint", str(out), "--prompt", "The king", "--tokens", "40",
            "--temperature", "0.8", "--top-k", "5", "--top-p", "0.95", "--seed", "1")
    assert a.returncode == 0, a.stderr
    assert a.stdout.startswith("The king") and len(a.stdout.rstrip("\n")) == len("The king") + 40
    assert a.stdout == b.stdout  # same seed, same text


def test_a_time_budget_sets_the_steps_from_a_timing(text_file, tmp_path):
    """--max-time without --max-steps: the preset's max_steps would stop a fast machine early,
    so the command times a few steps and sets max_steps from them; the time ends the run."""
    out = tmp_path / "run"
    res = run("lib.train", "--data", str(text_file), "--out", str(out), "--max-time", "1.5", *TINY)
    assert res.returncode == 0, res.stderr
    printed = int(re.search(r"max_steps set to ([\d,]+) for 1.5 s", res.stdout)[1].replace(",", ""))
    state = ckpt.load_checkpoint(out)
    assert state["train_config"]["max_steps"] == printed
    assert 0 < state["step"] <= printed
    # With --max-steps given, it is the user's, as given.
    res = run("lib.train", "--data", str(text_file), "--out", str(out), "--overwrite",
              "--max-time", "60", "--max-steps", "7", *TINY)
    assert res.returncode == 0, res.stderr
    assert "max_steps set to" not in res.stdout
    assert ckpt.load_checkpoint(out)["train_config"]["max_steps"] == 7


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--prompt", "Ω"], "not in this tokenizer's vocabulary"),
        (["--temperature", "-1"], "temperature must be"),
        (["--top-k", "0"], "top_k must be an integer >= 1"),
        (["--top-p", "1.5"], "top_p must be a finite number in"),
        (["--tokens", "-3"], "--tokens must be an integer in [0, 1000000]"),
        (["--tokens", "abc"], "invalid int value: 'abc'"),
        (["--seed", str(10**30)], "--seed must be an integer in"),
        (["--seed", "-1"], "--seed must be an integer in"),
        (["--device", "bogus"], "Unknown device 'bogus'"),
        (["--temperature", "nan"], "temperature must be a finite number"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_sample_input_gives_one_line_errors(small_checkpoint, args, pattern):
    res = run("lib.sample", "--checkpoint", str(small_checkpoint), *args)
    assert res.returncode == 2 and pattern in res.stderr and "Traceback" not in res.stderr


def test_sample_with_an_empty_or_over_long_prompt(small_checkpoint):
    empty = run("lib.sample", "--checkpoint", str(small_checkpoint), "--prompt", "", "--tokens", "5")
    assert empty.returncode == 0, empty.stderr  # an empty prompt starts from a newline
    long = run("lib.sample", "--checkpoint", str(small_checkpoint), "--prompt", "the king " * 20,
               "--tokens", "5")  # 180 characters, the context is 16: the model reads the last 16
    assert long.returncode == 0 and long.stdout.startswith("the king " * 20), long.stderr


@pytest.mark.parametrize("make", ["folder named ckpt.pt", "not a checkpoint", "no tokenizer"])
def test_sample_refuses_unusable_checkpoint_folders(tmp_path, small_checkpoint, make):
    if make == "folder named ckpt.pt":
        (tmp_path / "ckpt.pt").mkdir()
    elif make == "not a checkpoint":
        import torch
        torch.save({"weights": torch.zeros(2)}, tmp_path / "ckpt.pt")
    else:
        state = ckpt.load_checkpoint(small_checkpoint)
        ckpt.save_checkpoint({**state, "tokenizer": None}, tmp_path)
    res = run("lib.sample", "--checkpoint", str(tmp_path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_train_never_overwrites_a_file_given_as_out(text_file, tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("a learner's notes")
    res = run("lib.train", "--data", str(text_file), "--out", str(precious), "--max-steps", "5", *TINY)
    assert res.returncode == 2 and "out_dir" in res.stderr and "Traceback" not in res.stderr
    assert precious.read_text() == "a learner's notes"


@pytest.mark.parametrize(
    "content, pattern",
    [("", "holds 0 characters"), ("hello world\n", "fewer than one window"),
     (None, "holds no text files"), (b"\xff\xfe\x00bad", "not UTF-8 text (byte 0 ")],
)
def test_unusable_corpus_files_give_one_line_errors(tmp_path, content, pattern):
    path = tmp_path / "corpus.txt"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    res = run("lib.train", "--data", str(path), *TINY)
    assert res.returncode == 2 and pattern in res.stderr and "Traceback" not in res.stderr


def test_sample_refuses_missing_and_corrupt_checkpoints(tmp_path):
    res = run("lib.sample", "--checkpoint", str(tmp_path))
    assert res.returncode == 2 and "No checkpoint" in res.stderr
    (tmp_path / "ckpt.pt").write_bytes(b"\x00" * 100)
    res = run("lib.sample", "--checkpoint", str(tmp_path))
    assert res.returncode == 2 and "damaged" in res.stderr and "Traceback" not in res.stderr


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(text_file, tmp_path):
    """A real process killed with SIGKILL resumes from its last checkpoint to the same result."""
    common = ["--data", str(text_file), "--max-steps", "300", "--checkpoint-interval", "20", *TINY]
    full, killed = tmp_path / "full", tmp_path / "killed"
    res = run("lib.train", *common, "--out", str(full), timeout=300)
    assert res.returncode == 0, res.stderr

    proc = subprocess.Popen([sys.executable, "-m", "lib.train", *common, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "ckpt.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    step_at_kill = ckpt.load_checkpoint(killed)["step"]
    assert 0 < step_at_kill < 300, "the process must die mid-run for this test to mean anything"

    res = run("lib.train", *common, "--out", str(killed), "--resume", timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"Resuming from step {step_at_kill}" in res.stdout
    a, b = ckpt.load_checkpoint(full), ckpt.load_checkpoint(killed)
    assert [r["loss"] for r in a["history"]["train"]] == [r["loss"] for r in b["history"]["train"]]
    assert [r["val_loss"] for r in a["history"]["eval"]] == [r["val_loss"] for r in b["history"]["eval"]]
    for k in a["model"]:
        assert (a["model"][k] == b["model"][k]).all(), k
