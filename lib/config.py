"""TrainConfig: how to train, every field with its default and meaning, checked when made.

Every field can be overridden on the command line (`--max-steps 500`; lib.cli).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass

from . import checks
from .device import COMPILE, DTYPES
from .optim import OPTIMIZERS
from .schedules import check_schedule_args

MAX_SEED = 2**32 - 1
MAX_EVAL_BATCHES = 10_000
MAX_STEPS = 10**9  # years of training at a millisecond a step: a larger count is a typo
MAX_TIME = 366 * 24 * 3600  # a year, in seconds: --max-time 1e15 is a typo, not a plan
_SCHEDULE_FIELDS = {name: f"TrainConfig.{name}" for name in
                    ("schedule", "max_steps", "warmup_steps", "min_lr_ratio", "decay_fraction")}


@dataclass
class TrainConfig:
    """How to train. Every field can be overridden on the command line (--max-steps 500)."""

    max_steps: int = 2000  # optimizer steps to train for
    batch_size: int = 32  # sequences per micro-batch
    grad_accum_steps: int = 1  # micro-batches per optimizer step (batch = batch_size x this)
    lr: float = 1e-3  # peak learning rate
    schedule: str = "cosine"  # constant | cosine | linear | wsd | inverse_sqrt
    warmup_steps: int = 100  # steps of linear warmup from lr/warmup_steps to lr
    min_lr_ratio: float = 0.1  # final LR as a fraction of the peak (the schedule's floor)
    decay_fraction: float = 0.2  # wsd only: fraction of the steps spent decaying at the end
    optimizer: str = "adamw"  # adamw | adam | sgd | muon (lib.optim says what each does)
    weight_decay: float = 0.1  # weight decay, on matrices only (decoupled in adamw and muon)
    beta1: float = 0.9  # AdamW and Adam: decay rate of the gradient's running mean
    beta2: float = 0.99  # AdamW and Adam: decay rate of the squared gradient's running mean
    momentum: float = 0.95  # sgd and muon: the momentum coefficient
    muon_lr: float = 0.01  # muon only: peak LR of the blocks' matrices (lr is the rest's, AdamW)
    muon_ns_steps: int = 5  # muon only: Newton-Schulz iterations that orthogonalise an update
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = no clipping
    eval_interval: int = 250  # evaluate every this many steps (and at the start and end)
    eval_batches: int = 20  # fixed batches per split in each evaluation
    log_interval: int = 10  # record a row of training history every this many steps
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto (the hardware's native precision: lib.device) | float32 | bfloat16 | float16
    compile: str = "auto"  # torch.compile the model: auto (on CUDA, off elsewhere) | on | off
    seed: int = 1337  # seeds the initial weights, the batches and dropout
    max_time: float = 0.0  # stop after this many seconds (0 = no limit); the LR schedule then ends by then
    checkpoint_interval: int = 0  # save a checkpoint every this many steps (0 = only at the end)
    checkpoint_minutes: float = 5.0  # also save every this many minutes of training (0 = off)
    out_dir: str = ""  # folder for the checkpoint (empty = do not save)
    progress: bool = True  # show a progress bar (turn off for quiet, non-interactive runs)

    def __post_init__(self):
        name = "TrainConfig.{}".format
        for field in ("batch_size", "grad_accum_steps", "eval_interval", "log_interval",
                      "muon_ns_steps"):
            checks.integer(name(field), getattr(self, field), 1)
        checks.integer(name("max_steps"), self.max_steps, 1, MAX_STEPS,
                       hint=" (a billion steps is years of training)")
        for field in ("warmup_steps", "checkpoint_interval"):
            checks.integer(name(field), getattr(self, field), 0)
        checks.integer(name("eval_batches"), self.eval_batches, 1, MAX_EVAL_BATCHES,
                       hint=" (they are built once and kept)")
        checks.integer(name("seed"), self.seed, 0, MAX_SEED)
        checks.number(name("checkpoint_minutes"), self.checkpoint_minutes, 0)
        for field in ("lr", "muon_lr"):
            checks.number(name(field), getattr(self, field), 0, low_open=True)
        for field in ("beta1", "beta2", "momentum"):
            checks.number(name(field), getattr(self, field), 0, 1, high_open=True)
        for field in ("weight_decay", "grad_clip"):
            checks.number(name(field), getattr(self, field), 0)
        checks.number(name("max_time"), self.max_time, 0, MAX_TIME, hint=" seconds (a year)")
        checks.choice(name("optimizer"), self.optimizer, OPTIMIZERS)
        checks.choice(name("compile"), self.compile, COMPILE)
        checks.choice(name("dtype"), self.dtype, DTYPES)
        for field in ("device", "out_dir"):
            checks.text(name(field), getattr(self, field))
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ValueError(
                f"TrainConfig.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        checks.boolean(name("progress"), self.progress)
        check_schedule_args(self.schedule, self.max_steps, self.warmup_steps, self.min_lr_ratio,
                            self.decay_fraction, names=_SCHEDULE_FIELDS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
