"""Helpers for the lessons' pages: gluing computed values into the text."""

from __future__ import annotations

import numbers


def glue(name: str, value) -> None:
    """`myst_nb.glue` for the lessons, with the two traps handled.

    - NumPy and torch scalars become plain Python numbers: myst-nb formats `{glue:text}`
      from the value's repr, and `np.float64(1.5)` cannot be formatted with `:.2f`.
    - A matplotlib figure is closed after it is glued, or it would also appear where it was made.
    - A figure must pass `lib.plotting.check_figure` (resolution, width, font sizes, legend off
      the data): a figure that breaks the book's rules fails the lesson, not the reader.

    Nothing is displayed where glue is called; the value appears where the text references it.
    """
    from myst_nb import glue as myst_glue

    if hasattr(value, "savefig"):  # a matplotlib figure
        import matplotlib.pyplot as plt

        from .plotting import check_figure

        check_figure(value)
        myst_glue(name, value, display=False)
        plt.close(value)
        return
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # NumPy / torch scalar
        value = value.item()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
    myst_glue(name, value, display=False)
