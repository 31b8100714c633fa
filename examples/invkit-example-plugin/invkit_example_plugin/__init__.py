r"""An example third-party invkit plugin: a cyclic finite difference that defines only ``A``.

Install it (``pip install -e examples/invkit-example-plugin``) and ``cyclic_diff`` appears in
``invkit.operators()``, in ``invkit operators`` and in invkit's property-test suite. Because
:class:`CyclicDiff` implements nothing but ``A``, invkit supplies the rest: ``AT`` by autograd
(a vector–Jacobian product) and ``pinv`` by conjugate gradients on the normal equations.
"""

from __future__ import annotations

import numpy as np
import torch

from invkit import ConfigError, Operator, hookimpl
from invkit.operator import check_tensor

__all__ = ["CyclicDiff"]


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


def _example(rng: np.random.Generator) -> tuple[Operator, tuple[int, ...]]:
    op = CyclicDiff(axis=int(rng.choice([-1, -2])))
    return op, (int(rng.integers(1, 4)), int(rng.integers(1, 13)), int(rng.integers(1, 13)))


@hookimpl
def invkit_register_operators(register):  # type: ignore[no-untyped-def]
    register(
        "cyclic_diff",
        CyclicDiff,
        description="cyclic finite difference along an axis (example plugin: defines only A)",
        example=_example,
    )
