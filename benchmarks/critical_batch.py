"""How many steps, and how many tokens, does the course's model need to reach a target loss as
the batch grows? Where do larger batches stop paying? (Lesson 9 reads the results.)

    python benchmarks/critical_batch.py                    # every batch size, seeds 0 and 1
    python benchmarks/critical_batch.py --batches 8 64 --seeds 2

The model is the CPU preset's shape and optimizer (lib.course), trained at a constant learning
rate after a warmup of 20 steps (so that the number of steps does not decide the schedule, and
the preset's 100-step warmup does not put a floor under the largest batches' steps), at each batch
size until its loss on a fixed stretch of validation text (the first `--eval-chars` characters,
every token predicted once: lib.evaluation.split_loss) falls below each target. The step where
it crossed is interpolated between two evaluations. Steps and tokens do not depend on the
machine's speed, so this can run beside other work; the seconds it records do.

McCandlish et al. (2018) found that steps S and examples E to reach a loss trade off as
(S / S_min - 1)(E / E_min - 1) = 1, which for S as a function of the batch B is
S = S_min (1 + B_crit / B): far below the critical batch B_crit, doubling B halves the steps
at no extra tokens; far above it, the steps stop falling and the tokens grow with B. The fit
is least squares of S against 1 / B. The learning rate is the same at every batch (the preset's):
a rate tuned per batch would help the larger ones more, so B_crit here is for this rate.
Results go to benchmarks/critical-batch.json (one entry per batch size and seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from lib.course import PRESETS
from lib.data import load_char_corpus
from lib.evaluation import split_loss
from lib.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent

PRESET = "shakespeare-char-cpu"
OUT = ROOT / "benchmarks" / "critical-batch.json"
BATCHES = [4, 8, 16, 32, 64, 128, 256]
TARGETS = [2.2, 2.0]
# A short warmup: the preset's 100 steps would be a floor under the steps of the largest
# batches (they reach 2.2 in about that many), and the experiment would measure the warmup.
WARMUP = 20


def steps_to_targets(batch: int, seed: int, targets: list[float], eval_every: int,
                     max_steps: int, eval_chars: int, corpus, verbose: bool = False) -> dict:
    model_config, config = PRESETS[PRESET]
    config = dataclasses.replace(config, batch_size=batch, schedule="constant", seed=seed,
                                 warmup_steps=WARMUP,
                                 max_steps=max_steps, progress=False, device="cpu",
                                 eval_interval=max_steps, log_interval=max_steps)
    trainer = Trainer(model_config, config, corpus.train, corpus.val)
    probe = corpus.val[:eval_chars]
    crossed: dict[str, float | None] = {f"{t}": None for t in targets}
    curve = [(0, split_loss(trainer.model, probe))]
    start = time.perf_counter()
    step = 0
    while step < max_steps and any(v is None for v in crossed.values()):
        for _ in range(eval_every):
            trainer.train_step()
        step += eval_every
        loss = split_loss(trainer.model, probe)
        (s0, l0) = curve[-1]
        curve.append((step, loss))
        for t in targets:
            if crossed[f"{t}"] is None and loss <= t:
                # linear interpolation between the two evaluations around the crossing
                crossed[f"{t}"] = s0 + (l0 - t) / (l0 - loss) * (step - s0) if l0 > t else float(step)
        if verbose:
            print(f"  step {step:>6}: loss {loss:.4f}", flush=True)
        if not math.isfinite(loss):
            break
    return {"steps": crossed,
            "tokens": {k: (None if v is None else v * batch * model_config.block_size)
                       for k, v in crossed.items()},
            "curve": [(s, round(v, 4)) for s, v in curve],
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=BATCHES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--targets", type=float, nargs="+", default=TARGETS)
    parser.add_argument("--eval-chars", type=int, default=16384)
    parser.add_argument("--evals-per-run", type=int, default=60,
                        help="evaluations spread over a run's expected length")
    parser.add_argument("--verbose", action="store_true", help="print every evaluation")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    corpus = load_char_corpus()
    results = json.loads(OUT.read_text()) if OUT.exists() else {"runs": []}
    for seed in args.seeds:
        for batch in args.batches:
            # Expected steps to the lower target: about 250 at batch 32 (measured), more below it;
            # evaluations every ~1/60th of that, and a run gives up at 8 times as many steps.
            expected = 250 * max(1.0, 32 / batch) ** 0.9
            eval_every = max(4, int(expected / args.evals_per_run))
            run = steps_to_targets(batch, seed, args.targets, eval_every, max_steps=int(8 * expected),
                                   eval_chars=args.eval_chars, corpus=corpus, verbose=args.verbose)
            entry = {"batch": batch, "seed": seed, "eval_every": eval_every, **run}
            results["runs"] = [r for r in results["runs"]
                               if (r["batch"], r["seed"]) != (batch, seed)] + [entry]
            print(f"batch {batch:>4} seed {seed}: steps {run['steps']}  ({run['seconds']} s)",
                  flush=True)
            results.update({
                "preset": PRESET, "targets": args.targets, "eval_chars": args.eval_chars,
                "schedule": f"constant after a warmup of {WARMUP} steps",
                "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
                "date": datetime.date.today().isoformat(),
                "command": "python benchmarks/critical_batch.py " + " ".join(sys.argv[1:]),
            })
            results["runs"].sort(key=lambda r: (r["seed"], r["batch"]))
            OUT.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
