"""A large corpus through the course's data path: preparing it, starting to train on it, the
memory it takes, and the speed of batches read from the memory map.

    python benchmarks/own_text.py                       # 1 GB, about 10 minutes on 2 cores
    python benchmarks/own_text.py --mb 50 --bpe-mb 5 --steps 200 --out /tmp/own.json   # CI's

It writes (default benchmarks/own-text.json):
- `prepare`: for the char tokenizer on the whole synthetic corpus (Tiny Shakespeare repeated to
  `--mb` MB) and for a BPE tokenizer on its first `--bpe-mb` MB: seconds, MB/s, and the peak
  anonymous memory of the process (RssAnon: its own memory, not the file pages the kernel
  caches for it and can drop);
- `train`: `python -m lib.train --data PREPARED` on the char corpus: seconds from the process's
  start to the end of its first step, and its anonymous memory at steps 1, 100, ..., `--steps`;
- `speed`: training tokens per second on Tiny Shakespeare with the CPU preset, the splits read
  from the memory map against the same splits held in memory as int64 ids (the course's old
  way), in alternating rounds, and their ratio (median over rounds);
- `goals`: the issue's goals, and whether the run met each.
Run it on an otherwise idle machine: it times things.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import data  # noqa: E402
from lib.course import course_config  # noqa: E402
from lib.device import machine_identity  # noqa: E402
from lib.timing import anon_memory  # noqa: E402

MB = 1 << 20


def run_watched(cmd: list[str], env=None) -> dict:
    """Run `cmd`, polling its anonymous memory every 20 ms: seconds, peak RssAnon, output."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0

    def poll():
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, anon_memory(proc.pid) or 0)
            time.sleep(0.02)

    watcher = threading.Thread(target=poll)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return {"seconds": time.perf_counter() - start, "peak_anon_mb": peak / MB, "stdout": out}


def synthetic_corpus(folder: Path, mb: int) -> Path:
    text = data.corpus_path().read_text(encoding="utf-8")
    path = folder / f"shakespeare-x-{mb}mb.txt"
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < mb * MB:
            f.write(text)
            written += len(text)
    return path


def prepare_run(source: Path, out: Path, tokenizer: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    got = run_watched([sys.executable, "-m", "lib.prepare", "--data", str(source), "--out", str(out),
                       "--tokenizer", tokenizer], env)
    mb = source.stat().st_size / MB
    return {"tokenizer": tokenizer, "mb": round(mb, 1), "seconds": round(got["seconds"], 2),
            "mb_per_sec": round(mb / got["seconds"], 1), "peak_anon_mb": round(got["peak_anon_mb"], 1)}


# The child process that trains: it records, at chosen steps, the time since it started and
# its anonymous memory, by wrapping the trainer's step.
CHILD = r"""
import json, os, sys, time
start = float(os.environ["BENCH_START"])
import lib.trainer as T
from lib.cli import train_main
from lib.timing import anon_memory
marks, record, step = {}, set(json.loads(os.environ["BENCH_MARKS"])), [0]
inner = T.Trainer.train_step
def train_step(self):
    out = inner(self)
    step[0] += 1
    if step[0] in record:
        anon = anon_memory()
        marks[step[0]] = {"seconds": time.time() - start, "anon_mb": anon / 2**20}
    return out
T.Trainer.train_step = train_step
try:
    train_main(sys.argv[1:])
finally:
    print("MARKS" + json.dumps(marks))
"""


def train_run(prepared: Path, steps: int, out: Path) -> dict:
    marks = [1] + list(range(100, steps + 1, 100))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_START": repr(time.time()),
           "BENCH_MARKS": json.dumps(marks)}
    got = run_watched([sys.executable, "-c", CHILD, "--data", str(prepared), "--out", str(out),
                       "--overwrite", "--max-steps", str(steps), "--eval-interval", str(steps),
                       "--eval-batches", "2", "--eval-tokens", "20000", "--warmup-steps", "10",
                       "--n-layer", "2", "--n-embd", "64", "--n-head", "2", "--block-size", "64",
                       "--batch-size", "16", "--no-progress"], env)
    line = next(x for x in got["stdout"].splitlines() if x.startswith("MARKS"))
    marks = {int(k): v for k, v in json.loads(line[5:]).items()}
    anon = {s: round(m["anon_mb"], 1) for s, m in sorted(marks.items())}
    later = [v for s, v in anon.items() if s >= 100]
    return {"steps": steps, "first_step_seconds": round(marks[1]["seconds"], 2), "anon_mb": anon,
            "anon_growth_mb_100_to_end": round(later[-1] - later[0], 1) if len(later) > 1 else None,
            "peak_anon_mb": round(got["peak_anon_mb"], 1)}


