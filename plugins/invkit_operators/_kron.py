r"""Separable (Kronecker) operators ``A = A_h ⊗ A_w`` built from exact 1-D SVDs.

A separable operator acts on every channel of an image ``X`` (H × W) as ``Y = A_h X A_wᵀ``. The
pseudo-inverse of a Kronecker product is the Kronecker product of the pseudo-inverses, so
``A⁺ Y = A_h⁺ Y (A_w⁺)ᵀ``, and its SVD is the outer product of the 1-D SVDs (DDRM paper, App. D;
spec §4.3): with ``A_h = U_h S_h V_hᵀ``,

.. math::  A x = U_h\,\big((s_h s_w^T) \odot (V_h^T X V_w)\big)\,U_w^T .

Nothing of size (HW) × (HW) is ever formed: the 1-D factors are computed once per axis length in
float64 on the CPU (``functools.lru_cache``) and cast per (dtype, device) on first use.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import attrs
import numpy as np
import torch

from invkit.errors import ConfigError
from invkit.operator import Operator, SVDView, check_tensor

__all__ = ["Factor", "Separable", "kron_view", "matmul_view", "cached", "cast", "int_param", "float_param"]


@attrs.frozen(eq=False)
class Factor:
    r"""The SVD of a 1-D ``(m × n)`` matrix (``m ≤ n``) with its small singular values zeroed.

    ``M = U diag(s) Vᵀ`` is the matrix *actually applied* (after truncation), ``P = M⁺``.
    ``s`` has length ``n``: the ``min(m, n)`` singular values, zero-padded, so a spectral vector
    has the input's length.
    """

    M: torch.Tensor
    P: torch.Tensor
    U: torch.Tensor
    s: torch.Tensor
    V: torch.Tensor

    @classmethod
    def from_matrix(cls, M: np.ndarray, zero: float = 0.0, rcond: float = 0.0) -> "Factor":
        """SVD of ``M`` in float64; singular values below ``max(zero, rcond · s_max)`` are set to 0."""
        # torch's LAPACK rather than numpy's: it obeys torch.set_num_threads, and OpenBLAS threads
        # can stall for seconds on a busy machine
        M = torch.as_tensor(np.asarray(M, dtype=np.float64))
        m, n = M.shape
        if m > n:
            raise ValueError(f"a 1-D factor must not have more rows than columns, got {tuple(M.shape)}")
        U, s, Vh = torch.linalg.svd(M, full_matrices=True)
        s_max = float(s.max()) if s.numel() else 0.0
        # below max(m, n)·ε·s_max LAPACK cannot tell a singular value from zero (numpy pinv's rule)
        cut = max(zero, rcond * s_max, max(m, n) * torch.finfo(torch.float64).eps * s_max)
        s = torch.where(s < cut, torch.zeros_like(s), s)
        s_inv = torch.where(s > 0, 1.0 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
        V = Vh.T.contiguous()
        s_full = torch.zeros(n, dtype=torch.float64)
        s_full[:m] = s
        return cls(M=(U * s) @ Vh[:m], P=(V[:, :m] * s_inv) @ U.T, U=U, s=s_full, V=V)

    @property
    def m(self) -> int:
        return self.M.shape[0]


def cached(maxsize: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``functools.lru_cache`` whose results are ordinary tensors even when first computed inside
    :func:`torch.inference_mode` (recipes run there); DPS later differentiates through ``A``, and
    autograd cannot save inference tensors for backward."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.lru_cache(maxsize=maxsize)
        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            with torch.inference_mode(False):
                return fn(*args)

        return wrapper

    return decorate


@cached(64)
def cast(factor: Factor, dtype: torch.dtype, device: torch.device) -> Factor:
    """``factor`` with every matrix in ``dtype`` on ``device`` (cached: a hot loop pays nothing)."""
    return Factor(*(getattr(factor, f.name).to(device=device, dtype=dtype) for f in attrs.fields(Factor)))


def real_dtype(t: torch.Tensor) -> torch.dtype:
    return t.real.dtype if t.is_complex() else t.dtype


def _like(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` in ``like``'s real dtype and device (a no-op in the usual, matching case)."""
    return t.to(device=like.device, dtype=real_dtype(like))


def kron_view(fh: Factor, fw: Factor, s: torch.Tensor | None = None) -> SVDView:
    """The :class:`SVDView` of ``A_h ⊗ A_w`` per channel, in the Kronecker layout.

    The spectral coefficient at ``(i, j)`` is ``(V_hᵀ X V_w)_{ij}``, with singular value
    ``s_h[i] s_w[j]`` (or ``s`` if given: an operator that re-assigns singular values to
    positions, like DDRM's deblurring). Measurement coefficients ``U_hᵀ Y U_w`` (``m_h × m_w``)
    sit in the top-left corner, zeroed where ``s = 0``.
    """
    if s is None:
        s = fh.s[:, None] * fw.s[None, :]
    keep = s > 0
    mh, mw = fh.m, fw.m
    H, W = fh.V.shape[0], fw.V.shape[0]

    def Vt(x: torch.Tensor) -> torch.Tensor:
        return _like(fh.V, x).T @ x @ _like(fw.V, x)

    def V(c: torch.Tensor) -> torch.Tensor:
        return _like(fh.V, c) @ c @ _like(fw.V, c).T

    def Ut(y: torch.Tensor) -> torch.Tensor:
        c = _like(fh.U, y).T @ y @ _like(fw.U, y)
        c = torch.nn.functional.pad(c, (0, W - mw, 0, H - mh))
        return c * keep.to(c.device)

    def U(c: torch.Tensor) -> torch.Tensor:
        return _like(fh.U, c) @ (c * keep.to(c.device))[..., :mh, :mw] @ _like(fw.U, c).T

    return SVDView(V=V, Vt=Vt, U=U, Ut=Ut, s=s)


