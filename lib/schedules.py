"""Learning-rate schedules: pure functions of the step that return a multiplier of the peak LR.

Every schedule has the same signature, `f(step, max_steps, warmup_steps, min_lr_ratio, ...)`, and
`get_schedule` binds the run's settings once, returning `step -> multiplier`. Steps count
optimizer steps from 0 to max_steps - 1.

Warmup, shared by every schedule (`constant` too, when warmup_steps > 0): the multiplier rises
linearly, (step + 1) / warmup_steps, reaching 1 at the last warmup step; steps past it follow
the schedule's own shape.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

from . import checks


def _warmup(step: int, warmup_steps: int) -> float | None:
    """The warmup multiplier while warming up, None after."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return None


def constant(step: int, max_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> float:
    """The peak LR throughout (after an optional warmup)."""
    w = _warmup(step, warmup_steps)
    return 1.0 if w is None else w


def cosine(step: int, max_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.1) -> float:
    """Warmup, then half a cosine from 1 down to `min_lr_ratio`, reached at the last step + 1."""
    w = _warmup(step, warmup_steps)
    if w is not None:
        return w
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))  # 0 -> 1
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear(step: int, max_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> float:
    """Warmup, then a straight line from 1 down to `min_lr_ratio`."""
    w = _warmup(step, warmup_steps)
    if w is not None:
        return w
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))  # 0 -> 1
    return 1.0 - (1.0 - min_lr_ratio) * progress


def wsd(step: int, max_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0,
        decay_fraction: float = 0.2) -> float:
    """Warmup-stable-decay: warmup, hold the peak, then decay linearly to `min_lr_ratio` over the
    last `decay_fraction` of the steps."""
    w = _warmup(step, warmup_steps)
    if w is not None:
        return w
    decay_steps = max(1, round(decay_fraction * max_steps))
    decay_start = max_steps - decay_steps
    if step < decay_start:
        return 1.0  # the stable phase
    progress = min(1.0, (step - decay_start) / decay_steps)  # 0 -> 1 over the decay phase
    return 1.0 - (1.0 - min_lr_ratio) * progress


def inverse_sqrt(step: int, max_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> float:
    """Warmup, then 1 / sqrt(steps so far), as in the original Transformer: sqrt(W / (step + 1)),
    continuous at the end of warmup; never below `min_lr_ratio`."""
    w = _warmup(step, warmup_steps)
    if w is not None:
        return w
    return max(min_lr_ratio, math.sqrt(max(1, warmup_steps) / (step + 1)))


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant,
    "cosine": cosine,
    "linear": linear,
    "wsd": wsd,
    "inverse_sqrt": inverse_sqrt,
}


def check_schedule_args(name: str, max_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0,
                        decay_fraction: float = 0.2, names: dict[str, str] | None = None) -> None:
    """Raise a ValueError/TypeError naming the bad setting and what is allowed.

    `names` writes the settings in the messages as the caller knows them (TrainConfig passes
    {"max_steps": "TrainConfig.max_steps", ...}).
    """
    n = {k: k for k in ("schedule", "max_steps", "warmup_steps", "min_lr_ratio", "decay_fraction")}
    n.update(names or {})
    checks.choice(n["schedule"], name, SCHEDULES)
    checks.integer(n["max_steps"], max_steps, 1)
    checks.integer(n["warmup_steps"], warmup_steps, 0, max_steps,
                   hint=f" ({n['max_steps']} = {max_steps})")
    checks.number(n["min_lr_ratio"], min_lr_ratio, 0.0, 1.0,
                  hint=" (the final LR as a fraction of the peak)")
    checks.number(n["decay_fraction"], decay_fraction, 0.0, 1.0, low_open=True)
    if name == "wsd" and warmup_steps + round(decay_fraction * max_steps) > max_steps:
        raise ValueError(
            f"wsd: {n['warmup_steps']} ({warmup_steps}) + decay steps "
            f"({round(decay_fraction * max_steps)} = {n['decay_fraction']} x {n['max_steps']}) "
            f"must not exceed {n['max_steps']} ({max_steps})"
        )


def get_schedule(name: str, max_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0,
                 decay_fraction: float = 0.2) -> Callable[[int], float]:
    """The schedule `name` with the run's settings bound: a function step -> multiplier."""
    check_schedule_args(name, max_steps, warmup_steps, min_lr_ratio, decay_fraction)
    kwargs = dict(max_steps=max_steps, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)
    if name == "wsd":
        kwargs["decay_fraction"] = decay_fraction
    return partial(SCHEDULES[name], **kwargs)
