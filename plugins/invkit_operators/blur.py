r"""Blur operators: a true separable Gaussian, the paper-compatible DDRM "deblur" operator, and
circular convolution with any kernel by FFT."""

from __future__ import annotations

import math

import numpy as np
import torch

from invkit.errors import ConfigError, InvalidDTypeError, InvalidInputError
from invkit.operator import Operator, SVDView, check_tensor

from ._kron import Factor, Separable, cached, cast, float_param, int_param, kron_view, real_dtype

__all__ = ["DeblurGauss", "DeblurGaussDDRM", "BlurFFT", "gaussian_taps", "DDRM_ZERO"]

#: DDRM/DDNM/SSD zero their 1-D deblurring singular values below this (absolute) value
DDRM_ZERO = 3e-2


def gaussian_taps(kernel_size: int, sigma: float) -> np.ndarray:
    r"""``w_t ∝ exp(−t² / 2σ²)`` for ``t = −k//2 … k//2``, normalised to sum 1."""
    t = np.arange(kernel_size) - kernel_size // 2
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _odd_kernel_size(op: str, kernel_size: object, minimum: int) -> int:
    k = int_param(op, "kernel_size", kernel_size, minimum)
    if k % 2 == 0:
        raise ConfigError(f"{op}: kernel_size must be odd so the kernel has a centre tap, got {k}")
    return k


@cached(32)
def _gauss_factor(kernel_size: int, sigma: float, rcond: float, n: int) -> Factor:
    w = gaussian_taps(kernel_size, sigma)
    r = kernel_size // 2
    M = np.zeros((n, n))
    for d in range(-r, r + 1):
        M += np.eye(n, k=d) * w[d + r]
    return Factor.from_matrix(M, rcond=rcond)


class DeblurGauss(Separable):
    r"""Separable Gaussian blur with all ``k`` taps and zero boundary, rank-truncated.

    Per axis, the ``n × n`` matrix ``G[i, j] = w[j − i + k//2]`` for ``|j − i| ≤ k//2`` (zero
    padding, as DDRM/DDNM, keeps it a matrix; ``w`` = :func:`gaussian_taps`, all taps, summing
    to 1); the image is ``Y = G_h X G_wᵀ`` per channel. Its small singular values make ``A⁺``
    useless in practice, so **A is the truncated blur**: in each 1-D SVD ``G = U S Vᵀ`` the
    singular values ``< rcond · s_max`` (default ``3e-2``: DDRM's cut, relative here) are zeroed,
    and both ``A`` and ``A⁺`` use the truncated ``G``. So the Penrose identities hold exactly,
    and ``A`` differs from the true blur only in components the blur attenuates below
    ``rcond`` per axis (2-D singular values down to ``rcond²`` survive). ``kernel_size``
    defaults to ``2⌈3σ⌉ + 1``; ``sigma`` defaults to DPS's 3.0 px.
    """

    label = "deblur_gauss"

    def __init__(self, kernel_size: int | None = None, sigma: float = 3.0, rcond: float = 3e-2):
        super().__init__()
        self.sigma = float_param(self.label, "sigma", sigma, low=0.0)
        if kernel_size is None:
            kernel_size = 2 * math.ceil(3 * self.sigma) + 1
        self.kernel_size = _odd_kernel_size(self.label, kernel_size, 1)
        self.rcond = float_param(self.label, "rcond", rcond, low=0.0, high=1.0)

    def factor(self, n: int) -> Factor:
        return _gauss_factor(self.kernel_size, self.sigma, self.rcond, n)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sigma={self.sigma:g}, rcond={self.rcond:g}"


@cached(32)
def _ddrm_factor(kernel_size: int, sigma: float, n: int) -> Factor:
    w = gaussian_taps(kernel_size, sigma)
    r = kernel_size // 2
    M = np.zeros((n, n))
    for d in range(-r, r):  # DDRM's loop `range(i - k//2, i + k//2)`: the last tap is dropped
        M += np.eye(n, k=d) * w[d + r]
    return Factor.from_matrix(M, zero=DDRM_ZERO)