def int_param(op: str, name: str, value: Any, minimum: int) -> int:
    """An integer parameter ``>= minimum`` (bools and floats with a fraction are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def float_param(
    op: str, name: str, value: Any, *, low: float, high: float = math.inf, open_low: bool = True, open_high: bool = True
) -> float:
    """A finite float in the interval from ``low`` to ``high`` (open or closed at each end)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (
            math.isfinite(value)
            and (value > low if open_low else value >= low)
            and (value < high if open_high else value <= high)
        )
    if not ok:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ConfigError(f"{op}: {name} must be a finite number in {interval}, got {value!r}")
    return value


class Separable(Operator):
    r"""Base of per-channel separable operators ``Y = A_h X A_wᵀ`` on ``(B, C, H, W)`` images.

    A subclass implements :meth:`factor` (the 1-D :class:`Factor` of one axis, float64, cached)
    and, when the operator changes the size, :meth:`out_size` / :meth:`in_size`. ``A``, ``AT``,
    ``pinv`` and the SVD view then follow from two matrix products per call.
    """

    #: the operator's name in error messages
    label = "separable operator"

    def factor(self, n: int) -> Factor:
        raise NotImplementedError

    def out_size(self, n: int) -> int:
        """Output length of an axis of input length ``n`` (validates ``n``)."""
        return n

    def in_size(self, m: int) -> int:
        """Input length of an axis whose output length is ``m``."""
        return m

    def _factors(self, H: int, W: int, like: torch.Tensor) -> tuple[Factor, Factor]:
        dtype, device = real_dtype(like), like.device
        return cast(self.factor(H), dtype, device), cast(self.factor(W), dtype, device)

    def check_x(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=4)
        for n in x.shape[-2:]:
            self.out_size(n)  # raises when the operator cannot take this size
        return x

    def check_y(self, y: torch.Tensor) -> torch.Tensor:
        return check_tensor(y, "y", ndim=4)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_x(x)
        fh, fw = self._factors(x.shape[-2], x.shape[-1], x)
        return fh.M @ x @ fw.M.T

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        self.check_y(y)
        fh, fw = self._factors(self.in_size(y.shape[-2]), self.in_size(y.shape[-1]), y)
        return fh.M.T @ y @ fw.M

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        self.check_y(y)
        fh, fw = self._factors(self.in_size(y.shape[-2]), self.in_size(y.shape[-1]), y)
        return fh.P @ y @ fw.P.T

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(y_shape[:-2]) + (self.in_size(y_shape[-2]), self.in_size(y_shape[-1]))

    def svd_for(self, y: torch.Tensor) -> SVDView:
        self.check_y(y)
        fh, fw = self._factors(self.in_size(y.shape[-2]), self.in_size(y.shape[-1]), y)
        return kron_view(fh, fw)


def matmul_view(
    U: torch.Tensor, s: torch.Tensor, V: torch.Tensor, x_shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> SVDView:
    """The :class:`SVDView` of a dense ``(m × n)`` matrix ``U diag(s) Vᵀ`` acting on flattened inputs.

    ``s`` has length ``n`` (zero-padded); spectral vectors are reshaped to ``x_shape``
    (per-sample) and measurements to ``y_shape``.
    """
    m, n = U.shape[0], V.shape[0]
    r = min(m, n)
    keep = s > 0

    def flat(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(t.shape[0], -1)

    def Vt(x: torch.Tensor) -> torch.Tensor:
        return (flat(x) @ _like(V, x)).reshape(x.shape)

    def Vf(c: torch.Tensor) -> torch.Tensor:
        return (flat(c) @ _like(V, c).T).reshape(c.shape)

    def Ut(y: torch.Tensor) -> torch.Tensor:
        c = flat(y) @ _like(U, y)[:, :r]
        c = torch.nn.functional.pad(c, (0, n - r)) * keep.to(c.device)
        return c.reshape((y.shape[0],) + tuple(x_shape))

    def Uf(c: torch.Tensor) -> torch.Tensor:
        kept = (flat(c) * keep.to(c.device))[:, :r]
        return (kept @ _like(U, c)[:, :r].T).reshape((c.shape[0],) + tuple(y_shape))

    return SVDView(V=Vf, Vt=Vt, U=Uf, Ut=Ut, s=s.reshape(x_shape))
