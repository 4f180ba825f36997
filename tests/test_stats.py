"""lib.stats: spreads over seeds, and rankings that call small differences ties."""

import math

import pytest

from lib import stats


def test_spread_is_the_mean_and_sample_standard_deviation():
    s = stats.spreads({"a": [1.0, 2.0, 3.0]})["a"]
    assert (s.mean, s.sd) == (2.0, 1.0)
    assert str(s) == "2.000 ± 1.000"
    assert stats.spreads({"one": [1.5]})["one"].sd == 0.0


def test_rank_orders_by_mean_and_groups_what_the_spread_cannot_separate():
    results = {"constant": [2.30, 2.32, 2.31], "cosine": [2.20, 2.22, 2.21],
               "wsd": [2.21, 2.20, 2.23], "linear": [2.24, 2.26, 2.25]}
    groups = stats.rank(results)
    names = [[s.name for s in g] for g in groups]
    assert names == [["cosine", "wsd"], ["linear"], ["constant"]]
    assert stats.ranking_text(groups) == "cosine ≈ wsd < linear < constant"


def test_rank_higher_is_better():
    groups = stats.rank({"a": [0.5, 0.5], "b": [0.9, 0.9]}, lower_is_better=False)
    assert [g[0].name for g in groups] == ["b", "a"]


def test_a_difference_inside_the_spread_is_no_difference():
    a, b = stats.spreads({"a": [1.0, 1.2], "b": [1.1, 1.3]}).values()
    assert not stats.different(a, b)
    c = stats.spreads({"c": [5.0, 5.1]})["c"]
    assert stats.different(a, c)


@pytest.mark.parametrize("bad", [[], [float("nan")], [1.0, float("inf")]])
def test_values_must_be_finite_and_present(bad):
    with pytest.raises(ValueError, match="finite"):
        stats.spreads({"x": bad})


def test_text_measures():
    assert stats.words("O Romeo, Romeo! wherefore art thou") == ["O", "Romeo", "Romeo", "wherefore", "art", "thou"]
    assert stats.known_word_share("the kingg and the queen", {"the", "and", "queen"}) == 0.8
    assert stats.distinct_ngrams("abcabc", 3) == 3 / 4  # abc, bca, cab, abc
    assert stats.distinct_ngrams("abcdef", 2) == 1.0
    assert math.isnan(stats.known_word_share("123 !!", {"a"})) and math.isnan(stats.distinct_ngrams("ab", 3))
    with pytest.raises(ValueError, match="n must be"):
        stats.distinct_ngrams("abc", 0)


def test_the_ranking_text_speaks_of_neighbours_only():
    """a ≈ b and b ≈ c, yet a < c: the text joins neighbours, and `different` answers the rest."""
    results = {"a": [1.00, 1.03], "b": [1.03, 1.06], "c": [1.06, 1.09]}
    text = stats.ranking_text(stats.rank(results))
    assert text == "a ≈ b ≈ c"
    s = stats.spreads(results)
    assert stats.different(s["a"], s["c"])
