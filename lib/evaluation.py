"""Evaluation: a model's mean loss on fixed batches (`estimate_loss`, what the trainer records
as it trains) and on a whole split (`split_loss`, the number the lessons compare runs by)."""

from __future__ import annotations

import torch

from .data import WindowDataset
from .device import autocast
from .model import GPT, lm_loss


@torch.no_grad()
def estimate_loss(model: GPT, batches, device, dtype=None, weighted: bool = False) -> float:
    """Mean loss over fixed batches, in eval mode (no dropout); restores the mode it found.

    weighted=True weighs each batch by its number of tokens (for a last, smaller batch).
    """
    was_training = model.training
    model.eval()
    try:
        total, count = 0.0, 0
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            with autocast(device, dtype):
                loss = lm_loss(model(x), y).item()
            n = y.numel() if weighted else 1
            total, count = total + loss * n, count + n
        return total / count
    finally:
        model.train(was_training)


@torch.no_grad()
def split_loss(model: GPT, data: torch.Tensor, batch_size: int = 64, device=None, dtype=None,
               progress: bool = False) -> float:
    """Mean loss over a whole split, cut into non-overlapping windows of block_size.

    Every token of the split (but the last few that do not fill a window) is predicted once,
    so this is the split's true loss, not an estimate from random batches. `progress` shows a
    bar (for a split so large that this takes a while).
    """
    device = device or next(model.parameters()).device
    windows = WindowDataset(data, model.config.block_size)
    loader = torch.utils.data.DataLoader(windows, batch_size=batch_size, shuffle=False)
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="loss on the whole split", unit="batch", mininterval=1.0,
                      leave=False)
    return estimate_loss(model, loader, device, dtype, weighted=True)
