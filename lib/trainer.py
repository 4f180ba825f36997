"""The engine: TrainConfig, the Trainer and evaluation. It knows nothing of the course
(presets, the run cache, the lessons: lib.course) or of the command line (lib.cli).

The loop, used by the lessons and by the command line:

    step:  lr from the schedule -> k micro-batches (forward, loss / k, backward)
           -> clip the gradient norm -> optimizer step (AdamW by default) -> zero the gradients

Around it: evaluation on fixed batches, a history the lessons plot, a progress bar, a time
budget, callbacks, and checkpoints that resume bit for bit (on CPU).

Command line: `python -m lib.train --help` (lib.cli).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from . import checkpoint as ckpt
from .optim import OPTIMIZERS, make_optimizer, peak_lrs, set_lr_factor
from .data import CharTokenizer, get_batch
from .device import (autocast, autocast_dtype, check_compiler, init_distributed,
                     measured_peak_flops, pick_device, use_tf32)
from .evaluation import estimate_loss, split_loss  # noqa: F401 - split_loss: the engine's API
from .model import GPT, GPTConfig, lm_loss
from .schedules import check_schedule_args, get_schedule

MAX_SEED = 2**32 - 1
MAX_EVAL_BATCHES = 10_000
_SCHEDULE_FIELDS = {name: f"TrainConfig.{name}" for name in
                    ("schedule", "max_steps", "warmup_steps", "min_lr_ratio", "decay_fraction")}
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16}
COMPILE = ("auto", "on", "off")


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
    dtype: str = "auto"  # auto (bf16 autocast where supported, else fp32) | float32 | bfloat16
    compile: str = "auto"  # torch.compile the model: auto (on CUDA, off elsewhere) | on | off
    seed: int = 1337  # seeds the initial weights, the batches and dropout
    max_time: float = 0.0  # stop after this many seconds (0 = no limit); the LR schedule then ends by then
    checkpoint_interval: int = 0  # save a checkpoint every this many steps (0 = only at the end)
    out_dir: str = ""  # folder for the checkpoint (empty = do not save)
    progress: bool = True  # show a progress bar (turn off for quiet, non-interactive runs)

    def __post_init__(self):
        _check_types(self)
        for name in ("max_steps", "batch_size", "grad_accum_steps", "eval_interval",
                     "eval_batches", "log_interval", "muon_ns_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "checkpoint_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "muon_lr"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"TrainConfig.{name} must be a positive number, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {', '.join(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        for name in ("beta1", "beta2", "momentum"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "max_time"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {value}")
        if self.compile not in COMPILE:
            raise ValueError(f"TrainConfig.compile must be one of {', '.join(COMPILE)}, got {self.compile!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"TrainConfig.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ValueError(
                f"TrainConfig.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.eval_batches > MAX_EVAL_BATCHES:
            raise ValueError(f"TrainConfig.eval_batches must be in [1, {MAX_EVAL_BATCHES}] (they "
                             f"are built once and kept), got {self.eval_batches}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"TrainConfig.seed must be in [0, {MAX_SEED}], got {self.seed}")
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


def _check_types(config) -> None:
    """TypeError naming the field when a value has the wrong type (ints may stand for floats)."""
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), f.type if isinstance(f.type, str) else f.type.__name__
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
        }.get(kind, True)
        if not ok:
            raise TypeError(f"{type(config).__name__}.{f.name} must be {kind}, got {value!r}")


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient became inf or NaN."""


# --------------------------------------------------------------------------- the trainer


