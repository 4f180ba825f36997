"""The book's figure style: one look for every figure, readable in light and dark themes."""

from __future__ import annotations

import matplotlib.pyplot as plt

# One colour per role, used by every lesson (colour-blind-safe, from the Okabe-Ito palette).
TRAIN = "#0072B2"  # blue: training data / training loss
VAL = "#D55E00"  # vermillion: validation data / validation loss
ACCENT = "#009E73"  # green: a third series, a highlighted value
GREY = "#7f7f7f"  # reference lines, baselines


def figure(title: str, xlabel: str, ylabel: str, *, size=(6.4, 3.6), ax=None):
    """A new figure with one axes, titled and labelled. Returns (fig, ax).

    The figure has a white background so it stays readable on the dark theme too.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
    else:
        fig = ax.figure
    fig.patch.set_facecolor("white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def ema(values, beta: float = 0.98):
    """Exponential moving average, bias-corrected so the start is not dragged towards zero.

    ema[t] = (1 - beta) * sum_k beta^k * values[t - k], divided by (1 - beta^(t + 1)).
    With beta = 0.98 it averages over roughly the last 1 / (1 - beta) = 50 values.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    out, avg = [], 0.0
    for t, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (t + 1)))
    return out
