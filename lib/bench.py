"""Throughput benchmark: `python -m lib.bench` (`--help` for its options).

Prints, for one device:
- the machine's measured fp32 matrix-multiply rate (the peak that MFU is measured against);
- the trainer's tokens per second and model FLOP utilisation on a preset's model and batch;
- the same model, batch and optimizer trained by the plain five-step loop of lesson 4, measured in
  alternate rounds with the trainer in the same process, and the ratio trainer / plain loop.

Alternating the two, round by round, and comparing medians keeps the comparison fair on a
shared, noisy machine: whatever else the machine does slows both alike. `--out FILE` writes
the results as JSON, labelled with the machine, the date and the command that reproduces them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from . import checks
from .course import PRESETS
from .data import get_batch
from .device import describe, machine_label, measured_peak_flops, pick_device, sync
from .model import GPT, lm_loss
from .optim import make_optimizer
from .trainer import Trainer


def plain_loop(model: GPT, optimizer, data: torch.Tensor, batch_size: int, steps: int,
               generator: torch.Generator, device: torch.device) -> None:
    """Lesson 4's five steps, nothing more: forward, loss, backward, step, log (a test keeps
    this copy and the lesson's loop the same)."""
    for _ in range(steps):
        x, y = get_batch(data, batch_size, model.config.block_size, generator, device)
        logits = model(x)  # 1. forward
        loss = lm_loss(logits, y)  # 2. loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # 3. backward
        optimizer.step()  # 4. step
        loss.item()  # 5. log (reading the loss, as printing it would)


def benchmark(preset: str = "shakespeare-char-cpu", steps: int = 20, rounds: int = 5,
              device: str = "auto", seed: int = 0) -> dict:
    """Measure the trainer against the plain loop on `preset`'s model and batch. Returns the
    results as a dict of plain numbers and strings."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    checks.integer("steps", steps, 1)
    checks.integer("rounds", rounds, 1)
    dev = pick_device(device)
    model_config, config = PRESETS[preset]
    config = dataclasses.replace(config, device=dev.type, progress=False, seed=seed,
                                 max_steps=10**9, warmup_steps=0)
    # The data: random tokens of the corpus's size. Speed does not depend on which tokens.
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(model_config.vocab_size, (1_000_000,), generator=gen)
    trainer = Trainer(model_config, config, data, data[:100_000])
    torch.manual_seed(seed)
    plain = GPT(model_config).to(dev)
    optimizer = make_optimizer(plain, config, dev)  # the trainer's own optimizer: like with like
    plain_gen = torch.Generator().manual_seed(seed)
    tokens = config.batch_size * config.grad_accum_steps * model_config.block_size

    peak = measured_peak_flops(dev)
    for _ in range(3):  # warm up both (allocator, kernels, AdamW state)
        trainer.train_step()
    plain_loop(plain, optimizer, data, config.batch_size * config.grad_accum_steps, 3, plain_gen, dev)

    trainer_rates, plain_rates = [], []
    for _ in range(rounds):
        sync(dev)
        t0 = time.perf_counter()
        plain_loop(plain, optimizer, data, config.batch_size * config.grad_accum_steps, steps,
                   plain_gen, dev)
        sync(dev)
        plain_rates.append(steps * tokens / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        sync(dev)
        trainer_rates.append(steps * tokens / (time.perf_counter() - t0))

    flops_per_token = trainer.model.flops_per_token()
    trainer_tps, plain_tps = statistics.median(trainer_rates), statistics.median(plain_rates)
    return {
        "preset": preset,
        "device": describe(dev),
        "machine": machine_label(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.date.today().isoformat(),
        "parameters": trainer.model.num_parameters(),
        "tokens_per_step": tokens,
        "steps_per_round": steps,
        "rounds": rounds,
        "matmul_flops_per_sec": peak,
        "trainer_tokens_per_sec": trainer_tps,
        "plain_loop_tokens_per_sec": plain_tps,
        "trainer_over_plain": trainer_tps / plain_tps,
        "trainer_mfu": trainer_tps * flops_per_token / peak,
        "plain_loop_mfu": plain_tps * flops_per_token / peak,
        "trainer_rounds": trainer_rates,
        "plain_loop_rounds": plain_rates,
    }


def report(r: dict) -> str:
    return "\n".join([
        f"{r['device']}, torch {r['torch']}, {r['date']}",
        f"{r['machine']}",
        f"matrix multiply (fp32, measured):  {r['matmul_flops_per_sec'] / 1e9:,.1f} GFLOP/s",
        f"preset {r['preset']}: {r['parameters']:,} parameters, {r['tokens_per_step']:,} tokens/step,"
        f" {r['rounds']} alternating rounds of {r['steps_per_round']} steps each",
        f"trainer:     {r['trainer_tokens_per_sec']:>10,.0f} tokens/s   MFU {r['trainer_mfu']:.0%}",
        f"plain loop:  {r['plain_loop_tokens_per_sec']:>10,.0f} tokens/s   MFU {r['plain_loop_mfu']:.0%}",
        f"trainer / plain loop: {r['trainer_over_plain']:.3f} (median of rounds)",
    ])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m lib.bench",
        description="Measure the matrix-multiply rate, and the trainer against lesson 4's plain "
                    "loop on a preset's model and batch, in alternating rounds.",
        epilog="Example: python -m lib.bench --out benchmarks/cpu.json",
    )
    p.add_argument("--preset", default="shakespeare-char-cpu", choices=sorted(PRESETS),
                   help="whose model and batch to train (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20, help="training steps per round (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")
    p.add_argument("--out", metavar="FILE", help="also write the results to FILE as JSON")
    args = p.parse_args(argv)
    try:
        if args.out:
            _check_out(Path(args.out))  # before minutes of measuring, not after
        results = benchmark(args.preset, args.steps, args.rounds, args.device)
    except (ValueError, TypeError) as err:
        from .cli import fail

        fail(p, err)
    except KeyboardInterrupt:
        sys.exit(130)
    print(report(results))
    if args.out:
        command = "python -m lib.bench " + " ".join(argv if argv is not None else sys.argv[1:])
        results["command"] = command.strip()
        try:
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
        except OSError as err:
            from .cli import fail

            print(json.dumps(results, indent=1))  # the measurement is not lost
            fail(p, ValueError(f"--out {args.out}: cannot write it ({err.strerror or err}); the "
                               "results are printed above"))
        print(f"results: {args.out}")


def _check_out(out: Path) -> None:
    """--out must be a new file or an earlier result of this command, in a writable folder."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out}/cpu.json")
    if out.exists():
        try:
            earlier = json.loads(out.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            earlier = None
        if not (isinstance(earlier, dict) and "trainer_over_plain" in earlier):
            raise ValueError(f"--out {out} exists and is not a result of lib.bench, so it is not "
                             "overwritten; choose another file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create its folder ({err.strerror or err})") from None
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"--out {out}: its folder cannot be written; choose another file name")


if __name__ == "__main__":
    main()