class Trainer:
    """Trains a GPT on a 1-D tensor of token ids. `run()` trains; its state can be saved and
    resumed exactly (`save`, `Trainer.resume`)."""

    def __init__(self, model_config: GPTConfig, config: TrainConfig, train_data: torch.Tensor,
                 val_data: torch.Tensor, tokenizer: CharTokenizer | None = None):
        if not isinstance(model_config, GPTConfig):
            raise TypeError(f"model_config must be a GPTConfig, got {type(model_config).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.model_config, self.config, self.tokenizer = model_config, config, tokenizer
        self.train_data, self.val_data = train_data, val_data
        if tokenizer is not None and tokenizer.vocab_size > model_config.vocab_size:
            raise ValueError(f"The tokenizer has {tokenizer.vocab_size} tokens but GPTConfig.vocab_size "
                             f"is {model_config.vocab_size}: set vocab_size={tokenizer.vocab_size}")
        if config.out_dir and os.path.exists(config.out_dir) and not os.path.isdir(config.out_dir):
            raise ValueError(f"TrainConfig.out_dir {config.out_dir!r} is a file; out_dir must be a "
                             "folder (ckpt.pt is written inside it)")
        self.device = pick_device(config.device)
        GPT.check_training_memory(model_config, self.device)
        self.rank, self.world_size = init_distributed(self.device)  # (0, 1) unless under torchrun
        if config.out_dir and self.rank == 0:  # fail now, not after the training it would lose
            ckpt.check_writable(config.out_dir)
        if self.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(self.device)
        self.dtype = autocast_dtype(self.device) if config.dtype == "auto" else DTYPES[config.dtype]

        use_tf32(self.device)

        torch.manual_seed(config.seed)  # initial weights and dropout
        self.model = GPT(model_config).to(self.device)  # the model itself: saved, evaluated, shown
        self.compiled = self.model  # what runs forward passes: the model, or it compiled
        if config.compile == "on" or (config.compile == "auto" and self.device.type == "cuda"):
            check_compiler(self.device)
            self.compiled = torch.compile(self.model)  # same parameters, fused kernels
        self.ddp = None  # data-parallel: the same model on every rank, gradients averaged
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                self.compiled, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = make_optimizer(self.model, config, self.device)  # lib.optim
        self._peak_lrs = peak_lrs(self.optimizer)  # the schedule scales each group's own peak
        self.schedule = get_schedule(config.schedule, config.max_steps, config.warmup_steps,
                                     config.min_lr_ratio, config.decay_fraction)
        self.step = 0  # optimizer steps taken; the schedule's position
        self.elapsed = 0.0  # seconds of training so far, across resumes
        self.batch_rng = torch.Generator().manual_seed(config.seed + 1)  # the data sampler
        eval_rng = torch.Generator().manual_seed(config.seed + 2)
        T, B = model_config.block_size, config.batch_size
        self.eval_sets = {  # the same batches at every evaluation, so evaluations compare
            split: [get_batch(data, B, T, eval_rng) for _ in range(config.eval_batches)]
            for split, data in (("train", train_data), ("val", val_data))
        }
        self.history: dict[str, list[dict]] = {"train": [], "eval": []}
        self.meta: dict = {}  # what the caller records with the run (lib.cli: the corpus it read)
        self.stop_requested: str | None = None  # set by `request_stop` (e.g. on Ctrl-C)

    # ------------------------------------------------------------------ one step

    @property
    def tokens_per_step(self) -> int:
        c = self.config
        return c.batch_size * c.grad_accum_steps * self.model_config.block_size * self.world_size

    @property
    def is_main(self) -> bool:
        """True on the process that logs, evaluates and saves (the only one, unless data-parallel)."""
        return self.rank == 0

    def lr_at(self, step: float) -> float:
        """The LR at this point of the schedule (of `lr`'s groups; Muon's scale alike)."""
        return self.config.lr * self.schedule(step)

    def schedule_position(self) -> float:
        """Where the LR schedule is: the step, or further on when a time budget (`max_time`)
        is being spent faster than the steps. The schedule then reaches its end (and its low
        final LR) when the time runs out, even on a machine slower than the preset assumed."""
        c = self.config
        if not c.max_time:
            return self.step
        return max(self.step, c.max_steps * min(1.0, self.elapsed / c.max_time))

    def accumulate_gradients(self, batches) -> torch.Tensor:
        """Forward and backward over micro-batches; returns their mean loss (detached).

        Each micro-batch's loss is divided by the number of micro-batches, so the summed
        gradient equals the gradient of the mean loss over all of them: k micro-batches of
        size B give the gradient of one batch of size k*B.
        """
        k, total = len(batches), None
        for i, (x, y) in enumerate(batches):
            with self._sync_gradients(last=i == k - 1):
                with autocast(self.device, self.dtype):
                    logits = (self.compiled if self.ddp is None else self.ddp)(x)
                loss = lm_loss(logits, y)
                if k > 1:  # (dividing by 1 would change nothing but cost an operation)
                    loss = loss / k
                loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        return total

    def _sync_gradients(self, last: bool):
        """Data-parallel only: average the gradients across ranks once, after the last
        micro-batch, not after every one. A no-op in a single process."""
        if self.ddp is None or last:
            return contextlib.nullcontext()
        return self.ddp.no_sync()

    def _batch(self):
        """This process's micro-batch. Data-parallel, every rank draws the windows of the whole
        global batch from the same generator and reads its own share, so the ranks' batches
        together are exactly the batch one process would train on."""
        c, T = self.config, self.model_config.block_size
        if self.world_size == 1:
            return get_batch(self.train_data, c.batch_size, T, self.batch_rng, self.device)
        x, y = get_batch(self.train_data, c.batch_size * self.world_size, T, self.batch_rng)
        mine = slice(self.rank * c.batch_size, (self.rank + 1) * c.batch_size)
        return x[mine].to(self.device), y[mine].to(self.device)

    def train_step(self) -> tuple[float, float, float]:
        """One optimizer step. Returns (loss, gradient norm before clipping, lr)."""
        c = self.config
        position = self.schedule_position()
        lr = self.lr_at(position)
        set_lr_factor(self.optimizer, self._peak_lrs, self.schedule(position))
        batches = [self._batch() for _ in range(c.grad_accum_steps)]
        loss = self.accumulate_gradients(batches)
        if self.world_size > 1:  # the loss of the whole global batch: the mean over ranks
            torch.distributed.all_reduce(loss)
            loss = loss / self.world_size
        loss = loss.item()
        max_norm = c.grad_clip if c.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm).item()
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            what = "loss" if not math.isfinite(loss) else "gradient norm"
            raise TrainingDiverged(
                f"The {what} became {loss if what == 'loss' else grad_norm} at step {self.step} "
                f"(lr {lr:.3g}). Training stopped; checkpoints already saved are untouched. "
                "Try a lower peak lr, a longer warmup, or gradient clipping (grad_clip=1.0)."
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss, grad_norm, lr

    def evaluate(self) -> dict:
        """Mean loss on the fixed train and validation batches; appended to the history."""
        row = {"step": self.step, "tokens": self.step * self.tokens_per_step,
               "elapsed": self.elapsed}
        for split, batches in self.eval_sets.items():
            row[f"{split}_loss"] = estimate_loss(self.compiled, batches, self.device, self.dtype)
        self.history["eval"].append(row)
        return row

    # ------------------------------------------------------------------ the loop

    def run(self, callback: Callable[["Trainer"], None] | None = None,
            callback_interval: int = 0) -> dict:
        """Train until `max_steps` (or `max_time`); returns the history.

        `callback(trainer)` is called every `callback_interval` steps (e.g. to print a sample),
        and once before the first step of a fresh run (step 0).
        """
        c = self.config
        self.stop_requested = None
        if c.progress:
            from tqdm.auto import tqdm  # a widget in Jupyter, text in a terminal
        else:
            from tqdm import tqdm  # disabled below; tqdm.auto would warn without ipywidgets
        main = self.is_main  # data-parallel: only rank 0 logs, evaluates, calls back and saves
        flops_per_token = self.model.flops_per_token()
        peak = measured_peak_flops(self.device, self.dtype) * self.world_size
        if main and (not self.history["eval"] or self.history["eval"][-1]["step"] != self.step):
            self.evaluate()
        if main and callback is not None and callback_interval and self.step == 0:
            callback(self)
        self.model.train()
        bar = tqdm(total=c.max_steps, initial=self.step, disable=not (c.progress and main),
                   desc=f"training on {self.device.type}", unit="step", mininterval=1.0)
        window_time, window_tokens = 0.0, 0
        try:
            while self.step < c.max_steps:
                t0 = time.perf_counter()
                loss, grad_norm, lr = self.train_step()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                window_time += dt
                window_tokens += self.tokens_per_step
                bar.update(1)
                stopping = self.stop_requested is not None
                if self.world_size > 1:
                    # The ranks agree on the time spent and on stopping, so they set the same
                    # LR and stop at the same step.
                    shared = torch.tensor([self.elapsed, float(stopping)], dtype=torch.float64,
                                          device=self.device)
                    torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
                    self.elapsed, stopping = shared[0].item(), bool(shared[1].item())
                    if stopping and self.stop_requested is None:
                        self.stop_requested = "another rank"
                finished = self.step >= c.max_steps or (c.max_time and self.elapsed >= c.max_time)
                done = finished or stopping  # stopping: save this step at once (no evaluation)
                if not main:
                    if done:
                        break
                    continue
                if self.step % c.log_interval == 0 or finished:
                    tps = window_tokens / window_time
                    self.history["train"].append({
                        "step": self.step, "tokens": self.step * self.tokens_per_step,
                        "loss": loss, "lr": lr, "grad_norm": grad_norm,
                        "tokens_per_sec": tps, "elapsed": self.elapsed,
                        "mfu": tps * flops_per_token / peak,
                    })
                    window_time, window_tokens = 0.0, 0
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
                if self.step % c.eval_interval == 0 or finished:
                    t0 = time.perf_counter()
                    self.evaluate()
                    self.elapsed += time.perf_counter() - t0
                if callback is not None and callback_interval and self.step % callback_interval == 0:
                    callback(self)
                if c.out_dir and c.checkpoint_interval and self.step % c.checkpoint_interval == 0:
                    self.save(self.checkpoint_path)
                if done:
                    break
        finally:
            bar.close()
        if c.out_dir and main:
            self.save(self.checkpoint_path)
        return self.history

    def request_stop(self, reason: str = "a stop request") -> None:
        """Stop `run()` after the step under way: it saves a checkpoint there (with an out_dir)
        and returns; `resume` then continues exactly. Safe to call from a signal handler."""
        self.stop_requested = reason

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        """Everything needed to resume exactly, as plain tensors and data."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "batches": self.batch_rng.get_state(),
            },
            "history": self.history,
            "meta": self.meta,
        }

    @property
    def checkpoint_path(self) -> str:
        """Where `run()` saves: ckpt.pt inside the config's out_dir folder."""
        return os.path.join(self.config.out_dir, ckpt.CHECKPOINT_FILE)

    def save(self, path):
        """Write the checkpoint atomically to `path` (a folder gets ckpt.pt); returns the file."""
        return ckpt.save_checkpoint(self.state_dict(), path)

    def load_state_dict(self, state: dict) -> None:
        """Put this trainer in the state a checkpoint holds; a CheckpointError if the state is
        of another model, or damaged (a step that is not a count, weights that are not finite)."""
        saved = GPTConfig.from_dict(state["model_config"])
        if saved != self.model_config:
            raise ckpt.CheckpointError(
                f"The checkpoint is of a different model: it has {saved}, this trainer has "
                f"{self.model_config}.")
        ckpt.check_training_state(state)
        saved_optimizer = (state.get("train_config") or {}).get("optimizer", "adamw")
        if saved_optimizer != self.config.optimizer:
            raise ckpt.CheckpointError(
                f"The checkpoint was trained with optimizer={saved_optimizer!r} and this trainer "
                f"uses {self.config.optimizer!r}: the optimizer's state (its moments) cannot be "
                f"carried over. Resume with optimizer={saved_optimizer!r} (--optimizer "
                f"{saved_optimizer}), or start a new run.")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"]["torch"])
            if state["rng"]["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            self.batch_rng.set_state(state["rng"]["batches"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
            raise ckpt.CheckpointError(f"The checkpoint does not fit this model: "
                                       f"{str(err).splitlines()[0] if str(err) else repr(err)}") from err
        self.step, self.elapsed = state["step"], float(state["elapsed"])
        self.history = copy.deepcopy(state["history"])  # this trainer's own: state may be reused
        self.meta = copy.deepcopy(state.get("meta", {}))

    @classmethod
    def resume(cls, path, train_data, val_data, **overrides) -> "Trainer":
        """A trainer in exactly the state of the checkpoint at `path`.

        `overrides` change TrainConfig fields, e.g. max_steps to train further or device.
        """
        state = ckpt.load_checkpoint(path)
        try:
            model_config = GPTConfig.from_dict(state["model_config"])
            config = TrainConfig.from_dict({**state["train_config"], **overrides})
            tokenizer = CharTokenizer.from_dict(state["tokenizer"]) if state.get("tokenizer") else None
        except (KeyError, TypeError, ValueError) as err:
            raise ckpt.CheckpointError(f"{path}: not a training checkpoint of this course "
                                       f"({type(err).__name__}: {err})") from err
        trainer = cls(model_config, config, train_data, val_data, tokenizer)
        trainer.load_state_dict(state)
        return trainer


def load_model(path, device: str = "auto") -> tuple[GPT, CharTokenizer | None, dict]:
    """A trained model for inference: (model in eval mode, tokenizer, the checkpoint dict)."""
    state = ckpt.load_checkpoint(path)
    try:
        config = GPTConfig.from_dict(state["model_config"])
        model = GPT(config)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ckpt.CheckpointError(f"{path}: the weights do not fit their model config: {err}") from err
    tokenizer = CharTokenizer.from_dict(state["tokenizer"]) if state.get("tokenizer") else None
    return model.to(pick_device(device)).eval(), tokenizer, state
