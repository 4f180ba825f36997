"""Evaluation: a model's mean loss on fixed batches (`estimate_loss`, what the trainer records
as it trains) and on a whole split (`split_loss`, the number the lessons compare runs by)."""

from __future__ import annotations

import math

import torch

from .data import WindowDataset
from .device import autocast
from .model import GPT, lm_loss
from .tokenizer import EOT_CHAR, EOT_TOKEN

# The whole-split loss reads at most this many tokens of a split (a prepared corpus's validation
# split can hold hundreds of millions); Tiny Shakespeare's holds 111,540, so it is read whole.
EVAL_TOKENS = 1_000_000


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
               progress: bool = False, max_tokens: int | None = EVAL_TOKENS) -> float:
    """Mean loss over a whole split, cut into non-overlapping windows of block_size.

    Every token of the split (but the last few that do not fill a window) is predicted once,
    so this is the split's true loss, not an estimate from random batches. A split longer than
    `max_tokens` (None: no limit) is read up to that many tokens (`evaluated_tokens` says how
    many). `progress` shows a bar (for a split so large that this takes a while).
    """
    device = device or next(model.parameters()).device
    data = data[:evaluated_tokens(len(data), max_tokens)]
    windows = WindowDataset(data, model.config.block_size)
    loader = torch.utils.data.DataLoader(windows, batch_size=batch_size, shuffle=False)
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="loss on the whole split", unit="batch", mininterval=1.0,
                      leave=False)
    return estimate_loss(model, loader, device, dtype, weighted=True)


def evaluated_tokens(n: int, max_tokens: int | None = EVAL_TOKENS) -> int:
    """How many of a split's `n` tokens `split_loss` reads."""
    return n if max_tokens is None else min(n, max_tokens)


def bits_per_byte(loss: float, data: torch.Tensor, tokenizer, block_size: int,
                  max_tokens: int | None = EVAL_TOKENS) -> float:
    """`split_loss`'s loss (nats per token) on `data` as bits per byte of text: the nats of every
    token it predicts, over the UTF-8 bytes of those tokens' text, divided by ln 2.

    Loss per token cannot compare tokenizers (a token of BPE holds several characters, so its
    loss is larger for the same text); bits per byte can, when the text is the same. The end-of-
    text marks between documents count as tokens but not as bytes, for every tokenizer alike."""
    n = evaluated_tokens(len(data), max_tokens)
    windows = len(WindowDataset(data[:n], block_size))
    targets = data[1 : 1 + windows * block_size].long()
    text = tokenizer.decode(targets).replace(EOT_TOKEN, "").replace(EOT_CHAR, "")
    return loss * len(targets) / len(text.encode("utf-8")) / math.log(2)
