"""Measuring runs honestly: several seeds per setting, their spread, rankings with ties; and
simple measures of the text a model writes.

One run of a setting is one draw: another seed (other initial weights, other batches) moves its
loss. The lessons therefore train each setting with several seeds and rank settings by their
mean, calling two settings different only when their means differ by more than their spreads
allow:

    different(a, b)  <=>  |mean_a - mean_b| > sd_a + sd_b

with sd the sample standard deviation over the seeds. This is deliberately cautious (with 3
seeds a standard deviation is itself rough); a difference inside the spread is no difference.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass

from . import checks


@dataclass(frozen=True)
class Spread:
    """The values of one setting over several seeds."""

    name: str
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        """Sample standard deviation (n - 1); 0 for a single value."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.sd:.3f}"


def spreads(results: dict) -> dict[str, Spread]:
    """{name: Spread} from {name: [value per seed, ...]}; every value must be finite."""
    out = {}
    for name, values in results.items():
        values = tuple(float(v) for v in values)
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name!r}: need one or more finite values, got {values}")
        out[str(name)] = Spread(str(name), values)
    return out


def different(a: Spread, b: Spread) -> bool:
    """Whether the means differ by more than the two spreads together."""
    return abs(a.mean - b.mean) > a.sd + b.sd


def rank(results: dict, lower_is_better: bool = True) -> list[list[Spread]]:
    """Settings in order of their mean, in groups that cannot be told apart.

    A group starts at its best member and takes each next setting that is not `different` from
    that best one. `rank(...)[0]` is the group of settings that share first place.
    """
    ordered = sorted(spreads(results).values(), key=lambda s: s.mean, reverse=not lower_is_better)
    groups: list[list[Spread]] = []
    for s in ordered:
        if groups and not different(groups[-1][0], s):
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def ranking_text(groups: list[list[Spread]], better: str = "<") -> str:
    """'cosine ≈ wsd < constant': the settings in order of their mean, each neighbour joined by
    ≈ when the two lie inside each other's spread and by `better` when they differ.

    Ties are not transitive (a ≈ b and b ≈ c while a < c is possible), so the text speaks of
    neighbours only; ask `different` about any other pair."""
    ordered = [s for group in groups for s in group]
    text = ordered[0].name
    for a, b in zip(ordered, ordered[1:]):
        text += f" {better if different(a, b) else '≈'} {b.name}"
    return text


# --------------------------------------------------------------------------- generated text

WORD = re.compile(r"[A-Za-z']+")


def words(text: str) -> list[str]:
    """The words of a text: runs of letters and apostrophes."""
    return WORD.findall(text)


def known_word_share(text: str, vocabulary: set[str]) -> float:
    """Share of the words of `text` found in `vocabulary` (e.g. the training text's words): a
    measure of spelling that fits a character model. NaN for a text without words."""
    found = words(text)
    return sum(w in vocabulary for w in found) / len(found) if found else float("nan")


def distinct_ngrams(text: str, n: int) -> float:
    """Share of the n-character pieces of a text that differ from each other (1.0: no repeats)."""
    checks.integer("n", n, 1)
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")
