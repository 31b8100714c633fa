r"""The identity (denoising) and a dense matrix on flattened inputs."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from invkit.errors import ConfigError, InvalidDTypeError, InvalidInputError
from invkit.operator import Operator, SVDView, check_tensor

from ._kron import matmul_view

__all__ = ["Denoise", "Matrix"]


class Denoise(Operator):
    r"""The identity ``A = A⁺ = Aᵀ = I`` on any ``(B, ...)`` tensor: denoising (``y = x + σ n``),
    the noise being a separate :class:`invkit.Noise`. SVD view: ``U = V = I``, ``s = 1``."""

    def __init__(self) -> None:  # an explicit signature: the registry rejects stray keywords
        super().__init__()

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return check_tensor(x, "x", min_ndim=2).clone()

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        return check_tensor(y, "y", min_ndim=2).clone()

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return check_tensor(y, "y", min_ndim=2).clone()

    def svd(self) -> SVDView:
        def ident(t: torch.Tensor) -> torch.Tensor:
            return t.clone()

        return SVDView(V=ident, Vt=ident, U=ident, Ut=ident, s=torch.ones(1, dtype=torch.float64))

    def svd_for(self, y: torch.Tensor) -> SVDView:
        check_tensor(y, "y", min_ndim=2)
        view = self.svd()
        return SVDView(V=view.V, Vt=view.Vt, U=view.U, Ut=view.Ut, s=view.s.to(y.device))


class Matrix(Operator):
    r"""A dense ``(m × n)`` matrix acting on flattened inputs: ``y = M vec(x)``, ``(B, ...) → (B, m)``.

    ``x`` may have any per-sample shape with ``n`` entries; ``Aᵀ``, ``A⁺`` and ``project``
    return ``in_shape`` (default ``(n,)``; pass ``in_shape=(C, H, W)`` for images). ``A⁺`` comes
    from the SVD ``M = U diag(s) Vᵀ`` computed once in float64: singular values
    ``≤ max(m, n) · ε₆₄ · s_max`` (numpy's ``pinv`` rule) count as zero, and ``A`` applies the
    matrix with those removed, so the Penrose identities hold exactly. Used by the Gaussian-
    mixture benchmark (``spec/gmm.md``). SVD view: spectral vectors are ``Vᵀ vec(x)`` shaped as
    ``in_shape``.
    """

    def __init__(self, M: torch.Tensor | np.ndarray | Sequence[Sequence[float]], in_shape: Sequence[int] | None = None):
        super().__init__()
        if isinstance(M, torch.Tensor):
            if not M.is_floating_point():
                raise InvalidDTypeError(f"matrix: M must be a floating-point matrix, got dtype {M.dtype}")
            M = M.detach().cpu().double().numpy()
        try:
            M = np.asarray(M, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidDTypeError("matrix: M must be a 2-D array of numbers") from None
        if M.ndim != 2 or M.size == 0:
            raise InvalidInputError(f"matrix: M must be a non-empty 2-D (m × n) matrix, got shape {M.shape}")
        if not np.isfinite(M).all():
            raise InvalidInputError("matrix: M contains NaN or Inf values")
        m, n = M.shape
        try:
            in_shape = (n,) if in_shape is None else tuple(int(d) for d in in_shape)
        except (TypeError, ValueError):
            raise ConfigError(f"matrix: in_shape must be a sequence of positive integers, got {in_shape!r}") from None
        if math.prod(in_shape) != n or any(d < 1 for d in in_shape):
            raise ConfigError(f"matrix: in_shape {in_shape} must have n = {n} entries (M has {n} columns)")
        self.in_shape = in_shape
        # torch's LAPACK obeys torch.set_num_threads (numpy's OpenBLAS threads can stall)
        U, s, Vh = torch.linalg.svd(torch.from_numpy(M), full_matrices=True)
        s_max = float(s.max()) if s.numel() else 0.0
        s = torch.where(s <= max(m, n) * torch.finfo(torch.float64).eps * s_max, torch.zeros_like(s), s)
        r = s.numel()
        s_inv = torch.where(s > 0, 1.0 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
        s_full = torch.zeros(n, dtype=torch.float64)
        s_full[:r] = s
        self.register_buffer("M", (U[:, :r] * s) @ Vh[:r])
        self.register_buffer("P", (Vh[:r].T * s_inv) @ U[:, :r].T)
        self.register_buffer("U", U)
        self.register_buffer("s", s_full)
        self.register_buffer("V", Vh.T.contiguous())
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.M.shape)

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - nn.Module signature
        self._cache = {}  # .to()/.double() replace the buffers
        return super()._apply(fn, recurse)

    def _get(self, name: str, like: torch.Tensor) -> torch.Tensor:
        key = (name, like.dtype, like.device)
        t = self._cache.get(key)
        if t is None:
            with torch.inference_mode(False):  # cached for later autograd use too (DPS)
                t = self._cache[key] = getattr(self, name).to(device=like.device, dtype=like.dtype)
        return t

    def _flat_x(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", min_ndim=2)
        if math.prod(x.shape[1:]) != self.shape[1]:
            raise InvalidInputError(
                f"matrix: x of shape {tuple(x.shape)} has {math.prod(x.shape[1:])} entries per sample; "
                f"M is {self.shape[0]}×{self.shape[1]}, so each sample needs {self.shape[1]}"
            )
        return x.reshape(x.shape[0], -1)

    def _check_y(self, y: torch.Tensor) -> torch.Tensor:
        check_tensor(y, "y", ndim=2)
        if y.shape[1] != self.shape[0]:
            raise InvalidInputError(f"matrix: y must have shape (B, {self.shape[0]}), got {tuple(y.shape)}")
        return y

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self._flat_x(x) @ self._get("M", x).T

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        return (self._check_y(y) @ self._get("M", y)).reshape((y.shape[0],) + self.in_shape)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return (self._check_y(y) @ self._get("P", y).T).reshape((y.shape[0],) + self.in_shape)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (y_shape[0],) + self.in_shape

    def svd(self) -> SVDView:
        return matmul_view(self.U, self.s, self.V, self.in_shape, (self.shape[0],))

    def svd_for(self, y: torch.Tensor) -> SVDView:
        self._check_y(y)
        return matmul_view(self._get("U", y), self._get("s", y), self._get("V", y), self.in_shape, (self.shape[0],))

    def extra_repr(self) -> str:
        return f"shape={self.shape}, in_shape={self.in_shape}"
