r"""The example plugin's operator: a cyclic finite difference that defines only ``A``.

Imported by the plugin's hook when invkit first needs operators (it imports torch), not when
invkit loads the plugin.
"""

from __future__ import annotations

import numpy as np
import torch

from invkit import ConfigError, Operator
from invkit.operator import check_tensor

__all__ = ["CyclicDiff", "example"]


class CyclicDiff(Operator):
    r"""Cyclic forward difference along one image axis: ``(A x)_i = x_i − x_{i−1 mod n}``.

    Shape-preserving and rank deficient: images constant along ``axis`` are its null space, so
    ``A⁺ y`` is the zero-mean (along ``axis``) signal whose difference is closest to ``y``.
    """

    def __init__(self, axis: int = -1):
        super().__init__()
        if axis not in (-1, -2):
            raise ConfigError(f"cyclic_diff: axis must be -1 (width) or -2 (height), got {axis!r}")
        self.axis = axis

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=4)
        return x - torch.roll(x, shifts=1, dims=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


def example(rng: np.random.Generator) -> tuple[Operator, tuple[int, ...]]:
    """A randomly parametrised operator and a per-sample input shape it takes (the property suite's contract)."""
    op = CyclicDiff(axis=int(rng.choice([-1, -2])))
    return op, (int(rng.integers(1, 4)), int(rng.integers(1, 13)), int(rng.integers(1, 13)))
