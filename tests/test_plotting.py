"""lib.plotting: the figure helper and the moving average."""

import matplotlib.pyplot as plt
import pytest

from lib import plotting


def test_figure_is_titled_and_labelled():
    fig, ax = plotting.figure("Title", "x (steps)", "y (nats)")
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Title", "x (steps)", "y (nats)")
    plt.close(fig)


def test_every_panel_is_styled_and_pictures_can_go_without_a_grid():
    fig, axes = plotting.subplots(2, 1)
    _, image = plotting.subplots(grid=False)
    shown = lambda ax: any(line.get_visible() for line in ax.get_xgridlines())  # noqa: E731
    assert all(shown(ax) and not ax.spines["top"].get_visible() for ax in axes)
    assert not shown(image)
    plt.close("all")


def test_ema_of_a_constant_is_the_constant():
    assert plotting.ema([2.0] * 10, beta=0.9) == pytest.approx([2.0] * 10)


def test_ema_smooths_and_lags():
    values = [0.0] * 50 + [1.0] * 50
    out = plotting.ema(values, beta=0.9)
    assert out[49] == 0.0 and 0.0 < out[50] < 1.0 and out[99] == pytest.approx(1.0, abs=0.01)
    assert plotting.ema([5.0], beta=0.0) == [5.0]
    with pytest.raises(ValueError, match="beta"):
        plotting.ema([1.0], beta=1.0)


def test_a_figure_made_the_course_way_passes_the_check():
    fig, ax = plotting.figure("Loss", "step", "loss (nats)")
    ax.plot(range(100), [1 / (1 + s) for s in range(100)], label="training")
    plotting.legend(ax)
    plotting.check_figure(fig)  # no error
    fig, axes = plotting.subplots(2, 1, size=(5.7, 5))
    assert len(axes) == 2 and all(a.get_figure().dpi == plotting.DPI for a in axes)
    plotting.check_figure(fig)
    plt.close("all")


@pytest.mark.parametrize("make, problem", [
    (lambda: plt.subplots(figsize=(6, 3), dpi=100), "100 dpi"),
    (lambda: plt.subplots(figsize=(11, 3), dpi=150), "11.0 inches wide"),
])
def test_the_check_names_low_resolution_and_too_wide_figures(make, problem):
    fig, ax = make()
    with pytest.raises(ValueError, match=problem):
        plotting.check_figure(fig)
    plt.close(fig)


def test_the_check_names_small_text():
    fig, ax = plotting.figure("Tiny", "x", "y")
    ax.text(0.5, 0.5, "a note", fontsize=6)
    with pytest.raises(ValueError, match="'a note' is 6 pt"):
        plotting.check_figure(fig)
    plt.close(fig)


def test_the_check_finds_a_legend_over_the_data_and_passes_one_beside_it():
    fig, ax = plotting.figure("Covered", "x", "y")
    ax.plot([0, 1], [1, 1], label="a line along the top, where the legend goes")
    ax.plot([0, 1], [0, 0])
    ax.legend(loc="upper left")
    with pytest.raises(ValueError, match="covers its data"):
        plotting.check_figure(fig)
    plotting.legend(ax)
    plotting.check_figure(fig)
    ax.get_legend().remove()
    leg = plotting.legend(ax, below=True)
    plotting.check_figure(fig)
    fig.canvas.draw()
    assert leg.get_window_extent().y1 <= ax.get_window_extent().y0  # under the axes
    plt.close(fig)


def test_the_check_finds_a_legend_that_sticks_out_of_the_figure():
    fig, ax = plotting.figure("Wide legend", "x", "y")
    for i in range(6):
        ax.plot([0, 1], [i, i], label=f"a rather long label for line number {i}")
    plotting.legend(ax, below=True, ncols=6)
    with pytest.raises(ValueError, match="sticks out"):
        plotting.check_figure(fig)
    plt.close(fig)


def test_char_label_makes_invisible_characters_visible():
    assert [plotting.char_label(c) for c in " \n\ta"] == ["␣", "⏎", "⇥", "a"]
    assert plotting.char_label(" ", words=True) == "space" and plotting.char_label("\n", words=True) == "newline"
