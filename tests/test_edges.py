"""The command lines at their edges (#42): absurd counts and sizes refused before anything is
read or allocated, from limits decided up front and the machine's memory; names too long for
the file system; Ctrl-C while starting; output that cannot be written (a closed pipe, a full
device); a model whose weights are NaN. Signals and pipes are tried on real processes."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import lib.device
from lib import cli, limits
from lib.checkpoint import tensor_checksum
from lib.config import MAX_STEPS, MAX_TIME
from lib.trainer import Trainer

from helpers import TINY, make_text, run, start, tiny_model_config, tiny_train_config


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text(make_text())
    return path


@pytest.fixture(scope="module")
def checkpoint(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    res = run("lib.train", "--data", str(text_file), "--out", str(out), "--max-steps", "5", *TINY)
    assert res.returncode == 0, res.stderr
    return out


def _train(capsys, *args):
    """lib.train in this process: (exit status, stderr)."""
    with pytest.raises(SystemExit) as ended:
        cli.train_main(list(map(str, args)))
    return ended.value.code, capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--max-steps", 10**23, "max_steps must be an integer in \\[1, 1000000000\\]"),
    ("--max-steps", MAX_STEPS + 1, "max_steps"),
    ("--max-time", 1e15, "max_time must be a finite number in \\[0, 31622400\\]"),
    ("--max-time", MAX_TIME * 1.01, "max_time"),
])
def test_absurd_settings_are_refused_before_the_corpus_is_read(capsys, tmp_path, flag, value, message):
    code, err = _train(capsys, "--data", tmp_path / "no-such-file.txt", "--out", tmp_path / "run",
                       *TINY, flag, value)
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(message, err)


def test_batches_too_big_for_this_machine_s_memory_are_refused_before_allocating(
        capsys, tmp_path, text_file, monkeypatch):
    big = ("--eval-batches", 10_000, "--batch-size", 100_000, "--block-size", 1024)
    code, err = _train(capsys, "--data", text_file, "--out", tmp_path / "a", *TINY, *big)
    assert code == 2 and "--eval-batches 10000" in err and "GiB" in err
    code, err = _train(capsys, "--data", text_file, "--out", tmp_path / "a", *TINY, "--batch-size", 10**9)
    assert code == 2 and re.search("--batch-size 1000000000.*GiB.*more than the", err)
    assert not (tmp_path / "a" / "ckpt.pt").exists()
    # the limit is the machine's memory: the same small run fits, and is refused on a tiny machine
    monkeypatch.setattr(lib.device, "memory_budget_bytes", lambda device: 2**16)
    code, err = _train(capsys, "--data", text_file, "--out", tmp_path / "b", *TINY, "--max-steps", 10)
    assert code == 2 and "more than the 0.0 GiB here" in err


def test_the_counted_evaluation_batches_are_those_the_trainer_builds(small_corpus):
    model_config = tiny_model_config(small_corpus.tokenizer.vocab_size)
    config = tiny_train_config(eval_batches=3, batch_size=5)
    trainer = Trainer(model_config, config, small_corpus.train, small_corpus.val)
    held = sum(t.numel() * t.element_size() for batches in trainer.eval_sets.values()
               for batch in batches for t in batch)
    assert limits.run_memory_bytes(model_config, config)["evaluation batches"] == held


def test_an_out_name_too_long_for_the_file_system_is_one_line(capsys, tmp_path, text_file):
    name_max, _ = limits.name_limits(tmp_path)
    code, err = _train(capsys, "--data", text_file, "--out", tmp_path / ("x" * (name_max + 1)), *TINY)
    assert code == 2 and f"longer than the {name_max}" in err and len(err.strip().splitlines()) == 1
    deep = tmp_path.joinpath(*["d" * 200] * 30)  # every name fits, the path does not
    code, err = _train(capsys, "--data", text_file, "--out", deep, *TINY)
    assert code == 2 and "choose a shorter" in err
    with pytest.raises(SystemExit):
        cli.sample_main(["--checkpoint", str(tmp_path / ("c" * (name_max + 1)))])
    assert "--checkpoint: the name ccc" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="signals as a terminal sends them")
@pytest.mark.parametrize("module, delay", [("lib.train", 0.2), ("lib.sample", 0.6)])
def test_ctrl_c_while_starting_is_one_line(module, delay, checkpoint):
    args = ("--checkpoint", str(checkpoint)) if module == "lib.sample" else ("--max-steps", "5")
    proc = start(module, *args, text=True)
    time.sleep(delay)  # python is importing torch: well under the second it takes
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err == "Interrupted while starting; nothing was done.\n"


@pytest.mark.skipif(os.name != "posix", reason="pipes and /dev/full as on POSIX")
def test_a_reader_that_closes_the_pipe_ends_the_text_quietly(checkpoint):
    proc = start("lib.sample", "--checkpoint", str(checkpoint), "--tokens", "1000000", "--seed", "0")
    assert len(proc.stdout.read(10)) == 10  # like `| head -c 10`
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == b""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_device_on_stdout_is_one_line(checkpoint):
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "lib.sample", "--checkpoint", str(checkpoint),
                              "--tokens", "50"], stdout=full, stderr=subprocess.PIPE, text=True,
                             timeout=120)
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        "python -m lib.sample: error: cannot write the output to stdout (No space left on device)"]


def test_a_model_with_nan_weights_is_refused_in_one_line(checkpoint, tmp_path):
    state = torch.load(checkpoint / "ckpt.pt", weights_only=True)
    state["model"]["transformer.h.1.mlp.c_fc.weight"][0, 0] = float("nan")
    state["checksum"] = tensor_checksum(state)  # NaN written as such, not a damaged file
    torch.save(state, tmp_path / "ckpt.pt")
    res = run("lib.sample", "--checkpoint", str(tmp_path), "--tokens", "5")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"python -m lib.sample: error: {tmp_path}: the weights are not finite (NaN or inf in "
        "transformer.h.1.mlp.c_fc.weight): its run diverged, or the file is damaged"]


def test_a_damaged_cache_entry_beside_a_folder_named_unusable_is_replaced(small_corpus, counted_runs):
    from lib import checkpoint, course

    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    config = tiny_train_config(max_steps=5)
    course.train_or_load(mc, config, small_corpus, verbose=False)
    path = checkpoint.checkpoint_file(course.cache_dir() / "runs" / course.run_key(mc, config, small_corpus))
    path.write_bytes(b"\0" * 100)
    (path.with_name("ckpt.pt.unusable") / "old").mkdir(parents=True)  # set aside by an older run
    again = course.train_or_load(mc, config, small_corpus, verbose=False)
    assert len(counted_runs) == 2 and again.step == 5
    assert checkpoint.load_checkpoint(path)["step"] == 5  # the good run's entry, served from now on
    course.train_or_load(mc, config, small_corpus, verbose=False)
    assert len(counted_runs) == 2
