"""Counting models: the baselines a trained GPT must beat (lessons 2 and 5).

Each returns the mean cross-entropy, in nats per token, on the validation tokens.
"""

from __future__ import annotations

import math

import numpy as np


def uniform_loss(vocab_size: int) -> float:
    """Every token equally likely: ln V, whatever the text."""
    return math.log(vocab_size)


def unigram_loss(train, val, vocab_size: int, alpha: float = 1.0) -> float:
    """Each token with its frequency in the training tokens (plus alpha), ignoring context."""
    train, val = np.asarray(train), np.asarray(val)
    counts = np.bincount(train, minlength=vocab_size) + alpha
    probs = counts / counts.sum()
    return float(-np.log(probs[val]).mean())


def bigram_loss(train, val, vocab_size: int, alpha: float = 1.0) -> float:
    """P(next | previous token) from counts of pairs in the training tokens.

    Every count starts at alpha (add-alpha smoothing), so no pair has probability zero: an
    unseen pair in the validation text would otherwise cost an infinite loss.
    """
    train, val = np.asarray(train), np.asarray(val)
    pairs = np.full((vocab_size, vocab_size), float(alpha))
    np.add.at(pairs, (train[:-1], train[1:]), 1)
    probs = pairs / pairs.sum(axis=1, keepdims=True)  # row a: P(next | previous = a)
    return float(-np.log(probs[val[:-1], val[1:]]).mean())
