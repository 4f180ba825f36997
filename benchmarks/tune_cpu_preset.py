"""Tune the CPU preset for a fixed time budget: train variants of it, score each on the whole
validation split, and keep the results with the machine, date and command.

    python benchmarks/tune_cpu_preset.py                   # every variant not yet measured
    python benchmarks/tune_cpu_preset.py --only lr3e-3     # just these (measured again)
    python benchmarks/tune_cpu_preset.py --list            # the variants and what they change
    python benchmarks/tune_cpu_preset.py --only 2-layers 1-layer --seeds 0 1 2   # with 3 seeds

Each variant starts from another (the first, `start`, is the preset before tuning), changes a
few fields, and trains on Tiny Shakespeare for `--max-time` seconds (120, the course's
two-minute promise). Its `max_steps` is set from a short timing of the variant on this machine,
plus a margin, so that the LR schedule is laid out over about the time the run has; the
trainer's time-aware schedule absorbs the rest: a run stops at its time limit with its LR at
the schedule's end. (Early runs used a margin of 0 or 10%, and a few ran out of steps before
their time; their `seconds` says so.)
The score is the loss on the whole validation split (every token predicted once), not the
trainer's estimate from a few random batches. Results go to benchmarks/cpu-preset-tuning.json
(one entry per variant and seed, replaced when measured again); the Performance appendix renders
them, as a mean and spread over the seeds where a variant has several. A variant without
`--seeds` runs with its config's own seed (1337).
Run one variant at a time on an otherwise idle machine: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch

from lib.data import load_char_corpus
from lib.device import machine_identity
from lib.evaluation import split_loss
from lib.model import GPTConfig
from lib.trainer import TrainConfig, Trainer, steps_in_time

ROOT = Path(__file__).resolve().parent.parent

PRESET = "shakespeare-char-cpu"
OUT = ROOT / "benchmarks" / "cpu-preset-tuning.json"

# Where the tuning started: the preset as it was before (nanoGPT's faster recipe, run by lib's
# trainer). Every variant below changes a few fields of its parent; the chain from START to
# the best variant is the path the tuning took, and that best variant is the preset now.
START_MODEL = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
START_TRAIN = TrainConfig(max_steps=2500, batch_size=16, lr=2e-3, warmup_steps=100, min_lr_ratio=0.1,
                          weight_decay=0.1, beta2=0.99, eval_interval=250, eval_batches=20,
                          log_interval=1)

# name -> (what it tries, parent variant or None for START, GPTConfig changes, TrainConfig changes)
VARIANTS: dict[str, tuple[str, str | None, dict, dict]] = {
    "start": ("the preset before tuning: 4 x 128, context 64, batch 16, LR 2e-3", None, {}, {}),
    "lr3e-3": ("peak LR 3e-3", "start", {}, {"lr": 3e-3}),
    "batch32": ("batch 32 (twice the tokens per step, half the steps)", "start", {}, {"batch_size": 32}),
    "lr3e-3+batch8": ("batch 8 (half the tokens per step, more steps)", "lr3e-3", {}, {"batch_size": 8}),
    "lr3e-3+beta2-0.95": ("AdamW beta2 0.95", "lr3e-3", {}, {"beta2": 0.95}),
    "lr4e-3": ("peak LR 4e-3", "lr3e-3", {}, {"lr": 4e-3}),
    "lr3e-3+3-layers": ("3 layers instead of 4", "lr3e-3", {"n_layer": 3}, {}),
    "lr3e-3+ctx128-batch8": ("context 128, batch 8 (same tokens per step)", "lr3e-3",
                             {"block_size": 128}, {"batch_size": 8}),
    "lr3e-3+ctx32-batch32": ("context 32, batch 32 (same tokens per step)", "lr3e-3",
                             {"block_size": 32}, {"batch_size": 32}),
    "2-layers": ("2 layers", "lr3e-3+3-layers", {"n_layer": 2}, {}),
    "1-layer": ("1 layer", "2-layers", {"n_layer": 1}, {}),
    "2-layers+lr5e-3": ("peak LR 5e-3", "2-layers", {}, {"lr": 5e-3}),
    "2-layers+wide192": ("192 wide, 6 heads", "2-layers", {"n_embd": 192, "n_head": 6}, {}),
    "2-layers+linear0": ("linear decay to 0 instead of cosine to 10%", "2-layers", {},
                         {"schedule": "linear", "min_lr_ratio": 0.0}),
    "2-layers+batch32": ("batch 32", "2-layers", {}, {"batch_size": 32}),
    "2-layers+ctx128-batch8": ("context 128, batch 8 (same tokens per step)", "2-layers",
                               {"block_size": 128}, {"batch_size": 8}),
    "2-layers+eval1000": ("evaluate every 1,000 steps instead of every 250", "2-layers", {},
                          {"eval_interval": 1000}),
    "batch32+lr4e-3": ("peak LR 4e-3", "2-layers+batch32", {}, {"lr": 4e-3}),
    "batch32+linear0": ("linear decay to 0 instead of cosine to 10%", "2-layers+batch32", {},
                        {"schedule": "linear", "min_lr_ratio": 0.0}),
    "batch32+compiled": ("torch.compile on the CPU (its compile time counts)", "2-layers+batch32",
                         {}, {"compile": "on"}),
    # Other optimizers on the preset (2-layers+batch32), each over a small sweep of its LR.
    "sgd-lr0.01": ("SGD with momentum 0.95, LR 0.01", "2-layers+batch32", {},
                   {"optimizer": "sgd", "lr": 0.01}),
    "sgd-lr0.03": ("SGD with momentum 0.95, LR 0.03", "2-layers+batch32", {},
                   {"optimizer": "sgd", "lr": 0.03}),
    "sgd-lr0.1": ("SGD with momentum 0.95, LR 0.1", "2-layers+batch32", {},
                  {"optimizer": "sgd", "lr": 0.1}),
    "sgd-lr0.3": ("SGD with momentum 0.95, LR 0.3", "2-layers+batch32", {},
                  {"optimizer": "sgd", "lr": 0.3}),
    "sgd-lr1": ("SGD with momentum 0.95, LR 1.0", "2-layers+batch32", {},
                {"optimizer": "sgd", "lr": 1.0}),
    "batch32+lr2e-3": ("peak LR 2e-3", "2-layers+batch32", {}, {"lr": 2e-3}),
    "adam-lr3e-3": ("Adam with weight decay 0.1 as L2 in the gradient, LR 3e-3", "2-layers+batch32",
                    {}, {"optimizer": "adam"}),
    "adam-lr1e-3": ("Adam with weight decay 0.1 as L2 in the gradient, LR 1e-3", "2-layers+batch32",
                    {}, {"optimizer": "adam", "lr": 1e-3}),
    "adam-wd0": ("Adam without weight decay, LR 3e-3", "2-layers+batch32", {},
                 {"optimizer": "adam", "weight_decay": 0.0}),
    "muon": ("Muon for the blocks' matrices at LR 1e-2, AdamW for the rest at 3e-3",
             "2-layers+batch32", {}, {"optimizer": "muon", "muon_lr": 1e-2}),
    "muon-lr5e-3": ("Muon LR 5e-3", "muon", {}, {"muon_lr": 5e-3}),
    "muon-lr2e-2": ("Muon LR 2e-2", "muon", {}, {"muon_lr": 2e-2}),
    "muon+batch16": ("batch 16", "muon", {}, {"batch_size": 16}),
    "muon+batch64": ("batch 64", "muon", {}, {"batch_size": 64}),
    "muon+ns3": ("3 Newton-Schulz iterations instead of 5", "muon", {}, {"muon_ns_steps": 3}),
    "muon+adamw-lr5e-3": ("AdamW's part at LR 5e-3", "muon", {}, {"lr": 5e-3}),
    # Towards the target (1.55 or lower): the settings Muon had not been tried with.
    "muon+1-layer": ("1 layer (AdamW with 1 was tied with 2)", "muon", {"n_layer": 1}, {}),
    "muon+3-layers-batch16": ("3 layers, batch 16 (more steps for a deeper model)", "muon",
                              {"n_layer": 3}, {"batch_size": 16}),
    "muon+momentum0.9": ("Muon momentum 0.9 instead of 0.95", "muon", {}, {"momentum": 0.9}),
    "muon+momentum0.98": ("Muon momentum 0.98 instead of 0.95", "muon", {}, {"momentum": 0.98}),
    "muon+linear0": ("linear decay to 0 instead of cosine to 10%", "muon", {},
                     {"schedule": "linear", "min_lr_ratio": 0.0}),
    "muon+cosine0": ("cosine to 0 instead of to 10%", "muon", {}, {"min_lr_ratio": 0.0}),
    "muon+warmup20": ("warmup 20 steps instead of 100", "muon", {}, {"warmup_steps": 20}),
    "muon+wd0": ("no weight decay", "muon", {}, {"weight_decay": 0.0}),
    "muon+beta2-0.95": ("AdamW's part with beta2 0.95", "muon", {}, {"beta2": 0.95}),
    "muon+wsd": ("warmup-stable-decay: the last 30% decays to 0", "muon", {},
                 {"schedule": "wsd", "decay_fraction": 0.3, "min_lr_ratio": 0.0}),
    "muon+noclip": ("no gradient clipping", "muon", {}, {"grad_clip": 0.0}),
    "muon+ctx128-batch16": ("context 128, batch 16 (same tokens per step)", "muon",
                            {"block_size": 128}, {"batch_size": 16}),
    # The two lowest of those combined, then with the fifth (each alone was inside muon's spread).
    "muon+linear0+warmup20": ("linear decay to 0 and warmup 20 steps", "muon+linear0", {},
                              {"warmup_steps": 20}),
    "muon+linear0+warmup20+momentum0.9": ("and Muon momentum 0.9", "muon+linear0+warmup20", {},
                                          {"momentum": 0.9}),
}


def configs(name: str) -> tuple[GPTConfig, TrainConfig]:
    """The variant's configs: its parent's, with its own changes applied."""
    _, parent, model_over, train_over = VARIANTS[name]
    model_config, config = configs(parent) if parent else (START_MODEL, START_TRAIN)
    return (dataclasses.replace(model_config, **model_over),
            dataclasses.replace(config, **train_over))


def run_variant(name: str, corpus, max_time: float, seed: int | None = None,
                optimizer=None) -> dict:
    """Train variant `name` for `max_time` seconds (with `optimizer`, a Trainer part, instead of
    the config's own when given) and score it on the whole validation split."""
    model_config, config = configs(name)
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    steps = steps_in_time(model_config, config, corpus.train, corpus.val, max_time,
                          optimizer=optimizer)
    config = dataclasses.replace(config, max_steps=steps, max_time=max_time, progress=False,
                                 out_dir="")
    trainer = Trainer(model_config, config, corpus.train, corpus.val, corpus.tokenizer,
                      optimizer=optimizer)
    trainer.run()
    t0 = time.perf_counter()
    val = split_loss(trainer.model, corpus.val)
    train_rows = trainer.history["train"]
    return {
        "variant": name,
        "seed": config.seed,
        "date": datetime.date.today().isoformat(),
        "tries": VARIANTS[name][0],
        "parent": VARIANTS[name][1],
        "model": model_config.to_dict(),
        "train": {k: v for k, v in config.to_dict().items() if k not in ("progress", "out_dir")},
        "parameters": trainer.model.num_parameters(),
        "steps": trainer.step,
        "seconds": trainer.elapsed,
        "tokens_per_sec": trainer.step * trainer.tokens_per_step / trainer.elapsed,
        "final_lr": train_rows[-1]["lr"],
        "val_loss_full_split": val,
        "val_loss_estimate": trainer.history["eval"][-1]["val_loss"],
        "score_seconds": time.perf_counter() - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="measure just these, again")
    p.add_argument("--max-time", type=float, default=120.0, help="seconds of training (default 120)")
    p.add_argument("--out", type=Path, default=OUT, help=f"results file (default {OUT.relative_to(ROOT)})")
    p.add_argument("--seeds", nargs="+", type=int,
                   help="train each variant once per seed (default: its config's seed)")
    p.add_argument("--list", action="store_true", help="list the variants and stop")
    args = p.parse_args()
    if args.list:
        for name, (what, parent, _, _) in VARIANTS.items():
            print(f"{name:24} {what} (from {parent})")
        return
    results = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    # The CPU's identity (`cpu` is left to a description written by hand, as in the older files).
    identity = machine_identity()
    here = {"cpu_model": identity.pop("cpu"), **{k: v for k, v in identity.items() if k != "machine"}}
    differ = ", ".join(k for k, v in here.items() if k in results and results[k] != v)
    if differ:
        raise SystemExit(f"{args.out} holds runs from another machine ({differ}): a time budget "
                         "buys each machine its own steps. Pass --out FILE for this machine's.")
    seeds = args.seeds or [None]
    done = {(r["variant"], r.get("seed", START_TRAIN.seed)) for r in results["runs"]}
    # Seed by seed, every variant in turn: variants compared side by side share the machine's
    # slow and fast minutes alike.
    todo = [(n, s) for s in seeds for n in (args.only or VARIANTS)
            if args.only or (n, START_TRAIN.seed if s is None else s) not in done]
    corpus = load_char_corpus()
    results.update({
        "preset": PRESET,
        **here,
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), {platform.system()}, "
                   f"{torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/tune_cpu_preset.py",
        "max_time": args.max_time,
    })
    for name, seed in todo:
        r = run_variant(name, corpus, args.max_time, seed)
        print(f"{name:24} seed {r['seed']:4d} {r['steps']:5d} steps {r['seconds']:6.1f} s {r['tokens_per_sec']:8,.0f} tok/s "
              f"val {r['val_loss_full_split']:.4f} (estimate {r['val_loss_estimate']:.4f})", flush=True)
        results["runs"] = [x for x in results["runs"]
                           if (x["variant"], x.get("seed", START_TRAIN.seed)) != (name, r["seed"])] + [r]
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