@cached(32)
def _ddrm_singulars(kernel_size: int, sigma: float, C: int, H: int, W: int) -> torch.Tensor:
    fh, fw = _ddrm_factor(kernel_size, sigma, H), _ddrm_factor(kernel_size, sigma, W)
    s = (fh.s[:, None] * fw.s[None, :]).reshape(-1)
    N = s.numel()
    order = torch.sort(s, descending=True, stable=True).indices  # ties keep row-major (i, j) order
    s_sorted = s[order]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(N)
    c = torch.arange(C)[:, None]
    return s_sorted[(C * rank[None, :] + c) % N].reshape(C, H, W)


@cached(64)
def _cast_tensor(t: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return t.to(device=device, dtype=dtype)


class DeblurGaussDDRM(Operator):
    r"""The "Gaussian deblurring" operator DDRM, DDNM and SSD actually apply — **not a blur**.

    It exists only to reproduce the published deblurring numbers (spec §4.2, ssd.md §6). Built
    as in DDRM's ``Deblurring`` class, for any ``H × W`` and ``channels``:

    1. per axis the ``n × n`` zero-boundary matrix whose row ``i`` covers
       ``j ∈ [i − k//2, i + k//2)``: the last of the ``k`` taps of :func:`gaussian_taps` is
       dropped and the rest is not renormalised (DC gain 0.891 for ``k = 9, σ = 15``);
    2. its SVD ``U S Vᵀ`` with 1-D singular values ``< 3e-2`` set to 0 (absolute);
    3. 2-D singular values ``s = s_h ⊗ s_w``, flattened row-major and sorted descending with a
       **stable** sort (ties keep row-major order; DDRM's unstable ``torch.sort`` leaves the
       tie order to the backend, which changes where equal values land but not their values);
    4. DDRM's ``singulars()`` tiles the sorted values per channel (``repeat(1, 3)``) while the
       spectral vector is pixel-major, channel-minor: the coefficient of channel ``c`` at sorted
       position ``p`` is scaled by ``s_sorted[(C·p + c) mod N]`` (``N = H·W``) instead of
       ``s_sorted[p]``.

    So ``A x = U_h (S_c ⊙ V_hᵀ X_c V_w) U_wᵀ`` per channel with the scrambled ``S_c``; its
    response to a delta is spread over the whole image. ``A⁺`` uses the same scrambled values,
    so ``A A⁺ A = A`` and the projections are self-consistent. The SVD view is this
    factorisation (Kronecker ``U``/``V``, per-channel ``s``). Defaults ``k = 9, σ = 15`` are
    SSD's ``DeblurGaussOperator``; DDRM/DDNM's ``deblur_gauss`` is ``k = 5, σ = 10``.
    """

    label = "deblur_gauss_ddrm"

    def __init__(self, kernel_size: int = 9, sigma: float = 15.0, channels: int = 3):
        super().__init__()
        self.kernel_size = _odd_kernel_size(self.label, kernel_size, 3)
        self.sigma = float_param(self.label, "sigma", sigma, low=0.0)
        self.channels = int_param(self.label, "channels", channels, 1)

    def _view(self, shape: tuple[int, ...], like: torch.Tensor) -> SVDView:
        C, H, W = shape[-3:]
        dtype, device = real_dtype(like), like.device
        fh = cast(_ddrm_factor(self.kernel_size, self.sigma, H), dtype, device)
        fw = cast(_ddrm_factor(self.kernel_size, self.sigma, W), dtype, device)
        s = _cast_tensor(_ddrm_singulars(self.kernel_size, self.sigma, C, H, W), dtype, device)
        return kron_view(fh, fw, s)

    def _check(self, t: torch.Tensor, name: str) -> torch.Tensor:
        return check_tensor(t, name, ndim=4, channels=self.channels)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self._view(self._check(x, "x").shape, x).A(x)

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        return self._view(self._check(y, "y").shape, y).AT(y)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return self._view(self._check(y, "y").shape, y).pinv(y)

    def svd_for(self, y: torch.Tensor) -> SVDView:
        return self._view(self._check(y, "y").shape, y)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sigma={self.sigma:g}, channels={self.channels}"


@cached(32)
def _fft_response(kernel: torch.Tensor, rcond: float, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The truncated transfer function and its pseudo-inverse on the ``rfft2`` grid (complex128)."""
    kh, kw = kernel.shape
    padded = torch.zeros(H, W, dtype=torch.float64)
    padded[:kh, :kw] = kernel
    K = torch.fft.fft2(torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1)))
    mag = K.abs()
    # |K(ω)| = |K(−ω)| for a real kernel; average the pair so rounding cannot split it at the cut
    mag = 0.5 * (mag + torch.roll(mag.flip(0, 1), shifts=(1, 1), dims=(0, 1)))
    keep = mag >= rcond * mag.max()
    half = W // 2 + 1
    K, mag, keep = K[:, :half], mag[:, :half], keep[:, :half]
    Kt = torch.where(keep, K, torch.zeros_like(K))
    Kp = torch.where(keep, K.conj() / torch.where(keep, mag * mag, torch.ones_like(mag)), torch.zeros_like(K))
    return Kt, Kp


class BlurFFT(Operator):
    r"""Circular convolution with any 2-D ``kernel`` (centre tap at ``(kh//2, kw//2)``), by FFT.

    ``A x = F⁻¹(K̂ ⊙ F x)`` per channel, with ``K̂`` the DFT of the kernel placed at the origin
    of an ``H × W`` grid (the image must be at least the kernel's size). Frequencies with
    ``|K̂(ω)| < rcond · max |K̂|`` (default ``1e-3``, comparable to the 2-D cut ``3e-2²`` of
    :class:`DeblurGauss`) are zeroed, and **A is that truncated convolution**, so
    ``A⁺ = F⁻¹(K̂* / |K̂|² ⊙ F ·)`` on the kept frequencies satisfies the Penrose identities
    exactly; ``Aᵀ`` uses ``K̂*``. No SVD view: the real Fourier basis pairs ``±ω`` and rotates
    them by the phase of ``K̂``, which does not fit the same-shape spectral layout cleanly.
    """

    label = "blur_fft"

    def __init__(self, kernel: torch.Tensor | np.ndarray, rcond: float = 1e-3):
        super().__init__()
        if isinstance(kernel, np.ndarray):
            kernel = torch.from_numpy(kernel)
        if not isinstance(kernel, torch.Tensor) or not kernel.is_floating_point():
            raise InvalidDTypeError(
                f"blur_fft: kernel must be a real floating-point 2-D tensor, got "
                f"{kernel.dtype if isinstance(kernel, torch.Tensor) else type(kernel).__name__}"
            )
        if kernel.ndim != 2 or kernel.numel() == 0:
            raise InvalidInputError(f"blur_fft: kernel must be 2-D (kh, kw), got shape {tuple(kernel.shape)}")
        if not bool(torch.isfinite(kernel).all()) or not bool((kernel != 0).any()):
            raise InvalidInputError("blur_fft: kernel must be finite and not all zero")
        self.register_buffer("kernel", kernel.detach().to(torch.float64).clone())
        # a private CPU copy keys the per-size transfer-function cache wherever the module moves
        self._kernel64 = self.kernel.cpu().clone()
        self.rcond = float_param(self.label, "rcond", rcond, low=0.0, high=1.0)

    def _response(self, t: torch.Tensor, which: int) -> torch.Tensor:
        H, W = t.shape[-2:]
        kh, kw = self._kernel64.shape
        if kh > H or kw > W:
            raise InvalidInputError(
                f"blur_fft: the {kh}×{kw} kernel does not fit in {H}×{W} images; "
                f"use images at least the kernel's size"
            )
        K = _fft_response(self._kernel64, self.rcond, H, W)[which]
        cdtype = torch.complex128 if real_dtype(t) == torch.float64 else torch.complex64
        return _cast_tensor(K, cdtype, t.device)

    def _filter(self, t: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        # half precision: the FFT runs in float32 (the CPU has no half FFT; CUDA only for powers of 2)
        tt = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
        out = torch.fft.irfft2(torch.fft.rfft2(tt) * K, s=t.shape[-2:])
        return out.to(t.dtype)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=4)
        return self._filter(x, self._response(x, 0))

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        check_tensor(y, "y", ndim=4)
        return self._filter(y, self._response(y, 0).conj())

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        check_tensor(y, "y", ndim=4)
        return self._filter(y, self._response(y, 1))

    def extra_repr(self) -> str:
        return f"kernel={tuple(self.kernel.shape)}, rcond={self.rcond:g}"
