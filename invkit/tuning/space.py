r"""The search space of ``invkit tune``: SSD's numbers at an exact network-call budget.

An SSD recipe with F inversion and B generation steps calls the network (F − 1) + B times (the
first inversion step starts from A⁺y at t = 0 and needs no call), so a budget N fixes
B = N − (F − 1). The space is F ∈ {2, …, F_max} (F_max = max(2, ⌈N/2⌉): at least as many
generation as inversion steps), t0, the DA inversion η (``inversion_eta``), the generation η
(``eta``) and the spacing of both lists (``uniform``, ``quadratic``, ``karras``; ``leading`` does
not end an inversion list at t0 − 1, so it is left out).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from ..errors import ConfigError
from ..validators import positive_int

__all__ = ["SPACINGS", "SearchSpace", "method_string", "paper_config"]

SPACINGS = ("uniform", "quadratic", "karras")
_UNIT = tuple(round(0.1 * k, 1) for k in range(11))


def _budget(instance: Any, attribute: Any, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise ConfigError(f"an NFE budget must be an integer >= 2, got {value!r}")


def _grid(lo: float, hi: float, what: str):
    def check(instance: Any, attribute: Any, value: tuple) -> None:
        if not value or any(not (lo <= v <= hi) for v in value):
            raise ConfigError(f"the {what} grid must be a non-empty list of numbers in [{lo}, {hi}], got {list(value)}")

    return check


def paper_config(nfe: int) -> dict[str, Any]:
    """SSD's published numbers (SR: t0 550, η_inv 0.4, η 0.8, uniform) at budget ``nfe``:
    F = max(2, ⌈0.15·N⌉) as the paper's 5 + 25 and 15 + 85 splits, B = N − (F − 1)."""
    F = max(2, math.ceil(0.15 * nfe))
    return {"inversion_steps": F, "generation_steps": nfe - (F - 1), "t0": 550, "inversion_eta": 0.4, "eta": 0.8, "spacing": "uniform"}


@attrs.frozen
class SearchSpace:
    """The grids searched at budget ``nfe`` (every configuration makes exactly ``nfe`` calls)."""

    nfe: int = attrs.field(validator=_budget)
    t0: tuple[int, ...] = attrs.field(default=tuple(range(300, 901, 50)), converter=tuple, validator=_grid(2, 1000, "t0"))
    inversion_eta: tuple[float, ...] = attrs.field(default=_UNIT, converter=tuple, validator=_grid(0, 1, "inversion η"))
    eta: tuple[float, ...] = attrs.field(default=_UNIT, converter=tuple, validator=_grid(0, 1, "η"))
    spacing: tuple[str, ...] = attrs.field(default=SPACINGS, converter=tuple)
    max_inversion_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int()))

    @spacing.validator
    def _check_spacing(self, attribute: Any, value: tuple[str, ...]) -> None:
        bad = [s for s in value if s not in SPACINGS]
        if not value or bad:
            raise ConfigError(f"spacings must be among {', '.join(SPACINGS)}, got {list(value)}")

    def splits(self) -> list[tuple[int, int]]:
        """Every (F, B) with (F − 1) + B = nfe, F from 2 to F_max, B >= 1."""
        f_max = self.max_inversion_steps or max(2, math.ceil(self.nfe / 2))
        return [(F, self.nfe - (F - 1)) for F in range(2, min(f_max, self.nfe) + 1)]

    def size(self) -> int:
        """How many distinct configurations the grids hold."""
        return len(self.splits()) * len(self.t0) * len(self.inversion_eta) * len(self.eta) * len(self.spacing)

    def sample(self, k: int, seed: int) -> list[dict[str, Any]]:
        """``k`` distinct configurations: the paper's numbers first, then uniform draws from the
        grids with ``numpy.random.default_rng(seed)`` (the same ``(k, seed)`` gives the same list).

        Raises:
            ConfigError: ``k`` < 1 or more than the grids hold.
        """
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"the number of configurations must be >= 1, got {k!r}")
        if k > self.size():
            raise ConfigError(f"asked for {k} configurations but the search space holds only {self.size()}")
        rng = np.random.default_rng(seed)
        first = paper_config(self.nfe)
        configs, seen = [first], {_key(first)}
        splits = self.splits()
        while len(configs) < k:
            F, B = splits[int(rng.integers(len(splits)))]
            c = {
                "inversion_steps": F,
                "generation_steps": B,
                "t0": int(self.t0[int(rng.integers(len(self.t0)))]),
                "inversion_eta": float(self.inversion_eta[int(rng.integers(len(self.inversion_eta)))]),
                "eta": float(self.eta[int(rng.integers(len(self.eta)))]),
                "spacing": str(self.spacing[int(rng.integers(len(self.spacing)))]),
            }
            if _key(c) not in seen:
                seen.add(_key(c))
                configs.append(c)
        return configs

    def as_dict(self) -> dict[str, Any]:
        return {"nfe": self.nfe, "splits": [list(s) for s in self.splits()], "t0": list(self.t0),
                "inversion_eta": list(self.inversion_eta), "eta": list(self.eta), "spacing": list(self.spacing)}  # fmt: skip


def _key(config: dict[str, Any]) -> tuple:
    return tuple(sorted(config.items()))


def method_string(family: str, config: dict[str, Any]) -> str:
    """The ``invkit eval`` method string of ``config`` (``ssd:inversion_steps=3,...``)."""
    return f"{family}:" + ",".join(f"{k}={v!r}" for k, v in config.items())
