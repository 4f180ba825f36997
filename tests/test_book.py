"""lib.book.glue turns values into what myst-nb can format, and closes glued figures."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lib import book, plotting


@pytest.fixture
def captured(monkeypatch):
    import myst_nb

    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: seen.update({name: value}))
    return seen


def test_scalars_become_plain_python(captured):
    book.glue("a", np.float64(1.5))
    book.glue("b", torch.tensor(2.5))
    book.glue("c", np.int64(3))
    book.glue("d", "text")
    assert captured == {"a": 1.5, "b": 2.5, "c": 3, "d": "text"}
    assert type(captured["a"]) is float and type(captured["c"]) is int
    assert f"{captured['a']:.2f}" == "1.50"


def test_figures_are_closed_after_gluing(captured):
    fig, _ = plotting.figure("A figure", "x", "y")
    book.glue("fig", fig)
    assert captured["fig"] is fig
    assert not plt.fignum_exists(fig.number)


def test_a_figure_that_breaks_the_rules_is_not_glued(captured):
    fig, _ = plt.subplots(figsize=(12, 3), dpi=72)
    with pytest.raises(ValueError, match="72 dpi.*12.0 inches wide"):
        book.glue("fig", fig)
    assert "fig" not in captured
    plt.close(fig)
