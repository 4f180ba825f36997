"""The engine: the Trainer, a resumable run of the parts it is handed (TrainConfig, how to train,
is in lib.config). It knows nothing of the course (presets, the run cache, the lessons:
lib.course) or of the command line (lib.cli).

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
import time
from typing import Callable

import torch

from . import checkpoint as ckpt
from . import checks
from .config import TrainConfig
from .data import RandomWindows, get_batch, to_device
from .tokenizer import CharTokenizer, tokenizer_from_dict
from .device import (Runtime, autocast, check_memory, init_runtime, measured_peak_flops,
                     needs_grad_scaler, sync)
from .evaluation import estimate_loss
from .model import GPT, GPTConfig, lm_loss
from .optim import make_optimizer, peak_lrs, set_lr_factor
from .schedules import get_schedule

MODEL_TOO_BIG = "Make n_embd, n_layer, vocab_size or block_size smaller."


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient became inf or NaN."""


# --------------------------------------------------------------------------- the trainer


class Trainer:
    """A resumable run of the parts it is given: trains a GPT, evaluates it on fixed batches,
    keeps a history, and saves and resumes its state exactly (`save`, `Trainer.resume`).

    Every part has a default, today's course: the optimizer `lib.optim.make_optimizer` builds
    from the config, the schedule `config.schedule` names, and random windows of `train_data`
    (`lib.data.RandomWindows`). A caller may hand in its own:
    - `optimizer`: a function model -> optimizer (the trainer sets each group's LR from the
      schedule every step, scaling the peak LR the group was built with);
    - `schedule`: a function of the step -> LR multiplier;
    - `batches`: a batch source (`lib.data.RandomWindows` says what one is);
    - `runtime`: where and how to compute (`lib.device.init_runtime`; default from the config).
    """

    def __init__(self, model_config: GPTConfig, config: TrainConfig, train_data: torch.Tensor,
                 val_data: torch.Tensor, tokenizer: CharTokenizer | None = None, *,
                 optimizer: Callable[[GPT], torch.optim.Optimizer] | None = None,
                 schedule: Callable[[float], float] | None = None, batches=None,
                 runtime: Runtime | None = None):
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
        self.runtime = runtime or init_runtime(config.device, config.dtype, config.compile)
        self.device, self.dtype = self.runtime.device, self.runtime.dtype
        self.rank, self.world_size = self.runtime.rank, self.runtime.world_size
        n = GPT.estimate_parameters_unchecked(model_config)  # fits? asked before building it
        check_memory(GPT.training_memory_bytes(model_config), self.device,
                     f"Training a GPT with {n:,} parameters", MODEL_TOO_BIG)
        if config.out_dir and self.is_main:  # fail now, not after the training it would lose
            ckpt.check_writable(config.out_dir)

        torch.manual_seed(config.seed)  # initial weights and dropout
        self.model = GPT(model_config).to(self.device)  # the model itself: saved, evaluated, shown
        # What runs forward passes: the model, or it compiled (same parameters, fused kernels),
        # wrapped for data parallelism (the same model on every rank, gradients averaged).
        self.compiled = torch.compile(self.model) if self.runtime.compile else self.model
        self.ddp = None
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                self.compiled, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = (optimizer(self.model) if optimizer is not None
                          else make_optimizer(self.model, config, self.device))  # lib.optim
        self._peak_lrs = peak_lrs(self.optimizer)  # the schedule scales each group's own peak
        # float16 autocast (older GPUs) scales the loss so small gradients do not underflow;
        # disabled, the scaler passes everything through unchanged.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=needs_grad_scaler(self.dtype))
        self.schedule = schedule or get_schedule(config.schedule, config.max_steps,
                                                 config.warmup_steps, config.min_lr_ratio,
                                                 config.decay_fraction)
        self.batches = batches or RandomWindows(train_data, model_config.block_size, config.seed + 1)
        self.step = 0  # optimizer steps taken; the schedule's position
        self.elapsed = 0.0  # seconds of training so far, across resumes
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
        return self.runtime.is_main

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
                self.scaler.scale(loss).backward()  # float16: scaled up first (no-op otherwise)
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
        global batch from the same source and reads its own share, so the ranks' batches
        together are exactly the batch one process would train on."""
        n = self.config.batch_size
        x, y = self.batches.next(n * self.world_size)
        if self.world_size > 1:
            x, y = x[self.rank * n:(self.rank + 1) * n], y[self.rank * n:(self.rank + 1) * n]
        return to_device(x, self.device), to_device(y, self.device)

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
        self.scaler.unscale_(self.optimizer)  # float16: the true gradients, before clipping
        max_norm = c.grad_clip if c.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm).item()
        # With a gradient scaler an inf gradient is the scale overflowing: the scaler skips
        # that step and lowers the scale. Otherwise it means the run diverged.
        overflow = self.scaler.is_enabled() and math.isfinite(loss)
        if not (math.isfinite(loss) and (math.isfinite(grad_norm) or overflow)):
            self.optimizer.zero_grad(set_to_none=True)
            what = "loss" if not math.isfinite(loss) else "gradient norm"
            raise TrainingDiverged(
                f"The {what} became {loss if what == 'loss' else grad_norm} at step {self.step} "
                f"(lr {lr:.3g}). Training stopped; checkpoints already saved are untouched. "
                "Try a lower peak lr, a longer warmup, or gradient clipping (grad_clip=1.0)."
            )
        self.scaler.step(self.optimizer)  # = optimizer.step(), skipped on a float16 overflow
        self.scaler.update()
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
        Each step: `train_step`, then, on the process that logs (`is_main`), `_record` a row of
        history, `evaluate` when due, the callback, and a checkpoint when due.
        """
        c, main = self.config, self.is_main  # data-parallel: only rank 0 logs, evaluates, saves
        self.stop_requested = None
        if main and (not self.history["eval"] or self.history["eval"][-1]["step"] != self.step):
            self.evaluate()
        if main and callback is not None and callback_interval and self.step == 0:
            callback(self)
        self.model.train()
        bar, meter = self._progress_bar(), _Meter(self.model.flops_per_token(), self._peak())
        saved = self.elapsed
        try:
            while self.step < c.max_steps:
                t0 = time.perf_counter()
                loss, grad_norm, lr = self.train_step()
                meter.add(time.perf_counter() - t0, self.tokens_per_step)
                self.elapsed += meter.last
                bar.update(1)
                stopping = self._agree_on_stop()  # stopping: save this step at once, no evaluation
                finished = self.step >= c.max_steps or (c.max_time and self.elapsed >= c.max_time)
                if main:
                    if self.step % c.log_interval == 0 or finished:
                        self._record(loss, grad_norm, lr, meter, bar)
                    if self.step % c.eval_interval == 0 or finished:
                        t0 = time.perf_counter()
                        self.evaluate()
                        self.elapsed += time.perf_counter() - t0  # evaluations count against time
                    if callback is not None and callback_interval and self.step % callback_interval == 0:
                        callback(self)
                    if c.out_dir and ((c.checkpoint_interval and self.step % c.checkpoint_interval == 0)
                                      or (c.checkpoint_minutes and self.elapsed - saved >= 60 * c.checkpoint_minutes)):
                        self.save(self.checkpoint_path)
                        saved = self.elapsed  # SIGKILL or the OOM killer now loses less than that
                if finished or stopping:
                    break
        finally:
            bar.close()
        if c.out_dir and main:
            self.save(self.checkpoint_path)
        return self.history

    def _progress_bar(self):
        """tqdm's bar (a widget in Jupyter, text in a terminal), shown on the main process when
        the config asks for one."""
        if self.config.progress:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm  # disabled below; tqdm.auto would warn without ipywidgets
        return tqdm(total=self.config.max_steps, initial=self.step, unit="step", mininterval=1.0,
                    disable=not (self.config.progress and self.is_main),
                    desc=f"training on {self.device.type}")

    def _peak(self) -> float:
        """The matrix-multiply rate of all the processes together: what MFU is measured against."""
        return measured_peak_flops(self.device, self.dtype) * self.world_size

    def _agree_on_stop(self) -> bool:
        """Whether to stop after this step. Data-parallel, the ranks agree on the time spent and
        on stopping, so they set the same LR and stop at the same step."""
        stopping = self.stop_requested is not None
        if self.world_size > 1:
            shared = torch.tensor([self.elapsed, float(stopping)], dtype=torch.float64,
                                  device=self.device)
            torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
            self.elapsed, stopping = shared[0].item(), bool(shared[1].item())
            if stopping and self.stop_requested is None:
                self.stop_requested = "another rank"
        return stopping

    def _record(self, loss: float, grad_norm: float, lr: float, meter: "_Meter", bar) -> None:
        """A row of training history: the step's numbers and the speed since the last row."""
        tps, mfu = meter.take()
        self.history["train"].append({
            "step": self.step, "tokens": self.step * self.tokens_per_step, "loss": loss,
            "lr": lr, "grad_norm": grad_norm, "tokens_per_sec": tps, "elapsed": self.elapsed,
            "mfu": mfu,
        })
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:,.0f}", refresh=False)

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
            "scaler": self.scaler.state_dict(),  # float16's loss scale ({} when not used)
            "step": self.step,
            "elapsed": self.elapsed,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "batches": self.batches.state_dict(),
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
            if state.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"]["torch"])
            if state["rng"]["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            self.batches.load_state_dict(state["rng"]["batches"])
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
            tokenizer = tokenizer_from_dict(state.get("tokenizer"))
        except (KeyError, TypeError, ValueError) as err:
            raise ckpt.CheckpointError(f"{path}: not a training checkpoint of this course "
                                       f"({type(err).__name__}: {err})") from err
        trainer = cls(model_config, config, train_data, val_data, tokenizer)
        trainer.load_state_dict(state)
        return trainer


class _Meter:
    """Tokens and seconds of training since the last history row: its speed and MFU."""

    def __init__(self, flops_per_token: int, peak_flops: float):
        self.flops_per_token, self.peak = flops_per_token, peak_flops
        self.seconds, self.tokens, self.last = 0.0, 0, 0.0

    def add(self, seconds: float, tokens: int) -> None:
        self.seconds, self.tokens, self.last = self.seconds + seconds, self.tokens + tokens, seconds

    def take(self) -> tuple[float, float]:
        """(tokens per second, MFU) since the last call; starts a new window."""
        tps = self.tokens / self.seconds
        self.seconds, self.tokens = 0.0, 0
        return tps, tps * self.flops_per_token / self.peak


# --------------------------------------------------------------------------- a time budget

# With a time budget, max_steps is set to a quarter more steps than a timing says fit: the
# machine's speed varies from minute to minute, and a run that ran out of steps before its time
# would waste the rest; one that runs out of time first still ends its schedule (the trainer's
# time-aware schedule, `Trainer.schedule_position`).
STEP_MARGIN = 1.25


def steps_in_time(model_config: GPTConfig, config: TrainConfig, train_data, val_data,
                  seconds: float, probe_steps: int = 15, optimizer=None) -> int:
    """max_steps for a run of `seconds` on this machine: a few steps of this model and config
    timed (after three to warm up), an allowance for the evaluations the run will make, and
    STEP_MARGIN. The timing trains a throwaway copy (with `optimizer`, the Trainer's part, when
    the run will have one); the run itself is untouched."""
    checks.number("seconds", seconds, 0, low_open=True)
    probe = Trainer(model_config, dataclasses.replace(config, max_steps=10**9, warmup_steps=0,
                    max_time=0.0, progress=False, out_dir=""), train_data, val_data, optimizer=optimizer)
    for _ in range(3):
        probe.train_step()
    sync(probe.device)
    t0 = time.perf_counter()
    for _ in range(probe_steps):
        probe.train_step()
    sync(probe.device)
    per_step = (time.perf_counter() - t0) / probe_steps
    t0 = time.perf_counter()
    probe.evaluate()
    sync(probe.device)
    per_eval = time.perf_counter() - t0
    evals = seconds / per_step / config.eval_interval + 1
    training = max(0.0, seconds - evals * per_eval)
    return max(config.warmup_steps + 1, int(STEP_MARGIN * training / per_step))
