"""lib.plotting: the figure helper and the moving average."""

import matplotlib.pyplot as plt
import pytest

from lib import plotting


def test_figure_is_titled_and_labelled():
    fig, ax = plotting.figure("Title", "x (steps)", "y (nats)")
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Title", "x (steps)", "y (nats)")
    plt.close(fig)


def test_ema_of_a_constant_is_the_constant():
    assert plotting.ema([2.0] * 10, beta=0.9) == pytest.approx([2.0] * 10)


def test_ema_smooths_and_lags():
    values = [0.0] * 50 + [1.0] * 50
    out = plotting.ema(values, beta=0.9)
    assert out[49] == 0.0 and 0.0 < out[50] < 1.0 and out[99] == pytest.approx(1.0, abs=0.01)
    assert plotting.ema([5.0], beta=0.0) == [5.0]
    with pytest.raises(ValueError, match="beta"):
        plotting.ema([1.0], beta=1.0)
