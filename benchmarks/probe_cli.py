"""Hostile and absurd inputs against the command lines, as a learner (or a damaged file) would
give them; each probe's ending is classified and printed as a table.

    python benchmarks/probe_cli.py            # about 5 minutes on 2 cores

Endings: "clear error" (exit 2, one line naming the problem, no traceback), "ok" (did what was
asked), "stopped" (a signal: exit 130/143, the step saved), and the bad ones: "traceback",
"hang" (no answer in 120 s), "wrong" (exit 0 where an error was due, or the reverse), "lost"
(work that existed before the probe is gone or changed). A probe states what it expects; the
script exits 1 when any ending differs. Issue 18 asked for this count; tests/test_recovery.py
holds a test for each class of failure, and this script is the wider sweep.
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
    return "clear error" if code == 2 and lines and "error" in lines[-1] else f"exit {code}"


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


if __name__ == "__main__":
    sys.exit(main())