def speed_run(rounds: int, steps: int) -> dict:
    """Tokens per second of the CPU preset's training with splits from the memory map and in
    memory (int64, as before), alternating, on the same model state and batches."""
    import torch

    from lib.trainer import Trainer

    torch.manual_seed(0)
    corpus = data.load_char_corpus()
    _, model_config, config = course_config("cpu")
    config = dataclasses.replace(config, max_steps=10**6, out_dir="", progress=False,
                                 eval_interval=10**6)
    splits = {"memory_map": (corpus.train, corpus.val),
              "in_memory": (corpus.train.long().clone(), corpus.val.long().clone())}
    trainers = {k: Trainer(model_config, config, tr, va, corpus.tokenizer) for k, (tr, va) in splits.items()}
    rates = {k: [] for k in trainers}
    for t in trainers.values():
        for _ in range(3):  # warm up
            t.train_step()
    for _ in range(rounds):
        for name, t in trainers.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                t.train_step()
            rates[name].append(steps * t.tokens_per_step / (time.perf_counter() - t0))
    ratio = statistics.median(a / b for a, b in zip(rates["memory_map"], rates["in_memory"]))
    return {"preset_model": model_config.to_dict(), "rounds": rounds, "steps_per_round": steps,
            "tokens_per_sec": {k: [round(r) for r in v] for k, v in rates.items()},
            "memory_map_over_in_memory": round(ratio, 3)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=int, default=1024, help="size of the synthetic corpus")
    p.add_argument("--bpe-mb", type=int, default=100, help="how much of it the BPE run prepares")
    p.add_argument("--bpe-vocab", type=int, default=4096)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--round-steps", type=int, default=20)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "own-text.json"))
    p.add_argument("--speed-only", action="store_true",
                   help="measure the speed again, into the file --out names (on a quiet machine)")
    args = p.parse_args(argv)
    if args.speed_only:
        result = json.loads(Path(args.out).read_text())
        result["speed"] = speed_run(args.rounds, args.round_steps)
        result["speed"]["command"] = "python benchmarks/own_text.py " + " ".join(argv or sys.argv[1:])
        result["goals"]["memory_map_speed_at_least_0.97"] = (
            result["speed"]["memory_map_over_in_memory"] >= 0.97)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print("speed:", result["speed"]["memory_map_over_in_memory"])
        return
    result = {"machine": machine_identity(), "date": time.strftime("%Y-%m-%d"),
              "command": "python benchmarks/own_text.py " + " ".join(argv or sys.argv[1:]),
              "corpus": f"Tiny Shakespeare repeated to {args.mb} MB"}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        source = synthetic_corpus(tmp, args.mb)
        char = prepare_run(source, tmp / "char", "char")
        print("prepare char:", char, flush=True)
        small = tmp / "bpe-source.txt"
        with open(source, "rb") as f, open(small, "wb") as g:
            g.write(f.read(args.bpe_mb * MB).rsplit(b"\n", 1)[0] + b"\n")
        bpe = prepare_run(small, tmp / "bpe", f"bpe:{args.bpe_vocab}")
        print("prepare bpe:", bpe, flush=True)
        result["prepare"] = {"char": char, "bpe": bpe}
        result["train"] = train_run(tmp / "char", args.steps, tmp / "run")
        print("train:", result["train"], flush=True)
    result["speed"] = speed_run(args.rounds, args.round_steps)
    print("speed:", result["speed"]["memory_map_over_in_memory"], flush=True)
    train = result["train"]
    result["goals"] = {
        "prepare_char_peak_anon_mb_at_most_1024": char["peak_anon_mb"] <= 1024,
        "first_step_under_10_s": train["first_step_seconds"] < 10,
        "train_anon_under_1024_mb": max(train["anon_mb"].values()) < 1024,
        "train_anon_flat_within_32_mb": (train["anon_growth_mb_100_to_end"] or 0) <= 32,
        "memory_map_speed_at_least_0.97": result["speed"]["memory_map_over_in_memory"] >= 0.97,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["goals"], indent=1))


if __name__ == "__main__":
    main()
