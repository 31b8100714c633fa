r"""The built-in operators' catalogue: name → (factory, example, description), and the examples.

Every operator is registered with an ``example(rng)`` that builds it with random valid parameters
(``rng`` is a :class:`numpy.random.Generator`) and returns ``(operator, in_shape)``; the property
tests in ``tests/operators`` run on these.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from invkit.operator import Composed, Operator, compose

from .basic import Denoise, Matrix
from .blur import BlurFFT, DeblurGauss, DeblurGaussDDRM
from .color import DDRM_GRAY_WEIGHTS, Colorization
from .inpaint import Inpainting, box_mask, random_pixel_mask
from .sr import SRAvgPool, SRBicubic

__all__ = ["BUILTIN", "colorization_sr", "register_all"]

Example = tuple[Operator, tuple[int, ...]]


def colorization_sr(scale: int = 2, weights: Sequence[float] | str = DDRM_GRAY_WEIGHTS) -> Composed:
    r"""Colorization then average pooling: ``A = P ∘ G``, RGB ``(H, W)`` → gray ``(H/r, W/r)``.

    The product pseudo-inverse ``G⁺ P⁺`` is exact here: both factors have orthogonal rows with
    ``G Gᵀ = ‖a‖² I`` and ``P Pᵀ = I/r²``, so ``(P G)⁺ = Gᵀ Pᵀ (P G Gᵀ Pᵀ)⁻¹ = G⁺ P⁺``
    (DDNM's ``mask_color_sr`` relies on the same structure).
    """
    return compose(Colorization(weights), SRAvgPool(scale))


def _size(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.integers(low, high + 1))


def _channels(rng: np.random.Generator) -> int:
    return int(rng.choice([1, 2, 3]))


def _sr_avgpool_example(rng: np.random.Generator) -> Example:
    f = _size(rng, 1, 3)
    return SRAvgPool(f), (_channels(rng), f * _size(rng, 1, 5), f * _size(rng, 1, 5))


def _sr_bicubic_example(rng: np.random.Generator) -> Example:
    f = _size(rng, 2, 4)
    return SRBicubic(f), (_channels(rng), f * _size(rng, 1, 4), f * _size(rng, 1, 4))


def _weights(rng: np.random.Generator) -> tuple[Sequence[float] | str, int]:
    kind = rng.integers(3)
    if kind == 0:
        return DDRM_GRAY_WEIGHTS, 3
    if kind == 1:
        return "exact", 3
    C = _size(rng, 1, 4)
    return tuple(rng.uniform(-1, 1, C) + np.sign(rng.uniform(-1, 1, C)) * 0.1), C


def _colorization_example(rng: np.random.Generator) -> Example:
    weights, C = _weights(rng)
    return Colorization(weights), (C, _size(rng, 1, 9), _size(rng, 1, 9))


def _inpainting_example(rng: np.random.Generator) -> Example:
    H, W = _size(rng, 1, 10), _size(rng, 1, 10)
    mask = rng.random((H, W)) < rng.uniform(0.2, 0.9)
    layout = rng.integers(3)
    mask = mask if layout == 0 else mask[None] if layout == 1 else mask[None, None]
    return Inpainting(mask), (_channels(rng), H, W)


def _deblur_gauss_example(rng: np.random.Generator) -> Example:
    sigma = float(rng.uniform(0.3, 4.0))
    k = None if rng.random() < 0.3 else 2 * _size(rng, 0, 4) + 1
    op = DeblurGauss(kernel_size=k, sigma=sigma, rcond=float(10 ** rng.uniform(-2, -1)))
    return op, (_channels(rng), _size(rng, 1, 14), _size(rng, 1, 14))


def _deblur_gauss_ddrm_example(rng: np.random.Generator) -> Example:
    C = int(rng.choice([1, 3]))
    op = DeblurGaussDDRM(kernel_size=2 * _size(rng, 1, 4) + 1, sigma=float(rng.uniform(0.5, 20.0)), channels=C)
    return op, (C, _size(rng, 2, 12), _size(rng, 2, 12))


def _blur_fft_example(rng: np.random.Generator) -> Example:
    kh, kw = _size(rng, 1, 5), _size(rng, 1, 5)
    kernel = rng.random((kh, kw)) - (0.2 if rng.random() < 0.3 else 0.0)
    op = BlurFFT(kernel, rcond=float(10 ** rng.uniform(-3, -1)))
    return op, (_channels(rng), _size(rng, kh, 12), _size(rng, kw, 12))


def _denoise_example(rng: np.random.Generator) -> Example:
    shape = (_size(rng, 1, 12),) if rng.random() < 0.5 else (_channels(rng), _size(rng, 1, 6), _size(rng, 1, 6))
    return Denoise(), shape


def _matrix_example(rng: np.random.Generator) -> Example:
    m, n = _size(rng, 1, 8), _size(rng, 1, 10)
    r = _size(rng, 1, min(m, n))
    M = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    in_shape = (2, n // 2) if n % 2 == 0 and rng.random() < 0.5 else (n,)
    return Matrix(M, in_shape=in_shape), in_shape


def _colorization_sr_example(rng: np.random.Generator) -> Example:
    f = _size(rng, 1, 3)
    weights, C = _weights(rng)
    return colorization_sr(f, weights), (C, f * _size(rng, 1, 4), f * _size(rng, 1, 4))


#: name -> (factory, example, one-line description)
BUILTIN = {
    "sr_avgpool": (SRAvgPool, _sr_avgpool_example,
                   "average pooling by `scale`; A⁺ = nearest replication (DDRM sr, DDNM, SSD+)"),
    "sr_bicubic": (SRBicubic, _sr_bicubic_example,
                   "MATLAB antialiased bicubic downsampling by `scale` (DDRM/DDNM/SSD/DPS); Kronecker A⁺"),
    "colorization": (Colorization, _colorization_example,
                     "gray = (0.3333, 0.3334, 0.3333)·RGB per pixel (weights='exact': 1/3); A⁺ = a·gray/‖a‖²"),
    "inpainting": (Inpainting, _inpainting_example,
                   "multiply by a fixed binary `mask` (1 = keep), shared or per sample; A = A⁺"),
    "deblur_gauss": (DeblurGauss, _deblur_gauss_example,
                     "separable Gaussian blur (`kernel_size`, `sigma`), zero boundary, 1-D SVD cut at `rcond`"),
    "deblur_gauss_ddrm": (DeblurGaussDDRM, _deblur_gauss_ddrm_example,
                          "the scrambled 'deblur' operator of DDRM/DDNM/SSD (not a blur), for their numbers"),
    "blur_fft": (BlurFFT, _blur_fft_example,
                 "circular convolution with any centred 2-D `kernel` by FFT; A⁺ on |K̂| ≥ rcond·max"),
    "denoise": (Denoise, _denoise_example, "identity on any (B, ...) tensor (the noise is separate)"),
    "matrix": (Matrix, _matrix_example, "dense (m × n) matrix `M` on flattened inputs, SVD pseudo-inverse"),
    "colorization_sr": (colorization_sr, _colorization_sr_example,
                        "colorization then average pooling by `scale` (a composition, exact product A⁺)"),
}


def register_all(register):  # type: ignore[no-untyped-def]
    """Register every built-in operator (called by the plugin's ``invkit_register_operators``)."""
    for name, (factory, example, description) in BUILTIN.items():
        register(name, factory, description=description, example=example)
