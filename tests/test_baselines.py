"""lib.baselines on data whose losses are known in closed form."""

import math

import numpy as np
import pytest

from lib.baselines import bigram_loss, unigram_loss, uniform_loss


def test_uniform():
    assert uniform_loss(65) == pytest.approx(math.log(65))


def test_unigram_matches_frequencies():
    train = np.array([0, 0, 0, 1])  # with alpha = 0: P(0) = 3/4, P(1) = 1/4
    val = np.array([0, 1])
    assert unigram_loss(train, val, 2, alpha=0) == pytest.approx(-(math.log(0.75) + math.log(0.25)) / 2)


def test_bigram_learns_a_deterministic_sequence():
    train = np.tile([0, 1, 2], 1000)  # 0 -> 1 -> 2 -> 0 ...
    val = np.tile([0, 1, 2], 10)
    assert bigram_loss(train, val, 3, alpha=0.0) == pytest.approx(0.0, abs=1e-12)
    smoothed = bigram_loss(train, val, 3, alpha=1.0)
    assert 0 < smoothed < unigram_loss(train, val, 3) == pytest.approx(math.log(3), rel=1e-3)


def test_unseen_pair_is_finite_with_smoothing():
    assert math.isfinite(bigram_loss(np.array([0, 0, 0]), np.array([0, 1]), 2, alpha=1.0))
