"""Nothing lost, nothing crashes: damaged cache entries, unwritable folders, interrupted and
repeated runs, resumes on the right corpus. Signals are sent to real processes."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import lib.data
import lib.device
from lib import checkpoint as ckpt
from lib import cli
from lib import course
from lib.course import train_or_load
from lib.model import GPT
from lib.trainer import Trainer

from helpers import TINY, make_text, run, start, tiny_model_config, tiny_train_config


# --------------------------------------------------------------------------- the run cache


def _damage(state: dict, how: str) -> dict | bytes:
    """A cache entry spoiled one way: bytes to write, or a state to save."""
    if how == "zeros":
        return b"\0" * 4096
    if how == "random bytes":
        return os.urandom(4096)
    state = dict(state)
    if how == "missing keys":
        return {"format_version": 1, "step": state["step"]}
    if how == "bad rng state":
        return {**state, "rng": {**state["rng"], "torch": torch.zeros(3)}}
    if how == "unknown config field":
        return {**state, "train_config": {**state["train_config"], "colour": "blue"}}
    if how == "absurd model":
        return {**state, "model_config": {**state["model_config"], "n_layer": 10**6}}
    if how == "tokenizer larger than the vocabulary":
        return {**state, "model_config": {**state["model_config"], "vocab_size": 3}}
    if how == "nan weights":
        weights = {k: v.clone() for k, v in state["model"].items()}
        next(iter(weights.values())).fill_(float("nan"))
        return {**state, "model": weights}
    if how.startswith("step "):
        return {**state, "step": {"step abc": "abc", "step -5": -5, "step 10**30": 10**30}[how]}
    if how == "another run":
        return {**state, "train_config": {**state["train_config"], "lr": 0.5}}
    raise ValueError(how)


DAMAGES = ["zeros", "random bytes", "missing keys", "bad rng state", "unknown config field",
           "absurd model", "tokenizer larger than the vocabulary", "nan weights", "step abc",
           "step -5", "step 10**30", "another run"]


@pytest.mark.parametrize("how", DAMAGES)
def test_an_unusable_cache_entry_is_moved_aside_and_trained_again(small_corpus, counted_runs,
                                                                  how, capsys):
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    config = tiny_train_config(max_steps=5)
    good = train_or_load(mc, config, small_corpus, verbose=False)
    path = ckpt.checkpoint_file(
        course.cache_dir() / "runs" / course.run_key(mc, config, small_corpus))
    spoiled = _damage(ckpt.load_checkpoint(path), how)
    if isinstance(spoiled, bytes):
        path.write_bytes(spoiled)
    else:
        path.unlink()
        torch.save(spoiled, path)  # as a hostile or broken writer would, not via save_checkpoint
    capsys.readouterr()

    again = train_or_load(mc, config, small_corpus, verbose=False)
    said = capsys.readouterr().out.strip().splitlines()
    assert len(counted_runs) == 2  # trained again, once
    assert len(said) == 1 and "could not be used" in said[0] and "training it again" in said[0]
    assert path.with_name("ckpt.pt.unusable").exists()  # kept aside, for a curious learner
    assert again.step == 5 and all(torch.equal(a, b) for a, b in
                                   zip(good.model.state_dict().values(), again.model.state_dict().values()))
    train_or_load(mc, config, small_corpus, verbose=False)
    assert len(counted_runs) == 2  # the new entry is served


def test_an_unwritable_cache_trains_says_so_and_returns_the_run(small_corpus, counted_runs,
                                                                tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(blocker))  # the cache folder is a file
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    trainer = train_or_load(mc, tiny_train_config(max_steps=3, warmup_steps=1), small_corpus, verbose=False)
    said = capsys.readouterr().out.strip().splitlines()
    assert trainer.step == 3 and len(counted_runs) == 1
    assert len(said) == 1 and "cannot be written" in said[0] and "COURSE_CACHE_DIR" in said[0]
    assert blocker.read_text() == "not a folder"


def test_a_full_disk_at_the_save_keeps_the_run(small_corpus, counted_runs, monkeypatch, capsys):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    monkeypatch.setattr(torch, "save", no_space)
    trainer = train_or_load(mc, tiny_train_config(max_steps=3, warmup_steps=1), small_corpus, verbose=False)
    said = capsys.readouterr().out.strip().splitlines()
    assert trainer.step == 3
    assert len(said) == 1 and "No space left on device" in said[0] and "not kept" in said[0]
    folder = course.cache_dir() / "runs" / course.run_key(mc, tiny_train_config(max_steps=3, warmup_steps=1), small_corpus)
    assert not list(folder.glob("*.tmp"))  # the half-written file is gone


# --------------------------------------------------------------------------- checkpoint files


def test_temporary_files_of_killed_saves_are_cleaned_up(tmp_path):
    ckpt.save_checkpoint({"step": 1}, tmp_path)
    dead = tmp_path / "ckpt.pt.999999999.abc.tmp"  # no process has this pid
    ours = tmp_path / f"ckpt.pt.{os.getpid()}.def.tmp"  # an earlier save of ours, interrupted
    alive = tmp_path / "ckpt.pt.1.ghi.tmp"  # pid 1 is alive: its save may be under way
    for f in (dead, ours, alive):
        f.write_bytes(b"half a checkpoint")
    ckpt.load_checkpoint(tmp_path)
    assert not dead.exists() and not ours.exists() and alive.exists()
    dead.write_bytes(b"half a checkpoint")
    ckpt.save_checkpoint({"step": 2}, tmp_path)
    assert not dead.exists() and ckpt.load_checkpoint(tmp_path)["step"] == 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_named_ckpt_pt_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "ckpt.pt")
    with pytest.raises(ckpt.CheckpointError, match="not a regular file"):
        ckpt.save_checkpoint({"step": 1}, tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="not a regular file"):
        ckpt.load_checkpoint(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="not a regular file"):
        ckpt.check_writable(tmp_path)


def test_a_checkpoint_file_may_have_any_name(tmp_path):
    ckpt.save_checkpoint({"step": 7}, tmp_path / "run.pt")
    (tmp_path / "run.pt").rename(tmp_path / "my-run")  # a file without a suffix
    assert ckpt.load_checkpoint(tmp_path / "my-run")["step"] == 7


def test_an_out_folder_that_cannot_hold_a_checkpoint_fails_before_training(small_corpus, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a learner's notes")
    config = tiny_train_config(out_dir=str(blocker / "run"))  # a folder under a file
    with pytest.raises(ckpt.CheckpointError, match="Cannot write a checkpoint"):
        Trainer(tiny_model_config(small_corpus.tokenizer.vocab_size), config,
                small_corpus.train, small_corpus.val)
    assert blocker.read_text() == "a learner's notes"


def test_training_that_cannot_fit_in_memory_is_refused_before_allocating(small_corpus, monkeypatch):
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    n = GPT.estimate_parameters_unchecked(mc)
    monkeypatch.setattr(lib.device, "memory_budget_bytes", lambda device: 10 * n)
    lib.device.check_memory({"weights": 4 * n}, torch.device("cpu"), "the weights")  # fit ...
    with pytest.raises(ValueError, match="AdamW moments.*Make n_embd, n_layer"):
        Trainer(mc, tiny_train_config(), small_corpus.train, small_corpus.val)  # ... training does not


def test_a_stop_request_saves_the_step_and_resume_matches_an_uninterrupted_run(small_corpus, tmp_path):
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    full = Trainer(mc, tiny_train_config(max_steps=30), small_corpus.train, small_corpus.val)
    full.run()
    config = tiny_train_config(max_steps=30, out_dir=str(tmp_path))
    stopped = Trainer(mc, config, small_corpus.train, small_corpus.val)
    stopped.run(callback=lambda t: t.step == 7 and t.request_stop("a test"), callback_interval=1)
    # asked after step 7, so step 8 was the step under way: it ends there, saved
    assert stopped.step == 8 and ckpt.load_checkpoint(tmp_path)["step"] == 8
    resumed = Trainer.resume(tmp_path, small_corpus.train, small_corpus.val)
    resumed.run()
    assert resumed.step == 30 and resumed.stop_requested is None
    assert [r["loss"] for r in resumed.history["train"]] == [r["loss"] for r in full.history["train"]]
    assert all(torch.equal(a, b) for a, b in zip(full.model.state_dict().values(),
                                                 resumed.model.state_dict().values()))


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(make_text())
    return path


def _start(*args):
    return start("lib.train", *args, text=True)


def _interrupt(proc, signals, gap=0.0):
    """Wait until the process trains, then send it the signals; returns (stdout, stderr)."""
    line = proc.stdout.readline()  # "Training N parameters ..." comes just before the loop
    assert line.startswith("Training"), line + proc.stderr.read()
    time.sleep(1.0)
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(gap)
    out, err = proc.communicate(timeout=120)
    return line + out, err


@pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_step_and_resume_continues_exactly(text_file, tmp_path, sig):
    common = ["--data", str(text_file), "--max-steps", "3000", *TINY]
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    res = run("lib.train", *common, "--out", str(full), timeout=300)
    assert res.returncode == 0, res.stderr

    out, err = _interrupt(_start(*common, "--out", str(stopped)), [sig])
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-1].startswith("Stopped at step") and "--resume" in lines[-1], err
    step = ckpt.load_checkpoint(stopped)["step"]
    assert 0 < step < 3000, "the signal must land mid-run for this test to mean anything"
    assert f"Stopped at step {step} of 3000" in lines[-1]

    res = run("lib.train", "--resume", "--out", str(stopped), timeout=300)  # no --data: recorded
    assert res.returncode == 0, res.stderr
    assert f"Resuming from step {step} of 3000 on {text_file}" in res.stdout
    a, b = ckpt.load_checkpoint(full), ckpt.load_checkpoint(stopped)
    assert [r["loss"] for r in a["history"]["train"]] == [r["loss"] for r in b["history"]["train"]]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals")
def test_exit_codes_and_a_second_ctrl_c_while_saving(text_file, tmp_path):
    common = ["--data", str(text_file), "--max-steps", "100000", *TINY]
    proc = _start(*common, "--out", str(tmp_path / "term"))
    _interrupt(proc, [signal.SIGTERM])
    assert proc.returncode == 128 + signal.SIGTERM  # 143, the shell's convention

    proc = _start(*common, "--out", str(tmp_path / "twice"))
    out, err = _interrupt(proc, [signal.SIGINT, signal.SIGINT, signal.SIGINT], gap=0.001)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert ckpt.load_checkpoint(tmp_path / "twice")["step"] > 0  # whole, and loads
    assert not list((tmp_path / "twice").glob("*.tmp"))


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX")
def test_closing_the_terminal_saves_the_step_and_the_run_resumes(text_file, tmp_path):
    """SIGHUP (the terminal closed) is handled as SIGTERM, even though the terminal is gone:
    here its pipes are closed before the signal, so every later write to it fails."""
    common = ["--data", str(text_file), "--max-steps", "100000", *TINY]
    out = tmp_path / "hup"
    proc = _start(*common, "--out", str(out))
    line = proc.stdout.readline()
    assert line.startswith("Training"), line + proc.stderr.read()
    time.sleep(1.0)
    proc.stdout.close()
    proc.stderr.close()
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=120) == 128 + signal.SIGHUP  # 129, the shell's convention
    step = ckpt.load_checkpoint(out)["step"]
    assert 0 < step < 100000
    assert not list(out.glob("*.tmp"))
    more = step + 10  # past the warmup's 5 steps, however early the signal came
    res = run("lib.train", "--resume", "--out", str(out), "--max-steps", str(more))
    assert res.returncode == 0 and f"Resuming from step {step} of {more}" in res.stdout, res.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX")
def test_a_run_started_with_nohup_keeps_ignoring_sighup():
    class Trainer:
        is_main = True

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does
    try:
        with cli._StopOnSignals(Trainer()):
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with cli._StopOnSignals(Trainer()) as stop:
            assert signal.getsignal(signal.SIGHUP) == stop._handle
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # put back
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.skipif(os.name != "posix", reason="the run's lock is flock, POSIX only")
def test_a_second_run_into_the_same_folder_is_refused_while_the_first_trains(text_file, tmp_path):
    out = tmp_path / "run"
    common = ["--data", str(text_file), "--out", str(out), *TINY]
    first = _start(*common, "--max-steps", "100000")
    line = first.stdout.readline()
    assert line.startswith("Training"), line + first.stderr.read()
    for extra in ([], ["--overwrite"]):
        res = run("lib.train", *common, "--max-steps", "10", *extra)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert f"{out} is in use by another training run (process {first.pid})" in res.stderr
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    assert first.returncode == 130
    step = ckpt.load_checkpoint(out)["step"]
    res = run("lib.train", "--resume", "--out", str(out), "--max-steps", str(step + 2))
    assert res.returncode == 0, res.stderr  # the lock ended with its run

    killed = _start(*common, "--overwrite", "--max-steps", "100000")
    line = killed.stdout.readline()
    assert line.startswith("Training"), line + killed.stderr.read()
    killed.kill()  # no handler runs: the operating system drops its lock
    killed.communicate(timeout=60)
    res = run("lib.train", *common, "--overwrite", "--max-steps", "5")
    assert res.returncode == 0, res.stderr


def test_the_same_command_again_refuses_to_replace_the_run(text_file, tmp_path):
    common = ["--data", str(text_file), "--out", str(tmp_path / "run"), "--max-steps", "10", *TINY]
    assert run("lib.train", *common).returncode == 0
    before = (tmp_path / "run" / "ckpt.pt").read_bytes()
    res = run("lib.train", *common)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "--resume" in res.stderr and "--overwrite" in res.stderr and "step 10" in res.stderr
    assert (tmp_path / "run" / "ckpt.pt").read_bytes() == before  # untouched
    res = run("lib.train", *common, "--overwrite", "--seed", "1")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run" / "ckpt.pt").read_bytes() != before


def test_resume_with_nothing_left_to_train_leaves_the_checkpoint_alone(text_file, tmp_path):
    """Found by benchmarks/probe_cli.py: `--resume --max-steps 5` on a run at step 10 rewrote
    its checkpoint with max_steps=5 and exited 0."""
    out = tmp_path / "run"
    assert run("lib.train", "--data", str(text_file), "--out", str(out), "--max-steps", "10",
               *TINY).returncode == 0
    before = (out / "ckpt.pt").read_bytes()
    for extra in (["--max-steps", "5"], ["--max-steps", "10"], []):
        res = run("lib.train", "--out", str(out), "--resume", *extra)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert "at step 10" in res.stderr and "--max-steps above 10" in res.stderr
        assert (out / "ckpt.pt").read_bytes() == before
    res = run("lib.train", "--out", str(out), "--resume", "--max-steps", "12")
    assert res.returncode == 0 and "Resuming from step 10 of 12" in res.stdout, res.stderr


@pytest.mark.parametrize("args, pattern", [
    (["--out", ""], "--out needs a folder"),
    (["--resume", "--overwrite"], "not allowed with argument"),
])
def test_out_and_start_flags_are_checked(args, pattern):
    res = run("lib.train", *args)
    assert res.returncode == 2 and pattern in res.stderr and "Traceback" not in res.stderr


def test_an_out_folder_with_a_file_that_is_not_a_checkpoint_fails_at_once(text_file, tmp_path):
    (tmp_path / "ckpt.pt").write_text("my notes")
    for extra in ([], ["--overwrite"]):
        res = run("lib.train", "--data", str(text_file), "--out", str(tmp_path), *TINY, *extra)
        assert res.returncode == 2 and "not a PyTorch checkpoint" in res.stderr, res.stderr
        assert "Training" not in res.stdout  # before the first step
    assert (tmp_path / "ckpt.pt").read_text() == "my notes"


def test_resume_reads_the_recorded_corpus_and_refuses_another(text_file, tmp_path):
    out = tmp_path / "run"
    base = ["--out", str(out), *TINY]
    res = run("lib.train", "--data", str(text_file), "--max-steps", "10", *base, "--warmup-steps", "1")
    assert res.returncode == 0, res.stderr
    other = tmp_path / "other.txt"
    other.write_text(make_text(seed=1))
    res = run("lib.train", "--resume", "--data", str(other), "--max-steps", "20", *base)
    assert res.returncode == 2 and "not the corpus this run was trained on" in res.stderr
    res = run("lib.train", "--resume", "--max-steps", "20", *base[:2])  # no other flags
    assert res.returncode == 0, res.stderr  # the run's own warmup (1), not the preset's (100)
    assert ckpt.load_checkpoint(out)["train_config"]["warmup_steps"] == 1
    text_file.write_text(make_text(seed=2))  # the corpus changed since
    res = run("lib.train", "--resume", "--max-steps", "30", *base[:2])
    assert res.returncode == 2 and "changed since this run was trained" in res.stderr
    assert "Traceback" not in res.stderr


def test_sample_takes_a_checkpoint_file_of_any_name(text_file, tmp_path):
    assert run("lib.train", "--data", str(text_file), "--out", str(tmp_path / "run"),
               "--max-steps", "5", *TINY).returncode == 0
    named = tmp_path / "my-checkpoint"
    (tmp_path / "run" / "ckpt.pt").rename(named)
    res = run("lib.sample", "--checkpoint", str(named), "--tokens", "10", "--seed", "0")
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------------------- hostile and absurd input


def test_a_decompression_bomb_is_refused_before_unpacking(tmp_path):
    import io
    import zipfile

    buf = io.BytesIO()
    torch.save({"format_version": 1, "w": torch.zeros(10_000_000)}, buf)  # 40 MB of zeros
    bomb = tmp_path / "ckpt.pt"
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, \
            zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 1_000_000  # a small file ...
    with pytest.raises(ckpt.CheckpointError, match="decompression bomb"):
        ckpt.load_checkpoint(tmp_path)  # ... that declares 40 MB


def test_compiling_on_a_cpu_without_a_compiler_is_one_clear_error(small_corpus, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="needs a C\\+\\+ compiler.*--compile off"):
        Trainer(tiny_model_config(small_corpus.tokenizer.vocab_size), tiny_train_config(compile="on"),
                small_corpus.train, small_corpus.val)


@pytest.mark.parametrize("content", ["utf-16", "nul"])
def test_text_that_is_not_plain_text_is_refused(tmp_path, content):
    path = tmp_path / "corpus.txt"
    text = make_text(200)
    path.write_bytes(text.encode("utf-16-le") if content == "utf-16" else b"\0" * 5000)
    res = run("lib.train", "--data", str(path), *TINY)
    assert res.returncode == 2 and "control characters" in res.stderr and "Traceback" not in res.stderr


ENCODE_MEMORY = """
import resource, sys
from lib.data import CharTokenizer
text = "the king and queen of love shall speak\\n" * (32_000_000 // 39)
tok = CharTokenizer.from_text(text)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ids = tok.encode_tensor(text, chunk=1 << 20)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert ids[:5].tolist() == tok.encode(text[:5]) and len(ids) == len(text)
print((after - before) * 1024 / len(text))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_encoding_a_large_corpus_takes_little_more_memory_than_its_ids():
    """The ids take 8 bytes a character; the encoding around them is bounded by its chunk (it
    took 16 here when it encoded the whole text at once)."""
    res = subprocess.run([sys.executable, "-c", ENCODE_MEMORY], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert float(res.stdout) < 12, f"{float(res.stdout):.1f} bytes per character"


def test_errors_never_send_terminal_escape_codes(tmp_path):
    path = tmp_path / "evil\x1b[31mred.txt"
    res = run("lib.train", "--data", str(path), *TINY)
    assert res.returncode == 2 and "\x1b" not in res.stderr and "\\x1b[31m" in res.stderr


def test_bench_never_overwrites_a_file_it_did_not_write(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a learner's notes")
    res = run("lib.bench", "--out", str(notes), "--steps", "1", "--rounds", "1")
    assert res.returncode == 2 and "not a result of lib.bench" in res.stderr
    assert notes.read_text() == "a learner's notes"
    res = run("lib.bench", "--out", str(notes / "cpu.json"), "--steps", "1", "--rounds", "1")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "cannot create its folder" in res.stderr


def test_sample_streams_and_stops_cleanly_on_ctrl_c(text_file, tmp_path):
    assert run("lib.train", "--data", str(text_file), "--out", str(tmp_path),
               "--max-steps", "5", *TINY).returncode == 0
    res = run("lib.sample", "--checkpoint", str(tmp_path), "--tokens", str(10**9))
    assert res.returncode == 2 and "--tokens must be an integer in [0, 1000000]" in res.stderr
    if os.name != "posix":
        return
    proc = start("lib.sample", "--checkpoint", str(tmp_path), "--tokens", "1000000", "--prompt", "the")
    first = proc.stdout.read(20)  # text arrives while it is being written
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert first.startswith(b"the") and proc.returncode == 130
    assert b"Traceback" not in err and b"Interrupted" in err


def test_sample_on_a_console_that_cannot_show_a_character(tmp_path):
    """A Windows code page (cp1252) has no Ω: the text shows '?' there instead of crashing."""
    text = tmp_path / "greek.txt"
    text.write_text(make_text(600).replace("o", "Ω"))
    assert run("lib.train", "--data", str(text), "--out", str(tmp_path / "run"), "--max-steps", "3",
               *TINY, "--warmup-steps", "1").returncode == 0
    env = {**os.environ, "PYTHONIOENCODING": "cp1252", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-m", "lib.sample", "--checkpoint", str(tmp_path / "run"),
                          "--prompt", "Ω king", "--tokens", "5"], capture_output=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(b"? king")
