"""Hostile and absurd inputs against the command lines, as a learner (or a damaged file) would
give them; each probe's ending is classified and printed as a table.

    python benchmarks/probe_cli.py            # about 3 minutes on 2 cores

Endings: "clear error" (exit 2, or 1 where the output failed, one line naming the problem, no
traceback), "ok" (did what was asked), "stopped" (a signal: exit 130/143, the step saved),
"quiet" (exit 141, nothing said: the reader closed the pipe), and the bad ones: "traceback",
"hang" (no answer in 120 s), "wrong" (exit 0 where an error was due, or the reverse), "lost"
(work that existed before the probe is gone or changed). A probe states what it expects; the
script exits 1 when any ending differs. Issue 18 asked for this count; tests/test_recovery.py
holds a test for each class of failure, and this script is the wider sweep. Issue 42's round
two adds the GPT-2 loader's folders and hub, the settings' limits, start-up and output, the
Colab set-up cell and quiz formats (`round_two`).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--batch-size",
        "8", "--warmup-steps", "2", "--eval-interval", "10", "--eval-batches", "2", "--log-interval",
        "5", "--device", "cpu", "--no-progress", "--seed", "0"]
TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\n") * 200


def run(module: str, *args, env=None, timeout=120, stdin=None):
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    try:
        res = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                             text=True, timeout=timeout, env=full_env, cwd=ROOT, stdin=stdin,
                             errors="replace")
        return res.returncode, res.stdout, res.stderr
    except subprocess.TimeoutExpired:
        return None, "", ""


def ending(code, err) -> str:
    if code is None:
        return "hang"
    if "Traceback" in err:
        return "traceback"
    if code == 0:
        return "ok"
    if code in (130, 143):
        return "stopped"
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if code == 141 and not lines:
        return "quiet"  # the reader closed the pipe: nothing to report
    return "clear error" if code in (1, 2) and lines and "error" in lines[-1] else f"exit {code}"


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="probe-cli-"))
    text = work / "text.txt"
    text.write_text(TEXT)
    base = work / "base"  # a finished run that probes must never lose
    assert run("lib.train", "--data", text, "--out", base, "--max-steps", "20", *TINY)[0] == 0
    ckpt = base / "ckpt.pt"
    keep = digest(ckpt)

    def train(*args, **kw):
        return run("lib.train", "--data", text, *TINY, *args, **kw)

    def folder(name: str) -> Path:
        path = work / name
        path.mkdir()
        return path

    def bad_file(name: str, data: bytes) -> Path:
        path = work / name
        path.write_bytes(data)
        return path

    probes: list[tuple[str, str, callable]] = []

    def probe(name, expect="clear error"):
        def wrap(fn):
            probes.append((name, expect, fn))
            return fn
        return wrap

    # --- the corpus ---------------------------------------------------------------------
    probe("--data: no such file")(lambda: run("lib.train", "--data", work / "nope.txt", *TINY))
    probe("--data: a folder")(lambda: run("lib.train", "--data", work, *TINY))
    probe("--data: empty file")(lambda: run("lib.train", "--data", bad_file("e.txt", b""), *TINY))
    probe("--data: one character")(lambda: run("lib.train", "--data", bad_file("o.txt", b"a"), *TINY))
    probe("--data: random bytes")(lambda: run("lib.train", "--data", bad_file("r.bin", os.urandom(5000)), *TINY))
    probe("--data: UTF-16 without BOM")(lambda: run(
        "lib.train", "--data", bad_file("u16.txt", TEXT[:3000].encode("utf-16-le")), *TINY))
    probe("--data: NUL bytes")(lambda: run("lib.train", "--data", bad_file("nul.txt", b"\0" * 5000), *TINY))
    probe("--data: name with terminal escapes")(lambda: run(
        "lib.train", "--data", work / "x\x1b[31mred.txt", *TINY))
    probe("--data: shorter than one window")(lambda: run(
        "lib.train", "--data", bad_file("short.txt", b"hello world\n"), *TINY, "--max-steps", "5"))
    # --- where the run goes ---------------------------------------------------------------
    probe("--out ''")(lambda: train("--out", ""))
    probe("--out: an existing file")(lambda: train("--out", text))
    probe("--out: under a file")(lambda: train("--out", text / "run"))
    probe("the same command again (no --resume)")(lambda: train("--out", base, "--max-steps", "20"))
    probe("--resume and --overwrite together")(lambda: train("--out", base, "--resume", "--overwrite"))
    probe("--resume: no checkpoint there")(lambda: train("--out", folder("empty"), "--resume"))
    probe("--resume: other --data")(lambda: run(
        "lib.train", "--data", bad_file("other.txt", b"zzzz qqqq\n" * 500), "--out", base, "--resume", "--max-steps", "40", *TINY))
    probe("--resume: --max-steps below the saved step")(lambda: run(
        "lib.train", "--out", base, "--resume", "--max-steps", "5"))
    probe("--resume: a finished run, nothing to train")(lambda: run("lib.train", "--out", base, "--resume"))
    probe("junk ckpt.pt, no --resume")(lambda: (
        lambda out: ((out / "ckpt.pt").write_bytes(b"junk" * 100), train("--out", out, "--max-steps", "5"))[1])(
        folder("junk1")))
    probe("junk ckpt.pt, --resume")(lambda: (
        lambda out: ((out / "ckpt.pt").write_bytes(os.urandom(4000)), train("--out", out, "--resume"))[1])(
        folder("junk2")))
    probe("empty ckpt.pt, --resume")(lambda: (
        lambda out: ((out / "ckpt.pt").write_bytes(b""), train("--out", out, "--resume"))[1])(folder("junk3")))
    if hasattr(os, "mkfifo"):
        probe("a FIFO named ckpt.pt")(lambda: (
            lambda out: (os.mkfifo(out / "ckpt.pt"), train("--out", out, "--max-steps", "5"))[1])(folder("fifo")))
    # --- settings ------------------------------------------------------------------------------
    for flag, value in (("--max-steps", "0"), ("--max-steps", "-1"), ("--lr", "nan"), ("--lr", "inf"),
                        ("--lr", "-1"), ("--batch-size", "0"), ("--n-embd", "38400"),
                        ("--n-head", "3"), ("--block-size", "100000"), ("--seed", "-1"),
                        ("--seed", str(2**40)), ("--device", "cuda"), ("--device", "tpu"),
                        ("--preset", "nope"), ("--eval-batches", str(10**9)), ("--max-time", "-5"),
                        ("--grad-clip", "nan"), ("--dropout", "1.5"), ("--schedule", "nope")):
        probe(f"{flag} {value}")(lambda flag=flag, value=value: train(
            "--out", work / f"s{abs(hash((flag, value)))}", flag, value))
    # --- signals ---------------------------------------------------------------------------
    def interrupted(signals, gap=0.0):
        out = folder(f"sig{len(probes)}{time.monotonic_ns()}")
        proc = subprocess.Popen([sys.executable, "-m", "lib.train", "--data", str(text), "--out", str(out),
                                 *TINY, "--max-steps", "100000"], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        proc.stdout.readline()
        time.sleep(1.0)
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(gap)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            return None, "", ""
        saved = run("lib.sample", "--checkpoint", out, "--tokens", "5")[0] == 0
        return proc.returncode if saved else -1, "", err

    if os.name == "posix":
        probe("Ctrl-C mid-run", "stopped")(lambda: interrupted([signal.SIGINT]))
        probe("SIGTERM mid-run", "stopped")(lambda: interrupted([signal.SIGTERM]))
        probe("three quick Ctrl-Cs", "stopped")(lambda: interrupted([signal.SIGINT] * 3, gap=0.001))
    # --- sampling ---------------------------------------------------------------------------
    probe("sample: no such checkpoint")(lambda: run("lib.sample", "--checkpoint", work / "nope"))
    probe("sample: a junk file")(lambda: run("lib.sample", "--checkpoint", bad_file("j.pt", b"junk")))
    probe("sample: the checkpoint's file path", "ok")(lambda: run(
        "lib.sample", "--checkpoint", ckpt, "--tokens", "20"))
    probe("sample: a prompt with unknown characters")(lambda: run(
        "lib.sample", "--checkpoint", base, "--prompt", "Ωmega"))
    for flag, value in (("--tokens", str(10**9)), ("--tokens", "-1"), ("--temperature", "-1"),
                        ("--temperature", "nan"), ("--top-k", "0"), ("--top-p", "1.5"),
                        ("--seed", "-3"), ("--device", "cuda")):
        probe(f"sample: {flag} {value}")(lambda flag=flag, value=value: run(
            "lib.sample", "--checkpoint", base, flag, value))
    probe("sample: a cp1252 console", "ok")(lambda: run(
        "lib.sample", "--checkpoint", base, "--tokens", "30", env={"PYTHONIOENCODING": "cp1252"}))
    # --- benchmark ----------------------------------------------------------------------------
    notes = bad_file("notes.txt", b"a learner's notes")
    probe("bench: --out a file it did not write")(lambda: run(
        "lib.bench", "--out", notes, "--steps", "1", "--rounds", "1"))
    probe("bench: --out under a file")(lambda: run(
        "lib.bench", "--out", notes / "x.json", "--steps", "1", "--rounds", "1"))
    probe("bench: --steps 0")(lambda: run("lib.bench", "--steps", "0"))

    round_two(work, text, base, probe, folder)

    rows, bad = [], 0
    for name, expect, fn in probes:
        code, _, err = fn()
        got = ending(code, err)
        if got == "ok" and expect != "ok":
            got = "wrong"
        if digest(ckpt) != keep or notes.read_bytes() != b"a learner's notes":
            got, keep = "lost", digest(ckpt)  # judge the next probes on their own
            notes.write_bytes(b"a learner's notes")
        bad += got != expect
        last = (err.strip().splitlines() or [""])[-1][:110]
        rows.append((name, expect, got, last))
        print(f"{'  ' if got == expect else '!!'} {name:45s} {got:12s} {last}", flush=True)
    print(f"\n{len(rows)} probes: {len(rows) - bad} ended as expected, {bad} did not.")
    counts = {}
    for _, _, got, _ in rows:
        counts[got] = counts.get(got, 0) + 1
    print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 1 if bad else 0


def gpt2_folder(where: Path) -> Path:
    """A GPT-2 snapshot as save_pretrained writes it: tiny, random weights, a small BPE."""
    import tokenizers
    import torch
    import transformers

    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([TEXT], vocab_size=300, min_frequency=1, show_progress=False,
                            special_tokens=["<|endoftext|>"])
    where.mkdir()
    bpe.save_model(str(where))
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)  # <|endoftext|>
    transformers.GPT2LMHeadModel(config).save_pretrained(where)
    return where


def round_two(work: Path, text: Path, base: Path, probe, folder) -> None:
    """Issue 42's classes: each probe a real process, as in main."""
    import json
    import pickle
    import shutil
    import socket
    import struct

    import torch

    from lib.checkpoint import tensor_checksum

    def train(*args, **kw):
        return run("lib.train", "--data", text, *TINY, *args, **kw)

    # --- the GPT-2 loader with a local folder, and the hub ------------------------------------
    try:
        good = gpt2_folder(work / "gpt2")
    except ImportError:
        good = None  # no transformers: the loader's probes are left out
    if good is not None:
        from safetensors.torch import load_file, save_file

        def spoilt(name, change):
            where = work / f"gpt2-{name}"
            shutil.copytree(good, where)
            change(where)
            code, out, err = run("lib.sample", "--pretrained", where, "--tokens", "3")
            return (-1 if (where / "PWNED").exists() else code), out, err

        def weights(change):
            def apply(where):
                w = load_file(where / "model.safetensors")
                change(w)
                save_file(w, where / "model.safetensors", metadata={"format": "pt"})
            return apply

        def config(**changes):
            def apply(where):
                path = where / "config.json"
                path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
            return apply

        class Pickled:
            def __reduce__(self):
                return (os.system, (f"touch {work}/gpt2-pickle/PWNED",))

        def pickle_bin(where):
            (where / "model.safetensors").unlink()
            (where / "pytorch_model.bin").write_bytes(pickle.dumps({"wte.weight": Pickled()}))

        huge = json.dumps({"transformer.wte.weight": {"dtype": "F32", "shape": [10**12, 32],
                                                      "data_offsets": [0, 128 * 10**12]}}).encode()
        st = "model.safetensors"
        for name, change in (
                ("empty", lambda w: (w / st).write_bytes(b"")),
                ("truncated", lambda w: (w / st).write_bytes((w / st).read_bytes()[:9000])),
                ("garbage", lambda w: (w / st).write_bytes(os.urandom(5000))),
                ("huge", lambda w: (w / st).write_bytes(struct.pack("<Q", len(huge)) + huge)),
                ("shapes", config(n_embd=64)),
                ("bert", config(model_type="bert")),
                ("layers", config(n_layer=10**6, n_embd=4096, n_head=32)),
                ("no-block", weights(lambda w: [w.pop(k) for k in list(w) if ".h.1." in k])),
                ("ints", weights(lambda w: w.update({"transformer.ln_f.weight": torch.ones(32, dtype=torch.int32)}))),
                ("nan", weights(lambda w: w["transformer.h.0.mlp.c_fc.weight"].fill_(float("nan")))),
                ("vocab", lambda w: (w / "vocab.json").write_text("[1, 2]")),
                ("merges", lambda w: (w / "merges.txt").write_bytes(b"#version: 0.2\n\xff\xfe a\n")),
                ("pickle", pickle_bin)):
            probe(f"--pretrained: {name}")(lambda name=name, change=change: spoilt(name, change))
        probe("--pretrained: a good folder", "ok")(lambda: run(
            "lib.sample", "--pretrained", good, "--tokens", "5"))

        def black_hole():
            with socket.socket() as hole:
                hole.bind(("127.0.0.1", 0))
                hole.listen(16)
                env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HTTP", "http"))}
                env.update(HF_ENDPOINT=f"http://127.0.0.1:{hole.getsockname()[1]}", NO_PROXY="*",
                           HF_HOME=str(work / "hf-empty"), PYTHONWARNINGS="ignore")
                res = subprocess.run([sys.executable, "-m", "lib.sample", "--pretrained", "gpt2"],
                                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
                return res.returncode, res.stdout, res.stderr

        probe("--pretrained gpt2: a hub that never answers")(black_hole)
    # --- settings' limits, names ----------------------------------------------------------------
    for flag, value in (("--max-steps", 10**23), ("--max-time", 1e15), ("--batch-size", 10**9)):
        probe(f"{flag} {value:g}")(lambda flag=flag, value=value: train(
            "--out", work / f"l{flag}", flag, value))
    probe("--eval-batches x --batch-size x --block-size")(lambda: train(
        "--out", work / "lbig", "--eval-batches", 10_000, "--batch-size", 100_000, "--block-size", 1024))
    probe("--out: a name of 300 bytes")(lambda: train("--out", work / ("o" * 300)))
    probe("sample: --checkpoint a name of 300 bytes")(lambda: run(
        "lib.sample", "--checkpoint", work / ("c" * 300)))
    # --- start-up and output --------------------------------------------------------------------
    def py(*args):
        res = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                             timeout=120)
        return res.returncode, res.stdout, res.stderr

    def ctrl_c_starting(module, *args, delay=0.3):
        proc = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out, err

    def head(nbytes, *args):
        proc = subprocess.Popen([sys.executable, "-m", *map(str, args)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.read(nbytes)
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace")
        return proc.wait(timeout=120), "", err

    def to_full(*args):
        with open("/dev/full", "w") as full:
            res = subprocess.run([sys.executable, "-m", *map(str, args)], stdout=full, text=True,
                                 stderr=subprocess.PIPE, cwd=ROOT, timeout=120)
        return res.returncode, "", res.stderr

    def nan_checkpoint():
        state = torch.load(base / "ckpt.pt", weights_only=True)
        for t in state["model"].values():
            t.fill_(float("nan"))
        state["checksum"] = tensor_checksum(state)
        out = folder("nanckpt")
        torch.save(state, out / "ckpt.pt")
        return run("lib.sample", "--checkpoint", out, "--tokens", "5")

    if os.name == "posix":
        for delay in (0.3, 1.0):
            probe(f"train: Ctrl-C at {delay} s (importing)", "stopped")(
                lambda delay=delay: ctrl_c_starting("lib.train", "--data", text, *TINY, "--out",
                                                    work / f"cc{delay}", "--max-steps", 5, delay=delay))
            probe(f"sample: Ctrl-C at {delay} s (importing)", "stopped")(
                lambda delay=delay: ctrl_c_starting("lib.sample", "--checkpoint", base, delay=delay))
        probe("sample | head -c 10", "quiet")(lambda: head(
            10, "lib.sample", "--checkpoint", base, "--tokens", 1_000_000))
    if os.path.exists("/dev/full"):
        probe("sample > /dev/full")(lambda: to_full("lib.sample", "--checkpoint", base))
        probe("train > /dev/full")(lambda: to_full(
            "lib.train", "--data", text, "--out", work / "fullrun", *TINY, "--max-steps", 5))
    probe("sample: NaN weights")(nan_checkpoint)
    # --- the Colab set-up cell, quiz formats ----------------------------------------------------
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import colab

    check_cell = (
        "import os, subprocess, sys\ncalls = []\n"
        "subprocess.run = lambda args, **kw: calls.append(args)\n"
        "os.chdir = lambda path: calls.append(['chdir', path])\n"
        "sys.path.insert(0, sys.argv[2])\nexec(sys.argv[1])\n"
        "stale = [m for m in sys.modules if m == 'lib' or m.startswith('lib.')]\n"
        "clones = [c for c in calls if c[:2] == ['git', 'clone']]\n"
        "sys.exit(0 if not stale and len(calls) == 3 - int(sys.argv[3]) and "
        "(not clones if sys.argv[3] == '1' else clones) else 3)\n")

    def colab_cell(inside_clone: bool):
        other = folder(f"other{int(inside_clone)}")
        (other / "lib").mkdir()
        (other / "lib" / "__init__.py").write_text("")
        (other / "lib" / "course.py").write_text("PRESETS = {}\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the course not importable
        res = subprocess.run([sys.executable, "-c", check_cell, colab.setup_cell(
            "https://github.com/gpt-course/how-a-gpt-learns-to-write"), str(other),
            str(int(inside_clone))], capture_output=True, text=True, env=env, timeout=120,
            cwd=ROOT / "lessons" if inside_clone else work)
        return res.returncode, res.stdout, res.stderr

    probe("colab cell: another package named lib", "ok")(lambda: colab_cell(False))
    probe("colab cell: inside a clone's lessons/", "ok")(lambda: colab_cell(True))
    quiz_check = ("import json, sys\nfrom lib import quiz\ntry:\n    quiz.check(json.loads(sys.argv[1]))\n"
                  "except ValueError as err:\n    sys.exit(f'quiz: error: {err}')\n")
    answers = [{"answer": a, "correct": a == "a", "feedback": f"Because {a}."} for a in "ab"]
    for spec in ("1000000000", ".1000000000f"):
        questions = [{"question": f"Q{i} {{val_loss:{spec}}}?", "answers": answers} for i in range(3)]
        probe(f"quiz: format {{x:{spec}}}")(lambda q=questions: py("-c", quiz_check, json.dumps(q)))

if __name__ == "__main__":
    sys.exit(main())
