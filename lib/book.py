"""Helpers for the lessons' pages: gluing computed values into the text."""

from __future__ import annotations

import numbers
import os

# Set by the book's Sphinx extension (book/_ext/course_html.py) before any lesson executes; the
# kernels that run the lessons inherit it. Anywhere else (Jupyter, Colab, nbval) it is unset.
BOOK_BUILD_ENV = "COURSE_BOOK_BUILD"

# Every value (not figure) the lesson glued so far, by name: the quiz at the end of a lesson
# states its numbers from here (lib.quiz.show), so it says what this run measured.
_GLUED: dict[str, object] = {}


def building_the_book() -> bool:
    return os.environ.get(BOOK_BUILD_ENV) == "1"


def glue(name: str, value) -> None:
    """`myst_nb.glue` for the lessons, with the two traps handled.

    - NumPy and torch scalars become plain Python numbers: myst-nb formats `{glue:text}`
      from the value's repr, and `np.float64(1.5)` cannot be formatted with `:.2f`.
    - A matplotlib figure is closed after it is glued, or it would also appear where it was made.
    - A figure must pass `lib.plotting.check_figure` (resolution, width, font sizes, legend off
      the data): a figure that breaks the book's rules fails the lesson, not the reader.

    In the book, nothing is displayed where glue is called; the value appears where the text
    references it. In a notebook (Jupyter, Colab), where the text's references stay as they are
    written, the figure is shown under the cell and a value as one line `name = value`.
    """
    if hasattr(value, "savefig"):  # a matplotlib figure
        import matplotlib.pyplot as plt

        from .plotting import check_figure

        check_figure(value)
        _glue_or_show(name, value)
        plt.close(value)
        return
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # NumPy / torch scalar
        value = value.item()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
    _GLUED[name] = value
    _glue_or_show(name, value)


def glued() -> dict:
    """The values glued so far in this kernel, by name (a copy)."""
    return dict(_GLUED)


def _glue_or_show(name: str, value) -> None:
    if building_the_book():
        from myst_nb import glue as myst_glue

        myst_glue(name, value, display=False)
    elif hasattr(value, "savefig"):
        from IPython.display import display

        display(value)
    else:
        shown = repr(value) if isinstance(value, str) else str(value)
        print(f"{name} = {shown if len(shown) <= 100 else shown[:97] + '...'}")


def duration(seconds: float) -> str:
    """A duration for the text, in the unit that suits it, rounded as a reader says it:
    "40 seconds", "4.7 minutes", "20 hours" (two significant figures, at least 1 of its unit),
    so that a number glued into a sentence reads right on a slow CPU and on a fast GPU alike."""
    if not seconds >= 0:
        raise ValueError(f"duration needs a number of seconds >= 0, not {seconds!r}")
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            value = seconds / size
            break
    else:
        unit, value = "seconds", seconds
    text = f"{value:.2g}" if value < 10 else f"{value:.0f}"
    if "e" in text:  # .2g writes 1.2e+02 for three-digit values; those take .0f above
        text = f"{value:.0f}"
    return f"{text} {unit[:-1] if text == '1' else unit}"


def human_count(n: float) -> str:
    """A large count as people write it: 175B, 1.4T, 124M, 3.2M, 8K, and 5.8P for FLOP counts
    past a thousand trillion. Two significant figures below 100 of the unit, whole units from
    100 up (175B, not 180B); a count below a thousand as it is. Never 1.8e+11: for parameters,
    tokens and FLOP in prose, tables and ticks."""
    if not n >= 0 or n == float("inf"):
        raise ValueError(f"human_count needs a finite count >= 0, not {n!r}")
    for unit, size in (("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size * 0.9995:  # 999,999 is 1M, not 1000K
            value = n / size
            return (f"{value:.2g}" if value < 99.5 else f"{value:.0f}") + unit
    return f"{n:.0f}" if n >= 100 or n == int(n) else f"{n:.2g}"
