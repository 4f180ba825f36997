"""Faults survived and files kept where they belong, each shown with real processes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from lib import checkpoint as ckpt

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONDONTWRITEBYTECODE": "1"}

WRITER = textwrap.dedent("""
    import sys, torch
    from lib.checkpoint import save_checkpoint
    out = sys.argv[1]
    save_checkpoint({"step": 0, "w": torch.zeros(8)}, out)
    print("ready", flush=True)
    step = 1
    while True:  # big checkpoints, one after the other, until killed
        save_checkpoint({"step": step, "w": torch.full((4_000_000,), float(step))}, out)
        step += 1
""")


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05, 0.2])
def test_killed_while_writing_a_checkpoint_leaves_a_loadable_one(tmp_path, delay):
    """SIGKILL a process in the middle of writing (a temporary file is open): the folder still
    holds a complete checkpoint, the last one that was finished."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        deadline = time.time() + 60
        while not list(tmp_path.glob("ckpt.pt.*.tmp")) and time.time() < deadline:
            time.sleep(0.001)  # wait until a write is under way
        time.sleep(delay)
        writing = bool(list(tmp_path.glob("ckpt.pt.*.tmp")))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = ckpt.load_checkpoint(tmp_path)
    assert state["step"] >= 0
    assert (state["w"] == float(state["step"])).all()  # complete, not a mix of two writes
    if delay == 0.0:
        assert writing, "the kill must land during a write for this test to mean anything"


SCRIPT = textwrap.dedent("""
    import json, os, sys
    import lib.checkpoint, lib.cli, lib.course, lib.data, lib.model, lib.sampling, lib.trainer  # before the hook
    import torch
    import torch._dynamo  # torch makes its compile cache folder in TMPDIR when this is first
    # imported (AdamW imports it): torch's own doing, so done before the hook watches
    from lib.data import CharCorpus, CharTokenizer, train_val_split
    from lib.model import GPTConfig
    from lib.course import train_or_load
    from lib.checkpoint import load_model
    from lib.trainer import TrainConfig, Trainer
    from lib.sampling import generate

    text_file, out, log = sys.argv[1:4]
    writes, watching = [], True
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event, args):
        if watching and event == "open":
            path, mode, flags = args
            if isinstance(path, (str, bytes, os.PathLike)) and (
                    (mode and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS):
                writes.append((event, os.fsdecode(path)))
        elif watching and event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate",
                       "os.symlink", "os.link", "shutil.rmtree", "shutil.move", "shutil.copyfile"):
            writes.extend([(event, os.fsdecode(args[0]))] if args else [])
            if event == "os.rename":
                writes.append((event, os.fsdecode(args[1])))

    sys.addaudithook(hook)

    text = open(text_file).read()
    tok = CharTokenizer.from_text(text)
    train, val = train_val_split(torch.tensor(tok.encode(text)), 0.1)
    corpus = CharCorpus(text, tok, train, val, "faults-test")
    model_config = GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=1, n_embd=16)
    config = TrainConfig(max_steps=20, batch_size=4, warmup_steps=2, eval_interval=10, eval_batches=1,
                         device="cpu", progress=False, checkpoint_interval=5,
                         out_dir=os.path.join(out, "run"))
    trainer = train_or_load(model_config, config, corpus, verbose=False)   # the cache
    train_or_load(model_config, config, corpus, verbose=False)             # served from it
    Trainer(model_config, config, train, val, tok).run()                   # the out folder
    resumed = Trainer.resume(os.path.join(out, "run"), train, val, max_steps=25)
    resumed.run()
    model, tokenizer, _ = load_model(os.path.join(out, "run"), "cpu")
    generate(model, torch.tensor([tokenizer.encode("the")]), 10)
    if os.environ.get("COURSE_DATA_DIR"):
        lib.data.load_char_corpus()
    for argv in (["--data", text_file, "--out", os.path.join(out, "cli"), "--max-steps", "5",
                  "--warmup-steps", "1", "--block-size", "16", "--n-layer", "1", "--n-head", "1",
                  "--n-embd", "16", "--batch-size", "4", "--eval-interval", "5",
                  "--eval-batches", "1", "--device", "cpu", "--no-progress"],):
        lib.cli.train_main(argv)
    try:
        lib.cli.sample_main(["--checkpoint", os.path.join(out, "cli"), "--tokens", "5", "--seed", "1"])
    except SystemExit:
        pass
    watching = False
    with open(log, "w") as f:  # the test's own file, not watched
        json.dump(writes, f)
""")


def test_lib_writes_only_in_its_cache_and_the_output_folder(tmp_path):
    """Every file lib creates, changes, moves or deletes (seen by a Python audit hook, in a real
    process running training, the run cache, resume, sampling and the CLI) lies under the
    cache folder or the output folder it was given; the working folder and HOME stay empty."""
    from helpers import make_text

    text_file = tmp_path / "input" / "text.txt"
    text_file.parent.mkdir()
    text_file.write_text(make_text(800))
    cache, out, home, cwd, tmp = (tmp_path / name for name in ("cache", "out", "home", "cwd", "tmp"))
    for folder in (home, cwd, tmp):
        folder.mkdir()
    log = tmp_path / "writes.json"
    env = {**ENV, "COURSE_CACHE_DIR": str(cache), "HOME": str(home), "TMPDIR": str(tmp)}
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(text_file), str(out), str(log)],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    writes = json.loads(log.read_text())
    assert len(writes) > 10  # the hook saw the checkpoints being written
    allowed = [os.path.realpath(cache), os.path.realpath(out)]
    outside = [(event, path) for event, path in writes
               if not any(os.path.realpath(path).startswith(root + os.sep) or
                          os.path.realpath(path) == root for root in allowed)]
    assert outside == [], outside
    assert list(cwd.iterdir()) == [] and list(home.iterdir()) == []
    assert text_file.read_text() == make_text(800)


def test_same_seed_same_trajectory_in_two_processes(tmp_path):
    """Two separate processes, same seed and config: bit-identical losses and weights."""
    from helpers import TINY, make_text

    text_file = tmp_path / "text.txt"
    text_file.write_text(make_text())
    runs = []
    for name in ("a", "b"):
        res = subprocess.run([sys.executable, "-m", "lib.train", "--data", str(text_file),
                              "--out", str(tmp_path / name), "--max-steps", "40", *TINY],
                             capture_output=True, text=True, timeout=300, env=ENV)
        assert res.returncode == 0, res.stderr
        runs.append(ckpt.load_checkpoint(tmp_path / name))
    a, b = runs
    assert [r["loss"] for r in a["history"]["train"]] == [r["loss"] for r in b["history"]["train"]]
    assert [r["val_loss"] for r in a["history"]["eval"]] == [r["val_loss"] for r in b["history"]["eval"]]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
