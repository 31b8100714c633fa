r"""The plan a ``Recipe`` builds before its first network call.

A recipe's generation list ``s_{B−1} > … > s_0`` (plus DDNM's time travel) becomes a list of
``GenStep`` objects, one per step ``t → t′``, with the schedule's coefficients precomputed
as Python floats so the sampling loop does no schedule arithmetic. ``Context`` is what a
``Guidance`` knows about the run. Both are handed to every guidance hook.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import attrs
import torch

from .operator import Operator

__all__ = ["GenStep", "Context", "travel_schedule", "generation_plan"]


@attrs.frozen(slots=True)
class GenStep:
    """One generation step ``t → t_next`` with its coefficients precomputed as Python floats.

    ``i`` indexes the generation timestep list (0 = lowest timestep), so the first step of a
    B-step recipe has ``i = B − 1``. ``t_next = −1`` after the last step; ``t_next > t`` marks a
    time-travel step (DDNM), which makes no network call and calls no guidance.

    Attributes:
        i: the index of ``t`` in the generation timestep list (0 = lowest).
        t: the current timestep.
        t_next: the next timestep (−1 after the last step).
        abar: ᾱ_t.
        abar_next: ᾱ_{t_next} (1 when ``t_next = −1``).
        eta: the recipe's generation noise mix η.
        sqrt_abar: √ᾱ_t.
        sqrt_1m_abar: √(1 − ᾱ_t).
        sqrt_abar_next: √ᾱ_{t_next}.
        sigma_next: √(1 − ᾱ_{t_next}), the VP noise level after the step.
    """

    i: int
    t: int
    t_next: int
    abar: float
    abar_next: float
    eta: float
    sqrt_abar: float
    sqrt_1m_abar: float
    sqrt_abar_next: float
    sigma_next: float  # √(1 − ᾱ_next): the VP noise level after the step

    @classmethod
    def make(cls, i: int, t: int, t_next: int, abar: float, abar_next: float, eta: float) -> "GenStep":
        """A step with its square roots computed from ``abar`` and ``abar_next``.

        Args:
            i: the index of ``t`` in the generation list.
            t: the current timestep.
            t_next: the next timestep (−1 after the last step).
            abar: ᾱ_t.
            abar_next: ᾱ_{t_next}.
            eta: the recipe's η.

        Returns:
            The ``GenStep``.
        """
        return cls(
            i, t, t_next, abar, abar_next, eta,
            math.sqrt(abar), math.sqrt(1.0 - abar), math.sqrt(abar_next), math.sqrt(1.0 - abar_next),
        )

    @property
    def travel(self) -> bool:
        """True for a time-travel step (``t_next > t``): re-noising, no network call."""
        return self.t_next > self.t


@attrs.frozen
class Context:
    """What a guidance knows about the run: the operator, ``y``, the resolved ``t0``, the number
    of generation timesteps ``steps`` and whatever ``Guidance.start`` precomputed (``extra``).

    Attributes:
        op: the operator ``A``.
        y: the measurement.
        t0: the recipe's ``t0`` (the model's ``T`` when the recipe leaves it ``None``).
        steps: the number of generation timesteps B.
        extra: per-run data of the guidance (``None`` until ``start`` sets it).
    """

    op: Operator
    y: torch.Tensor
    t0: int
    steps: int
    extra: Any = None


def travel_schedule(n: int, length: int = 1, repeat: int = 1) -> list[int]:
    """Indices into an ``n``-step generation list, in visiting order, ending with −1 (the output).

    Without travel (``repeat = 1``) this is ``n−1, …, 0, −1``. Otherwise, each time the walk
    reaches j ∈ {0, length, 2·length, …} (j < n − length) it goes back up ``length`` indices one at
    a time, ``repeat − 1`` times per j (RePaint's jump schedule, Lugmayr et al., CVPR 2022, as
    DDNM uses it).

    Args:
        n: the length of the generation list.
        length: the travel length l.
        repeat: the travel repeat r (1: no travel).

    Returns:
        The visiting order of list indices, ending with −1.

    Examples:
        ```python
        from invkit.plan import travel_schedule

        travel_schedule(4)                        # [3, 2, 1, 0, -1]
        travel_schedule(4, length=1, repeat=2)    # [3, 2, 3, 2, 1, 2, 1, 0, 1, 0, -1]
        ```
    """
    jumps = {j: repeat - 1 for j in range(0, n - length, length)}
    out: list[int] = []
    k = n
    while k > 0:
        k -= 1
        out.append(k)
        if jumps.get(k, 0) > 0:
            jumps[k] -= 1
            for _ in range(length):
                k += 1
                out.append(k)
    out.append(-1)
    return out


def generation_plan(
    gen: Sequence[int], abar: Sequence[float] | torch.Tensor, eta: float, travel_length: int = 1, travel_repeat: int = 1
) -> list[GenStep]:
    """The :class:`GenStep` list for the increasing generation list ``gen``, in visiting order.

    Args:
        gen: generation timesteps, increasing (``gen[0]`` is the last step's t).
        abar: the schedule's ᾱ_t for t = 0..T−1.
        eta: the generation noise mix η stored in every step.
        travel_length: DDNM time-travel length l (1 with ``travel_repeat = 1``: no travel).
        travel_repeat: DDNM time-travel repeat r.

    Returns:
        One step per visited transition; the last has ``t_next = −1`` (ᾱ = 1).
    """
    order = travel_schedule(len(gen), travel_length, travel_repeat)
    steps = []
    for i, j in zip(order[:-1], order[1:]):
        t, t_next = gen[i], (gen[j] if j >= 0 else -1)
        a_next = 1.0 if t_next < 0 else float(abar[t_next])
        steps.append(GenStep.make(i, t, t_next, float(abar[t]), a_next, float(eta)))
    return steps
