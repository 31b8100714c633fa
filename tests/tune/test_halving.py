"""Successive halving on synthetic scores."""

from __future__ import annotations

import math

import pytest

from invkit.errors import ConfigError
from invkit.tuning import rung_plan, successive_halving


def test_rung_plan():
    assert rung_plan(24, (8, 24, 64), 3) == [24, 8, 3]
    assert rung_plan(27, (1, 2, 3, 4, 5), 3) == [27, 9, 3]  # stops before a rung of one
    assert rung_plan(10, (4, 8), 2) == [10, 5]
    assert rung_plan(1, (4, 8), 3) == [1]


@pytest.mark.parametrize("k, images, keep", [(0, (4,), 3), (4, (4,), 1), (4, (), 3), (4, (8, 8), 3), (4, (8, 4), 3), (4, (0, 2), 3)])
def test_bad_plans_are_refused(k, images, keep):
    with pytest.raises(ConfigError):
        rung_plan(k, images, keep)


def test_keeps_the_right_number_and_the_best():
    # the score of trial t on n images: t's quality plus a noise that fades with n; trial 13 is
    # best in the long run but looks worse than trial 5 on few images
    quality = {t: t / 10 for t in range(24)}
    quality[13] = 5.0

    def score(t, n):
        bump = {5: 6.0}.get(t, 0.0) / n
        return quality[t] + bump - (2.0 / n if t == 13 else 0.0)

    calls = []
    rungs, winner = successive_halving(range(24), (1, 4, 64), score, keep=3, on_score=lambda t, n, s: calls.append((t, n)))
    assert [len(r["scores"]) for r in rungs] == [24, 8, 3]
    assert [len(r["kept"]) for r in rungs] == [8, 3, 1]
    for r in rungs:  # the kept are the best of their rung
        ranked = sorted(r["scores"], key=lambda t: -r["scores"][t])
        assert [str(t) for t in r["kept"]] == ranked[: len(r["kept"])]
    assert winner == 13 and rungs[-1]["kept"] == [13]
    assert [n for _, n in calls] == [1] * 24 + [4] * 8 + [64] * 3


def test_lower_is_better_ties_and_nan():
    scores = {0: 1.0, 1: 1.0, 2: math.nan, 3: 0.5}
    _, winner = successive_halving(range(4), (2,), lambda t, n: scores[t], higher_is_better=False)
    assert winner == 3
    _, winner = successive_halving(range(4), (2,), lambda t, n: scores[t])
    assert winner == 0  # a tie goes to the lower id (the paper's numbers are trial 0), NaN ranks last
    rungs, winner = successive_halving(range(3), (2,), lambda t, n: [math.nan, math.nan, 0.1][t])
    assert winner == 2
