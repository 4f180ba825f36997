"""The book's figure style: one look for every figure, readable in light and dark themes.

Every figure of the book is made with `figure` or `subplots`, and `check_figure` (which
`lib.book.glue` runs on every figure it glues) holds them to what a reader needs:

- saved at `DPI` (150) or more, so lines and text stay sharp;
- at most `MAX_WIDTH` inches wide, so the book's column (688 px at a 1280-px window, where a
  glued figure is shown at most 672 px wide) shows it at 75% of its pixel width or more, and no
  text shrinks out of reach (the browser test checks it in the built book);
- no text smaller than `MIN_FONT` points;
- no legend drawn over the data it explains.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np

from . import checks

# One colour per role, used by every lesson (colour-blind-safe, from the Okabe-Ito palette).
TRAIN = "#0072B2"  # blue: training data / training loss
VAL = "#D55E00"  # vermillion: validation data / validation loss
ACCENT = "#009E73"  # green: a third series, a highlighted value
SKY = "#56B4E9"  # light blue: a fourth series
GREY = "#7f7f7f"  # reference lines, baselines

DPI = 150  # dots per inch of every figure
MAX_WIDTH = 5.7  # inches: 855 px at 150 dpi (about 870 once saved with its margin); shown 672 px wide
MIN_FONT = 8.0  # points


CHAR_SYMBOLS = {" ": "␣", "\n": "⏎", "\t": "⇥"}  # invisible characters, made visible
CHAR_WORDS = {" ": "space", "\n": "newline", "\t": "tab"}


def char_label(c: str, words: bool = False) -> str:
    """A character as a plot or a sentence can show it: space, newline and tab are invisible,
    so they become a symbol (or, with `words`, their name)."""
    return (CHAR_WORDS if words else CHAR_SYMBOLS).get(c, c)


def style(ax, title: str = "", xlabel: str = "", ylabel: str = "", *, grid: bool = True):
    """Title, axis labels, a light grid and no top/right frame, on one axes. Images and
    diagrams take `grid=False`: no grid lines over the picture."""
    ax.figure.patch.set_facecolor("white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if grid:
        ax.grid(True, alpha=0.3)
    else:
        ax.grid(False)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def figure(title: str, xlabel: str, ylabel: str, *, size=(5.7, 3.4), ax=None):
    """A new figure with one styled axes (or `ax`, styled). Returns (fig, ax).

    The figure has a white background so it stays readable on the dark theme too.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained", dpi=DPI)
    style(ax, title, xlabel, ylabel)
    return ax.figure, ax


def subplots(nrows: int = 1, ncols: int = 1, *, size=(5.7, 3.4), grid: bool = True, **kwargs):
    """A figure with a grid of styled axes (titles and labels are set per axes with `style`).

    Panels that would be narrower than about 3 inches side by side are better stacked: pass
    nrows instead of ncols. `grid=False` for images and diagrams. Returns (fig, axes) as
    `plt.subplots` does.
    """
    fig, axes = plt.subplots(nrows, ncols, figsize=size, layout="constrained", dpi=DPI, **kwargs)
    for ax in np.atleast_1d(axes).flat:
        style(ax, grid=grid)
    return fig, axes


def legend(ax, below: bool = False, **kwargs):
    """A legend outside the data, whatever the data does: to the right of the axes, or, with
    `below=True` (for long labels), under the whole figure."""
    if below:
        handles, labels = ax.get_legend_handles_labels()
        kwargs = {"loc": "outside lower center", "ncols": min(len(labels), 2), "frameon": False,
                  **kwargs}
        return ax.figure.legend(handles, labels, **kwargs)
    kwargs = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0,
              "frameon": False, **kwargs}
    return ax.legend(**kwargs)


def check_figure(fig) -> None:
    """ValueError naming every way `fig` breaks the book's figure rules (module docstring)."""
    problems = []
    if fig.dpi < DPI:
        problems.append(f"saved at {fig.dpi:.0f} dpi (make it with lib.plotting, {DPI} dpi)")
    width = fig.get_figwidth()
    if width > MAX_WIDTH + 1e-9:
        problems.append(f"{width:.1f} inches wide, more than {MAX_WIDTH}: stack its panels or "
                        "make it narrower")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    drawn = fig.get_tightbbox(renderer).width  # what the book shows: the figure cropped to its ink
    if width <= MAX_WIDTH + 1e-9 and drawn > MAX_WIDTH + 0.05:
        problems.append(f"its text reaches {drawn:.1f} inches wide, beyond its {width:.1f}: a legend "
                        "or label sticks out; give it fewer columns or shorter labels")
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_FONT:
            problems.append(f"text {text.get_text()[:30]!r} is {text.get_fontsize():.0f} pt, "
                            f"below {MIN_FONT:.0f}")
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None or not leg.get_visible():
            continue
        box = leg.get_window_extent(renderer)
        if _covers_data(ax, box):
            problems.append(f"the legend of {ax.get_title() or 'an axes'!r} covers its data: "
                            "use lib.plotting.legend(ax) or another place")
    if problems:
        title = fig.axes[0].get_title() if fig.axes else ""
        raise ValueError(f"Figure {title!r}: " + "; ".join(problems))


def _covers_data(ax, box) -> bool:
    """Whether the display-space box `box` lies over a line, a bar or a marker of `ax`."""
    clip = ax.get_window_extent()
    if not box.overlaps(clip):
        return False
    for line in ax.get_lines():
        xy = line.get_xydata()
        if len(xy) == 0 or not line.get_visible():
            continue
        if len(xy) > 1 and line.get_linestyle() not in ("None", "", " "):  # points along segments
            t = np.linspace(0, len(xy) - 1, 20 * len(xy))
            xy = np.column_stack([np.interp(t, np.arange(len(xy)), xy[:, i]) for i in range(2)])
        pts = line.get_transform().transform(xy)
        inside = ((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0)
                  & (pts[:, 1] < box.y1))
        if inside.any() and _within(pts[inside], clip).any():
            return True
    for patch in ax.patches:
        ext = patch.get_window_extent()
        faint = (patch.get_alpha() or 1.0) < 0.3  # a shaded band behind the data is background
        if patch.get_visible() and not faint and ext.width * ext.height > 0 and ext.overlaps(box):
            return True
    for coll in ax.collections:
        offsets = coll.get_offsets()
        if len(offsets):
            pts = coll.get_offset_transform().transform(offsets)
            if (((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0)
                 & (pts[:, 1] < box.y1))).any():
                return True
    return False


def _within(pts, bbox):
    return (pts[:, 0] >= bbox.x0) & (pts[:, 0] <= bbox.x1) & (pts[:, 1] >= bbox.y0) & (pts[:, 1] <= bbox.y1)


def ema(values, beta: float = 0.98):
    """Exponential moving average, bias-corrected so the start is not dragged towards zero.

    ema[t] = (1 - beta) * sum_k beta^k * values[t - k], divided by (1 - beta^(t + 1)).
    With beta = 0.98 it averages over roughly the last 1 / (1 - beta) = 50 values.
    """
    checks.number("beta", beta, 0.0, 1.0, high_open=True)
    out, avg = [], 0.0
    for t, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (t + 1)))
    return out
