"""The one set of field checks that every config and argument check uses, with one message style:

    GPTConfig.n_layer must be an integer >= 1, got 0
    TrainConfig.schedule must be one of constant, cosine, got 'cosin'

`name` is what the user wrote or can look up (a config field as `TrainConfig.lr`, a flag as
`--tokens`). A wrong type is a TypeError, a value out of range a ValueError; both name the
field and what is allowed. Each check returns the value, so it can be used inline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def _range(low, high, low_open: bool = False, high_open: bool = False) -> str:
    """'>= 1', '> 0', 'in [0, 1)', or '' when unbounded."""
    def show(v):  # integers in full (a seed's 4294967295), other numbers short (1e+300)
        return str(v) if isinstance(v, int) else f"{v:g}"

    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {show(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {show(high)}"
    return ""


def integer(name: str, value, low: int | None = None, high: int | None = None, *,
            hint: str = ""):
    """`value` as a checked int (a bool is not an integer) in [low, high]."""
    allowed = " ".join(filter(None, ("an integer", _range(low, high)))) + hint
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def number(name: str, value, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False, hint: str = ""):
    """`value` as a checked finite number (an int stands for a float; a bool does not) in the
    range given, each end closed unless `low_open` / `high_open`."""
    allowed = " ".join(filter(None, ("a finite number", _range(low, high, low_open, high_open))))
    allowed += hint
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def choice(name: str, value, choices: Iterable, *, hint: str = ""):
    """`value`, one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}{hint}, "
                         f"got {value!r}")
    return value


def boolean(name: str, value):
    """`value`, True or False."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def text(name: str, value):
    """`value`, a string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    return value
