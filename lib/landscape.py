"""Slices of the loss surface: a model's loss as its weights move along a line or over a plane.

A model's loss is a function of all its weights at once, far too many dimensions to draw, so
one looks at slices through it:

- along the straight line between two sets of weights (the initial and the trained model, say)
  and past them (`losses_along`; Goodfellow et al., 2015);
- on a plane through a model, spanned by two random directions (`loss_plane`), each scaled
  filter by filter to the size of the weights it moves (`filter_normalized_direction`; Li et
  al., 2018), so that slices of different models can be compared at the same distances.

Every function leaves the model's weights as it found them.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .evaluation import estimate_loss
from .model import GPT, GPTConfig


def weights(model: GPT) -> list[torch.Tensor]:
    """A detached copy of every parameter (the tied head is the token embedding, listed once)."""
    return [p.detach().clone() for p in model.parameters()]


def initial_weights(model_config: GPTConfig, seed: int, device=None) -> list[torch.Tensor]:
    """The weights a run with this seed started from: the Trainer seeds torch's generator with
    `TrainConfig.seed` and then builds the model (on the CPU, then moved), and so does this."""
    torch.manual_seed(seed)
    return [w.to(device) if device is not None else w for w in weights(GPT(model_config))]


def distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The Euclidean distance between two sets of weights, over all of them at once."""
    return float(torch.sqrt(sum(((x - y) ** 2).sum() for x, y in zip(a, b, strict=True))))


def norm(a: list[torch.Tensor]) -> float:
    """The Euclidean length of a set of weights taken as one long vector."""
    return float(torch.sqrt(sum((x**2).sum() for x in a)))


@contextlib.contextmanager
def _weights_put_back(model: GPT):
    saved = weights(model)
    try:
        yield
    finally:
        set_weights(model, saved)


@torch.no_grad()
def set_weights(model: GPT, values) -> None:
    """Put `values` (as `weights` returns them) into the model's parameters."""
    for p, v in zip(model.parameters(), values, strict=True):
        p.copy_(v)


def filter_normalized_direction(model: GPT, generator: torch.Generator) -> list[torch.Tensor]:
    """A random direction in weight space, scaled filter by filter (Li et al., 2018).

    For every matrix, each row (the weights that make one output, or one token's embedding)
    gets a Gaussian random vector rescaled to that row's own norm: a step of 1 along the
    direction moves each row by as much as its length, whatever the layer's scale. Biases and
    the norms' gains get zero, so that the slice leaves them alone.
    """
    direction = []
    for p in model.parameters():
        if p.dim() < 2:
            direction.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator).to(p.device, p.dtype)
        d *= p.detach().norm(dim=1, keepdim=True) / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
        direction.append(d)
    return direction


def losses_along(model: GPT, start: list[torch.Tensor], end: list[torch.Tensor], alphas,
                 batches, device=None) -> np.ndarray:
    """The loss on `batches` at the weights start + alpha (end - start), for each alpha:
    0 is `start`, 1 is `end`, and values outside [0, 1] go past them."""
    device = device or next(model.parameters()).device
    out = []
    with _weights_put_back(model):
        for alpha in alphas:
            set_weights(model, [s + alpha * (e - s) for s, e in zip(start, end, strict=True)])
            out.append(estimate_loss(model, batches, device))
    return np.array(out)


def loss_plane(model: GPT, center: list[torch.Tensor], d1, d2, xs, ys, batches,
               device=None) -> np.ndarray:
    """The loss on `batches` at center + x d1 + y d2 on the grid of `xs` by `ys`; row i of the
    result is ys[i], column j is xs[j] (as matplotlib's contour expects)."""
    device = device or next(model.parameters()).device
    grid = np.empty((len(ys), len(xs)))
    with _weights_put_back(model):
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                set_weights(model, [c + x * a + y * b for c, a, b in zip(center, d1, d2, strict=True)])
                grid[i, j] = estimate_loss(model, batches, device)
    return grid
