r"""Successive halving (Jamieson & Talwalkar, AISTATS 2016, Alg. 1) over image counts.

Rung i scores every surviving configuration on the first ``images[i]`` training images and keeps
the best ⌈m / keep⌉ of its m (at least one); the last rung keeps one, the winner. Scores of a later
rung include the earlier rungs' images (the same image and seed give the same row), so only the
new images are restored.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from ..errors import ConfigError

__all__ = ["rung_plan", "successive_halving"]


def rung_plan(k: int, images: Sequence[int], keep: int) -> list[int]:
    """How many configurations each rung scores: ``k``, ⌈k / keep⌉, … (a rung never scores one
    alone unless it is the first: the plan stops once one configuration is left).

    Raises:
        ConfigError: ``k`` < 1, ``keep`` < 2, or image counts that are not strictly increasing
            positive integers.
    """
    if k < 1:
        raise ConfigError(f"need at least one configuration, got {k}")
    if keep < 2:
        raise ConfigError(f"--keep must be >= 2 (the fraction 1/keep survives a rung), got {keep}")
    if not images or any(int(n) != n or n < 1 for n in images) or any(b <= a for a, b in zip(images, images[1:])):
        raise ConfigError(f"rung image counts must be strictly increasing positive integers, got {list(images)}")
    plan = [k]
    while len(plan) < len(images) and plan[-1] > 1:
        plan.append(max(1, math.ceil(plan[-1] / keep)))
    if len(plan) > 1 and plan[-1] == 1:
        plan.pop()  # a rung of one only scores the winner again
    return plan


def successive_halving(
    trials: Sequence[int],
    images: Sequence[int],
    score: Callable[[int, int], float],
    *,
    keep: int = 3,
    higher_is_better: bool = True,
    on_score: Callable[[int, int, float], None] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Run successive halving.

    Args:
        trials: the configurations' ids.
        images: image count of each rung (strictly increasing).
        score: ``score(trial, n)``: the objective of ``trial`` on the first ``n`` images.
        keep: 1/keep of a rung survives (η of the paper).
        higher_is_better: the objective's direction.
        on_score: called with ``(trial, n, score)`` after each scoring.

    Returns:
        The rungs (``rung``, ``images``, ``scores`` by trial, ``kept``) and the winner's id (ties
        go to the lower id, so the paper's numbers, trial 0, win a tie).
    """
    plan = rung_plan(len(trials), images, keep)
    alive = list(trials)
    rungs: list[dict[str, Any]] = []
    for i, count in enumerate(plan):
        assert len(alive) == count
        n = int(images[i])
        scores = {}
        for t in alive:
            scores[t] = float(score(t, n))
            if on_score is not None:
                on_score(t, n, scores[t])
        sign = -1.0 if higher_is_better else 1.0
        # a NaN score (a diverged configuration) ranks last, whatever the direction
        ranked = sorted(alive, key=lambda t: (math.isnan(scores[t]), sign * scores[t] if not math.isnan(scores[t]) else 0.0, t))
        kept = ranked[: plan[i + 1]] if i + 1 < len(plan) else ranked[:1]
        rungs.append({"rung": i, "images": n, "scores": {str(t): s for t, s in scores.items()}, "kept": kept})
        alive = kept
    return rungs, alive[0]
