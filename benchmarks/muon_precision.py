"""Does the precision of Muon's Newton-Schulz iterations decide a CPU's training speed?

    python benchmarks/muon_precision.py --out /tmp/muon.json                # your machine's numbers
    python benchmarks/muon_precision.py --out /tmp/muon.json --rounds 5 --steps 30
    python benchmarks/muon_precision.py --out /tmp/muon.json --two-minute-seeds 0 1 2   # and train

(Without --out it writes benchmarks/muon-precision.json, the file the book shows, and only on
the machine that recorded it.)

PyTorch's `torch.optim.Muon` orthogonalises every update in bfloat16. PyTorch multiplies
bfloat16 matrices quickly on a CPU only where its oneDNN check passes (AVX-512 on x86, bfloat16
instructions on ARM: `torch.ops.mkldnn._is_mkldnn_bf16_supported()`); elsewhere they are far
slower than float32 ones, so lib's `Muon` runs the iteration in float32 off CUDA (lib/optim.py). This times
training steps of the CPU preset (model, batch, Muon settings from lib.course) with each of
the two, alternating in rounds on the same machine (each first in every other round), so that
what else the machine does slows both alike, and records the tokens per second of each, their ratio and the CPU's flags. With
`--two-minute-seeds` it then trains the preset for two minutes per seed with each Muon in turn
(the tuning's `muon` variant, benchmarks/tune_cpu_preset.py) and records the steps taken and the
loss on the whole validation split (`two_minute_runs`, replacing any recorded before).
Write your own machine's numbers elsewhere (`--out /tmp/muon.json`): the file in benchmarks/ is
the one the book shows, and it refuses numbers from a different CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch

from lib.course import course_config
from lib.device import machine_identity
from lib.model import GPT
from lib.optim import CombinedOptimizer, make_optimizer

ROOT = Path(__file__).resolve().parent.parent

OUT = ROOT / "benchmarks" / "muon-precision.json"


def tokens_per_second(model, optimizer, batch, steps: int) -> float:
    x, y = batch
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * x.numel() / (time.perf_counter() - t0)


def torch_muon(params, *, ns_dtype=None, **kwargs) -> torch.optim.Muon:
    """PyTorch's own Muon, built from the arguments lib.optim gives its own (`ns_dtype` is
    lib's and is dropped: PyTorch's runs its iterations in bfloat16)."""
    return torch.optim.Muon(params, **kwargs)


def _tuning():
    """benchmarks/tune_cpu_preset.py, beside this file (the benchmarks are scripts, not a
    package)."""
    import importlib.util

    path = Path(__file__).resolve().parent / "tune_cpu_preset.py"
    spec = importlib.util.spec_from_file_location("tune_cpu_preset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def two_minute_runs(seeds, max_time: float = 120.0) -> dict:
    """The preset trained for `max_time` seconds per seed with lib's Muon and PyTorch's in
    turn (seed by seed, so that both share the machine's slow and fast minutes; from the
    second seed on, the other goes first)."""
    tuning = _tuning()
    corpus = tuning.load_char_corpus()
    runs = []
    pair = [("lib (float32)", None), ("torch (bfloat16)", torch_muon)]
    for i, seed in enumerate(seeds):
        for name, muon in (pair if i % 2 == 0 else pair[::-1]):  # each first every other seed
            _, config = tuning.configs("muon")
            optimizer = (None if muon is None else  # the Trainer's part: Muon from `muon`
                         lambda model: make_optimizer(model, config, next(model.parameters()).device,
                                                      muon_class=torch_muon))
            r = tuning.run_variant("muon", corpus, max_time, seed, optimizer=optimizer)
            runs.append({"muon": name, **{k: r[k] for k in ("seed", "steps", "seconds", "tokens_per_sec",
                                                            "val_loss_full_split")}})
            print(f"seed {seed}  {name:17s} {r['steps']:5d} steps {r['seconds']:6.1f} s "
                  f"{r['tokens_per_sec']:8,.0f} tok/s  val {r['val_loss_full_split']:.4f}", flush=True)
    return {"command": f"the tuning's muon variant, {max_time:g} s per seed, each Muon first "
                       "every other seed (benchmarks/muon_precision.py --two-minute-seeds)",
            "runs": runs}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--steps", type=int, default=20, help="training steps per round (default 20)")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--two-minute-seeds", nargs="+", type=int, default=[],
                   help="then train the preset for two minutes per seed with each Muon")
    args = p.parse_args(argv)

    here = machine_identity()
    before = json.loads(args.out.read_text()) if args.out.exists() else None
    if before is not None:  # checked before timing, so that a refusal costs nothing
        theirs = {k: before.get(k) for k in here}
        if theirs != here:
            differ = ", ".join(f"{k} {theirs[k]!r} there, {here[k]!r} here" for k in here
                               if theirs[k] != here[k])
            raise SystemExit(f"{args.out} holds numbers from another machine ({differ}). "
                             "Pass --out FILE to write this machine's numbers to a file of its own.")

    preset, model_config, config = course_config("cpu")
    torch.manual_seed(0)
    model = GPT(model_config)
    ours = make_optimizer(model, config, torch.device("cpu"))  # lib's Muon + AdamW
    lib_muon = ours.parts["muon"]
    theirs = CombinedOptimizer(
        muon=torch.optim.Muon(lib_muon.param_groups[0]["params"], **{
            k: lib_muon.defaults[k] for k in ("lr", "weight_decay", "momentum", "nesterov",
                                               "ns_steps", "adjust_lr_fn")}),
        adamw=ours.parts["adamw"])
    batch = tuple(torch.randint(0, model_config.vocab_size, (config.batch_size, model_config.block_size))
                  for _ in range(2))
    speeds = {"lib (float32)": [], "torch (bfloat16)": []}
    for name, opt in (("lib (float32)", ours), ("torch (bfloat16)", theirs)):
        tokens_per_second(model, opt, batch, 3)  # warm up both
    pair = [("lib (float32)", ours), ("torch (bfloat16)", theirs)]
    first = []  # which went first in each round
    for r in range(args.rounds):
        # Each goes first in every other round: a machine that speeds up or slows down during
        # the measurement then favours neither.
        order = pair if r % 2 == 0 else pair[::-1]
        first.append(order[0][0])
        for name, opt in order:
            speeds[name].append(tokens_per_second(model, opt, batch, args.steps))
            print(f"round {r}  {name:17s} {speeds[name][-1]:9,.0f} tok/s", flush=True)
    best = {k: max(v) for k, v in speeds.items()}
    ratio = best["lib (float32)"] / best["torch (bfloat16)"]
    print(f"lib's Muon trains {ratio:.2f}x as fast as torch's here (best round of each)")
    result = {
        "preset": preset, "tokens_per_sec": speeds, "first_each_round": first, "best": best, "ratio": ratio,
        **here,
        "torch": torch.__version__, "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/muon_precision.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
    }
    if before is not None:  # keep what was recorded beside it (the two-minute runs)
        result = {**before, **result}
    if args.two_minute_seeds:
        result["two_minute_runs"] = two_minute_runs(args.two_minute_seeds)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
