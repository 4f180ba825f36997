"""What each change since GPT-2 buys at the course's scale, and what the KV cache saves.
(Lesson 16 reads the results.)

    python benchmarks/architectures.py                       # 7 architectures x 3 seeds x 20 s
    python benchmarks/architectures.py --seconds 10 --seeds 0 --skip-cache

Training: the CPU preset (lib.course) with GPT-2's architecture, each switch of GPTConfig alone
(rotary positions, RMSNorm, SwiGLU, QK-norm, no biases) and all of them together ("modern"),
each trained for the same time budget (TrainConfig.max_time) and seed. Every run has the same
max_steps, twice the most that lib.trainer.steps_in_time finds for any of them, so the time
always ends a run first and the learning-rate schedule (which follows the time under a budget:
Trainer.schedule_position) is the same function of time for every architecture: a faster one
takes more steps along it. The seeds run in the outer loop, so that a machine that slows down
for a while slows every architecture alike. Recorded
per run: the loss on the whole validation split (lib.evaluation.split_loss), the steps it took,
tokens per second of training, and the parameter count (within 1% of GPT-2's for every
architecture: RoPE drops the position table, SwiGLU is 8d/3 wide).

The KV cache: for the CPU preset's shape with a context of 256, the time of one generation
step at 64, 128 and 256 tokens of context, without the cache (the model reads the whole
context) and with it (the model reads one token; the others' keys and values are cached),
the median of repeated steps; and the memory the cache takes per token, computed
(2 x n_layer x n_embd numbers) and checked against the cache's tensors.
Results go to benchmarks/architectures.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from lib.course import PRESETS
from lib.data import load_char_corpus
from lib.evaluation import split_loss
from lib.model import GPT
from lib.sampling import generate
from lib.trainer import Trainer, steps_in_time

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "architectures.json"
PRESET = "shakespeare-char-cpu"
VARIANTS = {  # name: the GPTConfig fields that differ from GPT-2's
    "gpt2": {},
    "rope": {"position": "rope"},
    "rmsnorm": {"norm": "rmsnorm"},
    "swiglu": {"mlp": "swiglu"},
    "qk_norm": {"qk_norm": True},
    "no_bias": {"bias": False},
    "modern": {"position": "rope", "norm": "rmsnorm", "mlp": "swiglu", "qk_norm": True,
               "bias": False},
}
CONTEXTS = [64, 128, 256]
CACHE_BLOCK = 256


def train_one(variant: str, seed: int, seconds: float, max_steps: int, corpus) -> dict:
    model_config, config = PRESETS[PRESET]
    model_config = dataclasses.replace(model_config, **VARIANTS[variant])
    config = dataclasses.replace(config, seed=seed, max_time=seconds, max_steps=max_steps,
                                 device="cpu", progress=False, eval_interval=max_steps,
                                 log_interval=max_steps, checkpoint_interval=0, out_dir="")
    trainer = Trainer(model_config, config, corpus.train, corpus.val)
    trainer.run()
    loss = split_loss(trainer.model, corpus.val)
    if trainer.step >= max_steps:
        raise RuntimeError(f"{variant} seed {seed} ran out of steps ({max_steps}) before its "
                           f"{seconds} s: raise the margin")
    return {"variant": variant, "seed": seed, "params": trainer.model.num_parameters(),
            "max_steps": max_steps, "steps": trainer.step, "seconds": round(trainer.elapsed, 2),
            "tokens_per_s": round(trainer.step * trainer.tokens_per_step / trainer.elapsed),
            "val_loss_full_split": round(loss, 4)}


def step_seconds(fn, repeats: int) -> float:
    """Median seconds of fn() over `repeats` calls, after two to warm up."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def cache_speed(repeats: int) -> dict:
    model_config = dataclasses.replace(PRESETS[PRESET][0], block_size=CACHE_BLOCK)
    torch.manual_seed(0)
    model = GPT(model_config).eval()
    ids = torch.randint(model_config.vocab_size, (1, CACHE_BLOCK))
    rows = []
    for ctx in CONTEXTS:
        no_cache = step_seconds(lambda: model(ids[:, :ctx])[:, -1], repeats)
        cache = model.new_cache()
        model(ids[:, :ctx - 1], cache)  # the first ctx - 1 tokens, read once

        def one_step():
            cache.length = ctx - 1  # the step at position ctx - 1, again and again
            model(ids[:, ctx - 1:ctx], cache)

        cached = step_seconds(one_step, repeats)
        rows.append({"context": ctx, "no_cache_tokens_per_s": round(1 / no_cache, 1),
                     "cache_tokens_per_s": round(1 / cached, 1),
                     "speedup": round(no_cache / cached, 2)})
        print(f"context {ctx}: {1 / no_cache:.0f} tokens/s without the cache, "
              f"{1 / cached:.0f} with it", flush=True)
    c = model_config
    computed = 2 * c.n_layer * c.n_embd * 4  # key and value, every block, float32
    cache = model.new_cache()
    model(ids[:, :8], cache)
    measured = cache.nbytes() / cache.capacity  # batch 1
    assert measured == computed, (measured, computed)
    # end to end: the same tokens with and without the cache, and the time each takes
    start, n = ids[:, :1], CACHE_BLOCK - 1
    timed = {}
    for use in (True, False):
        t0 = time.perf_counter()
        out = generate(model, start, n, generator=torch.Generator().manual_seed(0), use_cache=use)
        timed[use] = (time.perf_counter() - t0, out)
    assert torch.equal(timed[True][1], timed[False][1])
    return {"model": {**c.to_dict(), "params": model.num_parameters()}, "steps": rows,
            "bytes_per_token": computed, "bytes_per_token_measured": measured,
            "generate_tokens": n, "generate_seconds_cache": round(timed[True][0], 3),
            "generate_seconds_no_cache": round(timed[False][0], 3), "same_tokens": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seconds", type=float, default=20.0, help="training time per run")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per cache point")
    parser.add_argument("--skip-cache", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT, help="default: %(default)s")
    args = parser.parse_args()
    out = args.out
    results = json.loads(out.read_text()) if out.exists() else {"runs": []}
    results.update({
        "preset": PRESET, "variants": VARIANTS, "seconds_per_run": args.seconds,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/architectures.py " + " ".join(sys.argv[1:]),
    })
    if not args.skip_cache:
        results["kv_cache"] = cache_speed(args.repeats)
        out.write_text(json.dumps(results, indent=1) + "\n")
    if args.skip_training:
        return
    corpus = load_char_corpus()
    model_config, config = PRESETS[PRESET]
    max_steps = 2 * max(  # one for all: the time ends every run, on one schedule
        steps_in_time(dataclasses.replace(model_config, **VARIANTS[v]),
                      dataclasses.replace(config, device="cpu"), corpus.train, corpus.val,
                      args.seconds) for v in args.variants)
    for seed in args.seeds:
        for v in args.variants:
            run = train_one(v, seed, args.seconds, max_steps, corpus)
            print(json.dumps(run), flush=True)
            results["runs"] = [r for r in results["runs"]
                               if (r["variant"], r["seed"]) != (v, seed)] + [run]
            results["runs"].sort(key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"]))
            out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
