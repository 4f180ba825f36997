"""lib.checks: one message style for every field check."""

import math

import pytest

from lib import checks


def test_integers():
    assert checks.integer("n", 3, 1) == 3
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        checks.integer("n", 0, 1)
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 4294967295\], got -1$"):
        checks.integer("seed", -1, 0, 2**32 - 1)
    for bad in (True, 1.0, "1", None):  # a bool is not an integer
        with pytest.raises(TypeError, match="n must be an integer"):
            checks.integer("n", bad, 1)


def test_numbers():
    assert checks.number("lr", 1, 0, low_open=True) == 1  # an int stands for a float
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0, got 0$"):
        checks.number("lr", 0, 0, low_open=True)
    with pytest.raises(ValueError, match=r"beta must be a finite number in \[0, 1\), got 1.0"):
        checks.number("beta", 1.0, 0, 1, high_open=True)
    with pytest.raises(ValueError, match=r"in \[0, 1e\+300\] \(0 = greedy\), got nan"):
        checks.number("temperature", math.nan, 0, 1e300, hint=" (0 = greedy)")
    with pytest.raises(ValueError, match="got inf"):
        checks.number("x", math.inf)
    with pytest.raises(TypeError, match="x must be a finite number, got True"):
        checks.number("x", True)


def test_choices_booleans_and_text():
    assert checks.choice("opt", "sgd", ("adamw", "sgd")) == "sgd"
    with pytest.raises(ValueError, match=r"^opt must be one of adamw, sgd, got 'lion'$"):
        checks.choice("opt", "lion", ("adamw", "sgd"))
    with pytest.raises(TypeError, match="must be True or False, got 'yes'"):
        checks.boolean("progress", "yes")
    with pytest.raises(TypeError, match="must be a string, got 3"):
        checks.text("device", 3)
