"""lib.landscape: slices of the loss surface, checked against losses computed directly."""

import numpy as np
import pytest
import torch

from lib import landscape
from lib.data import get_batch
from lib.evaluation import estimate_loss
from lib.trainer import Trainer

from helpers import tiny_model_config, tiny_train_config


@pytest.fixture
def trained(small_corpus):
    t = Trainer(tiny_model_config(small_corpus.tokenizer.vocab_size), tiny_train_config(),
                small_corpus.train, small_corpus.val, small_corpus.tokenizer)
    start = landscape.weights(t.model)
    t.run()
    g = torch.Generator().manual_seed(0)
    batches = [get_batch(small_corpus.val, 4, 16, g) for _ in range(2)]
    return t, start, batches


def test_initial_weights_are_the_runs_starting_point(trained):
    t, start, _ = trained
    again = landscape.initial_weights(t.model_config, t.config.seed)
    assert all(torch.equal(a, b) for a, b in zip(start, again))


def test_the_line_passes_through_both_ends_and_leaves_the_model_alone(trained):
    t, start, batches = trained
    end = landscape.weights(t.model)
    line = landscape.losses_along(t.model, start, end, [0.0, 0.5, 1.0, 1.5], batches)
    assert all(torch.equal(a, b) for a, b in zip(end, landscape.weights(t.model)))
    assert line[2] == pytest.approx(estimate_loss(t.model, batches, t.device), abs=1e-6)
    landscape.set_weights(t.model, start)
    assert line[0] == pytest.approx(estimate_loss(t.model, batches, t.device), abs=1e-6)
    assert line[2] < line[0]  # training lowered the loss on these batches


def test_filter_normalized_direction_has_each_rows_norm_and_spares_vectors(trained):
    t, _, _ = trained
    d = landscape.filter_normalized_direction(t.model, torch.Generator().manual_seed(1))
    for p, v in zip(t.model.parameters(), d):
        assert v.shape == p.shape
        if p.dim() < 2:
            assert not v.any()
        else:
            torch.testing.assert_close(v.norm(dim=1), p.detach().norm(dim=1), rtol=1e-5, atol=1e-7)
    other = landscape.filter_normalized_direction(t.model, torch.Generator().manual_seed(2))
    assert landscape.distance(d, other) > 0  # another seed, another direction


def test_the_plane_is_centred_on_the_model_and_laid_out_rows_by_y(trained):
    t, _, batches = trained
    center = landscape.weights(t.model)
    g = torch.Generator().manual_seed(1)
    d1, d2 = (landscape.filter_normalized_direction(t.model, g) for _ in range(2))
    xs, ys = np.array([-0.5, 0.0, 0.5]), np.array([0.0, 1.0])
    grid = landscape.loss_plane(t.model, center, d1, d2, xs, ys, batches)
    assert grid.shape == (2, 3)
    assert grid[0, 1] == pytest.approx(estimate_loss(t.model, batches, t.device), abs=1e-6)
    along_y = landscape.losses_along(t.model, center, [c + b for c, b in zip(center, d2)], [1.0], batches)
    assert grid[1, 1] == pytest.approx(along_y[0], abs=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(center, landscape.weights(t.model)))


def test_distance_and_norm():
    a, b = [torch.zeros(2, 2), torch.zeros(3)], [torch.ones(2, 2), torch.zeros(3)]
    assert landscape.distance(a, b) == pytest.approx(2.0)
    assert landscape.norm(b) == pytest.approx(2.0)
