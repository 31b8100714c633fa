r"""Super-resolution operators: average pooling and MATLAB-style antialiased bicubic downsampling."""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from invkit.errors import InvalidInputError

from ._kron import Factor, Separable, cached, int_param

__all__ = ["SRAvgPool", "SRBicubic", "keys_cubic", "bicubic_matrix", "avgpool_matrix"]

#: 1-D singular values below this are zeroed, as DDRM's ``SRConv`` (``ZERO = 3e-2``); none are at
#: the usual sizes (the smallest is ≈ 0.36 for ×4 and ≈ 0.25 for ×8 at 256 px).
BICUBIC_ZERO = 3e-2


class _Downsample(Separable):
    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = int_param(self.label, "scale", scale, 1)

    def out_size(self, n: int) -> int:
        if n % self.scale:
            raise InvalidInputError(
                f"{self.label}(scale={self.scale}): image size {n} is not a multiple of the scale; "
                f"crop or pad the image to a multiple of {self.scale}"
            )
        return n // self.scale

    def in_size(self, m: int) -> int:
        return m * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def avgpool_matrix(n: int, scale: int) -> np.ndarray:
    """The ``(n/scale × n)`` matrix averaging consecutive blocks of ``scale`` samples."""
    return np.kron(np.eye(n // scale), np.full((1, scale), 1.0 / scale))


@cached(32)
def _avgpool_factor(scale: int, n: int) -> Factor:
    return Factor.from_matrix(avgpool_matrix(n, scale))


class SRAvgPool(_Downsample):
    r"""Average pooling over ``scale × scale`` blocks (DDRM ``sr{r}``, DDNM ``sr_averagepooling``, SSD+).

    ``A x = avg_pool2d(x, r)``. Its rows are orthogonal with ``A Aᵀ = I / r²``, so
    ``A⁺ = Aᵀ (A Aᵀ)⁻¹ = r² Aᵀ`` is **nearest-neighbour replication** (DDNM's ``MeanUpsample``),
    while ``Aᵀ`` is replication divided by ``r²``. Singular values: ``1/r`` on the range.
    """

    label = "sr_avgpool"

    def factor(self, n: int) -> Factor:
        return _avgpool_factor(self.scale, n)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_x(x)
        return F.avg_pool2d(x, self.scale) if self.scale > 1 else x.clone()

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        self.check_y(y)
        return y.repeat_interleave(self.scale, dim=-2).repeat_interleave(self.scale, dim=-1)

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        return self.pinv(y) / self.scale**2


def keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    r"""Keys' cubic convolution kernel: ``(a+2)|x|³ − (a+3)|x|² + 1`` on ``|x| ≤ 1``,
    ``a|x|³ − 5a|x|² + 8a|x| − 4a`` on ``1 < |x| < 2``, 0 beyond (MATLAB ``imresize``: ``a = −0.5``)."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _reflect(j: np.ndarray, n: int) -> np.ndarray:
    """Symmetric boundary with edge repeat: ``-1 → 0``, ``n → n-1`` (period ``2n``)."""
    j = np.mod(j, 2 * n)
    return np.where(j >= n, 2 * n - 1 - j, j)


def bicubic_matrix(n: int, scale: int) -> np.ndarray:
    r"""The ``(n/scale × n)`` antialiased bicubic downsampling matrix of MATLAB ``imresize``.

    Output sample ``m`` is centred at input coordinate ``u = (m + ½)·f − ½`` (the centre of its
    block of ``f`` pixels); it weighs the inputs ``j`` with ``|j − u| < 2f`` by
    ``keys_cubic((j − u)/f)`` normalised to sum 1, and reflects indices outside ``[0, n)``
    (``j < 0 → −j−1``, ``j ≥ n → 2n−1−j``). For even ``f`` these are the ``4f`` taps at
    ``(i − 2f + ½)/f`` of DDRM's ``SRConv`` (row ``m`` covers ``[fm + f/2 − 2f, fm + f/2 + 2f)``)
    and of DPS's ``Resizer``. For odd ``f`` DDRM's loop is off centre by half a pixel; this
    centres it, as ``imresize`` does (``4f − 1`` taps).
    """
    m = n // scale
    twice_u = (2 * np.arange(m) + 1) * scale - 1  # 2u, an integer
    lo = (twice_u - 4 * scale) // 2 + 1
    hi = -((-(twice_u + 4 * scale)) // 2) - 1
    taps = int(hi[0] - lo[0] + 1)
    j = lo[:, None] + np.arange(taps)[None, :]
    w = keys_cubic((2 * j - twice_u[:, None]) / (2 * scale))
    w /= w.sum(axis=1, keepdims=True)
    M = np.zeros((m, n))
    np.add.at(M, (np.repeat(np.arange(m), taps), _reflect(j, n).ravel()), w.ravel())
    return M


@cached(32)
def _bicubic_factor(scale: int, n: int) -> Factor:
    return Factor.from_matrix(bicubic_matrix(n, scale), zero=BICUBIC_ZERO)


class SRBicubic(_Downsample):
    r"""MATLAB-style antialiased bicubic downsampling by ``scale`` (DDRM/DDNM ``sr_bicubic``,
    SSD ``SRConv``, DPS ``Resizer``: one operator for all four, borders included).

    Separable and identical per channel: ``Y = A₁ X A₁ᵀ`` with ``A₁ = bicubic_matrix(n, f)`` per
    axis (Keys cubic, ``a = −0.5``, reflect boundary). ``A⁺ Y = A₁⁺ Y A₁⁺ᵀ`` from the exact 1-D
    SVDs; 1-D singular values below ``3e-2`` are zeroed as in DDRM (none are at ×2/×4/×8, so
    ``A`` is the plain bicubic there). In the interior it equals
    ``F.interpolate(x, scale_factor=1/f, mode="bicubic", antialias=True)``; torch renormalises
    the taps at the borders instead of reflecting.
    """

    label = "sr_bicubic"

    def factor(self, n: int) -> Factor:
        return _bicubic_factor(self.scale, n)
