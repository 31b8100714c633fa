r"""Colorization: the per-pixel weighted sum of the colour channels."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from invkit.errors import ConfigError
from invkit.operator import Operator, SVDView, check_tensor

__all__ = ["Colorization", "DDRM_GRAY_WEIGHTS"]

#: DDRM/DDNM/SSD's per-pixel row (not exactly 1/3: the middle weight is 0.3334)
DDRM_GRAY_WEIGHTS = (0.3333, 0.3334, 0.3333)


def _complete_basis(a: np.ndarray) -> np.ndarray:
    """An orthogonal ``(C × C)`` matrix whose first column is ``a/‖a‖``."""
    q, r = np.linalg.qr(np.column_stack([a, np.eye(len(a))]), mode="complete")
    return q * np.sign(r[0, 0])  # QR fixes the first column only up to sign


class Colorization(Operator):
    r"""Gray level ``y = Σ_c a_c x_c`` per pixel: ``(B, C, H, W) → (B, 1, H, W)``.

    ``weights`` default to DDRM/DDNM/SSD's ``a = (0.3333, 0.3334, 0.3333)``; ``weights="exact"``
    gives ``a = (1/3, 1/3, 1/3)``. The per-pixel ``1 × C`` matrix ``aᵀ`` has the single singular
    value ``‖a‖`` (0.57735 here), so ``A⁺ y = a y / ‖a‖²``: the gray value copied into every
    channel with the coefficients ``a_c/‖a‖²`` = (0.9999, 1.0002, 0.9999) — exactly 1 for
    ``"exact"``. (``1/3`` is the forward weight, not the pseudo-inverse.) ``Aᵀ y = a y``.
    The SVD view is per pixel: spectral channel 0 is the coordinate along ``a/‖a‖``.
    """

    def __init__(self, weights: Sequence[float] | str = DDRM_GRAY_WEIGHTS):
        super().__init__()
        if isinstance(weights, str):
            if weights != "exact":
                raise ConfigError(
                    f"colorization: weights must be a sequence of numbers or 'exact', got {weights!r}"
                )
            weights = (1 / 3, 1 / 3, 1 / 3)
        try:
            a = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"colorization: weights must be a sequence of numbers, got {weights!r}") from None
        if a.ndim != 1 or a.size < 1 or not np.isfinite(a).all() or not (a != 0).any():
            raise ConfigError(
                f"colorization: weights must be a non-empty 1-D sequence of finite numbers, "
                f"not all zero; got {weights!r}"
            )
        self.channels = a.size
        self.register_buffer("a", torch.tensor(a))
        self.register_buffer("basis", torch.tensor(_complete_basis(a)))
        self.norm = float(math.sqrt((a * a).sum()))

    def _weights(self, like: torch.Tensor) -> torch.Tensor:
        return self.a.to(device=like.device, dtype=like.dtype).reshape(1, -1, 1, 1)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=4, channels=self.channels)
        # a 1×1 convolution: one fused pass (a broadcast multiply-and-sum is ~10× slower on CPU)
        return torch.nn.functional.conv2d(x, self._weights(x))

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        check_tensor(y, "y", ndim=4, channels=1)
        return y * self._weights(y)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        check_tensor(y, "y", ndim=4, channels=1)
        return y * (self._weights(y) / self.norm**2)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (y_shape[0], self.channels) + tuple(y_shape[2:])

    def _view(self, device: torch.device, dtype: torch.dtype) -> SVDView:
        Q = self.basis.to(device=device, dtype=dtype)
        s = torch.zeros(self.channels, 1, 1, device=device, dtype=dtype)
        s[0] = self.norm

        def Vt(x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("dc,bdhw->bchw", Q.to(device=x.device, dtype=x.dtype), x)

        def V(c: torch.Tensor) -> torch.Tensor:
            return torch.einsum("cd,bdhw->bchw", Q.to(device=c.device, dtype=c.dtype), c)

        def Ut(y: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.pad(y, (0, 0, 0, 0, 0, self.channels - 1))

        def U(c: torch.Tensor) -> torch.Tensor:
            return c[:, :1].clone()

        return SVDView(V=V, Vt=Vt, U=U, Ut=Ut, s=s)

    def svd(self) -> SVDView:
        return self._view(self.a.device, torch.float64)

    def svd_for(self, y: torch.Tensor) -> SVDView:
        check_tensor(y, "y", ndim=4, channels=1)
        return self._view(y.device, y.real.dtype if y.is_complex() else y.dtype)

    def extra_repr(self) -> str:
        return f"weights={tuple(round(float(w), 6) for w in self.a)}"
