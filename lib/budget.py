"""The course's run within a time budget: how long it will take, said before it starts, and on a
GPU its steps capped so that a slow GPU trains it in a few minutes too.

The GPU preset is nanoGPT's recipe for an A100 (5,000 steps of 64 x 256 tokens). A fast GPU
trains it in a minute or two; a T4 would take a quarter of an hour or more. Before the course's
run trains, a few of its steps and one evaluation are timed (`time_run`); `plan_run` then keeps
the preset's steps where they fit `GPU_BUDGET`, and otherwise takes a half or a quarter of them
(`FRACTIONS`), the LR schedule laid out over the steps taken. The steps come from a short list
rather than from the timing itself, so that the run, and the run cache's key, are the same
each time the timing is made on one machine, and a run of so many steps can be recorded.
A CPU is never capped: the CPU preset is tuned to its budget already.
"""

from __future__ import annotations

import dataclasses
import time

from .book import duration
from .device import sync
from .model import GPTConfig
from .timing import time_step
from .trainer import TrainConfig, Trainer

GPU_BUDGET = 240.0  # seconds of training the course's run may take on a GPU: a few minutes
FRACTIONS = (1, 2, 4)  # the preset's steps, or a half, or a quarter of them, on a slow device


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the course's run will train on this device, and how long it should take."""

    config: TrainConfig  # the run's config: the preset's, or with fewer steps
    preset_steps: int  # the preset's steps
    step_seconds: float  # one step, as timed
    seconds: float  # the predicted time of the run (steps and evaluations)
    full_seconds: float  # the predicted time of the preset's steps
    budget: float | None  # the budget it was fitted to; None when not capped (a CPU)

    @property
    def capped(self) -> bool:
        return self.config.max_steps < self.preset_steps

    @property
    def sentence(self) -> str:
        """The plan in words, for the learner before the run starts."""
        step = f"a step timed at {self.step_seconds * 1000:.3g} ms"
        if not self.capped:
            fits = "" if self.budget is None or self.seconds <= self.budget else (
                f"; more than the budget of {duration(self.budget)}, even at its fewest steps")
            return (f"The course's run: {self.config.max_steps:,} steps, about "
                    f"{duration(self.seconds)} on this device ({step}){fits}.")
        over = "" if self.seconds <= self.budget else ", still more than the budget"
        return (f"The preset's {self.preset_steps:,} steps would take about "
                f"{duration(self.full_seconds)} on this device ({step}), more than the course's "
                f"GPU budget of {duration(self.budget)}: the run takes "
                f"{self.config.max_steps:,} of them, about {duration(self.seconds)}{over}.")


def predicted_seconds(steps: int, config: TrainConfig, step_seconds: float,
                      eval_seconds: float) -> float:
    """The time of `steps` steps and the evaluations the run makes on the way (at the start,
    every `eval_interval` steps and at the end)."""
    return steps * step_seconds + (steps // config.eval_interval + 2) * eval_seconds


def plan_run(config: TrainConfig, step_seconds: float, eval_seconds: float, *,
             capped: bool, budget: float = GPU_BUDGET) -> Plan:
    """The course's run on a device whose step and evaluation take these times: the preset's
    config where its steps fit `budget` or where the run is not `capped` (a CPU), else the
    largest of its FRACTIONS that fits (a quarter when none does). A fake slow device is a
    large `step_seconds`."""
    if not (step_seconds > 0 and eval_seconds >= 0 and budget > 0):
        raise ValueError(f"plan_run needs step_seconds > 0, eval_seconds >= 0 and budget > 0; "
                         f"got {step_seconds!r}, {eval_seconds!r}, {budget!r}")
    full = predicted_seconds(config.max_steps, config, step_seconds, eval_seconds)
    steps = config.max_steps
    if capped:
        for fraction in FRACTIONS:
            steps = max(config.warmup_steps + 1, config.max_steps // fraction)
            if predicted_seconds(steps, config, step_seconds, eval_seconds) <= budget:
                break
    return Plan(dataclasses.replace(config, max_steps=steps), config.max_steps, step_seconds,
                predicted_seconds(steps, config, step_seconds, eval_seconds), full,
                budget if capped else None)


def run_configs(config: TrainConfig, capped: bool) -> list[TrainConfig]:
    """Every config `plan_run` can choose for this preset, the preset's own first: a run of
    any of them already in the cache is the course's run, and needs no timing."""
    if not capped:
        return [config]
    steps = dict.fromkeys(max(config.warmup_steps + 1, config.max_steps // f) for f in FRACTIONS)
    return [dataclasses.replace(config, max_steps=s) for s in steps]


def time_run(model_config: GPTConfig, config: TrainConfig, train_data, val_data,
             steps: int = 3) -> tuple[float, float]:
    """(seconds per step, seconds per evaluation) of this run on its device: a throwaway copy
    trained for a few steps (median of three rounds, lib.timing), then evaluated once.
    The copy is not compiled (compiling would take longer than the timing), so on CUDA the
    time is an upper bound."""
    probe = Trainer(model_config, dataclasses.replace(config, max_steps=10**9, warmup_steps=0,
                                                      max_time=0.0, progress=False, out_dir="",
                                                      checkpoint_interval=0, compile="off"),
                    train_data, val_data)
    timing = time_step(probe.train_step, 1.0, probe.device, probe.dtype, rounds=3, steps=steps,
                       warmup=2, peak_seconds=0.02)
    t0 = time.perf_counter()
    probe.evaluate()
    sync(probe.device)
    return timing.step, time.perf_counter() - t0


def what_the_device_got(trainer, preset: str, preset_steps: int) -> str:
    """After the course's run: the steps its device trained, in words."""
    if trainer.step >= preset_steps:
        return (f"This device trained the {preset} preset's whole recipe: {trainer.step:,} "
                f"steps.")
    return (f"This device trained {trainer.step:,} of the {preset} preset's {preset_steps:,} "
            f"steps: at its speed the whole recipe would have taken longer than the course's "
            f"budget of {duration(GPU_BUDGET)}.")
