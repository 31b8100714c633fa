r"""Exact checks against independent constructions of the reference repos' operators.

Each reference below is rebuilt in the test from the description in
``spec/backbones_and_operators.md`` §4 (loops and dense matrices, as DDRM's
``svd_replacement.py`` does), not from the operator code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import invkit


def ddrm_bicubic_matrix(n: int, f: int) -> torch.Tensor:
    """DDRM's ``SRConv`` 1-D matrix: 4f Keys taps (a = −0.5) at (i − 2f + 0.5)/f, normalised;
    row m covers j ∈ [f·m + f//2 − 2f, f·m + f//2 + 2f), reflected at the borders."""
    a = -0.5

    def keys(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    k = [keys((i - 2 * f + 0.5) / f) for i in range(4 * f)]
    k = [v / sum(k) for v in k]
    H = torch.zeros(n // f, n, dtype=torch.float64)
    for m in range(n // f):
        start = f * m + f // 2
        for j in range(start - 2 * f, start + 2 * f):
            if j < 0:
                je = -j - 1
            elif j >= n:
                je = 2 * n - 1 - j
            else:
                je = j
            H[m, je] += k[j - start + 2 * f]
    return H


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("f", [4, 8])
def test_sr_bicubic_equals_ddrm_dps_operator_at_256(f):
    op = invkit.operator("sr_bicubic", scale=f)
    H = ddrm_bicubic_matrix(256, f)
    x = randn(1, 3, 256, 256)
    assert (op.A(x) - H @ x @ H.T).abs().max() < 1e-5
    y = randn(1, 3, 256 // f, 256 // f, seed=1)
    Hp = torch.linalg.pinv(H)
    assert (op.pinv(y) - Hp @ y @ Hp.T).abs().max() < 1e-5
    # float32, as the recipes run it
    assert (op.A(x.float()).double() - H @ x @ H.T).abs().max() < 1e-5


def test_bicubic_taps_are_the_published_ones():
    """The ×4 kernel's first taps as listed in the spec (DDRM ``SRConv``)."""
    H = invkit.operator("sr_bicubic", scale=4).factor(64).M
    row = H[8, 32 - 6 : 32 + 10]  # an interior row: output 8 is centred between inputs 33 and 34
    listed = torch.tensor([-0.0017, -0.0110, -0.0183, -0.0120, 0.0227, 0.0974, 0.1819, 0.2410], dtype=torch.float64)
    assert torch.allclose(row[:8], listed, atol=1e-4)
    assert torch.allclose(row[8:], listed.flip(0), atol=1e-4)


@pytest.mark.parametrize("f", [2, 3, 4, 8])
def test_sr_bicubic_interior_matches_torch_antialiased_bicubic(f):
    n = 16 * f
    op = invkit.operator("sr_bicubic", scale=f)
    x = randn(2, 3, n, n + 2 * f)
    ours = op.A(x)
    torch_ = F.interpolate(x, scale_factor=1 / f, mode="bicubic", antialias=True)
    m = 2  # outputs whose taps reach past the border differ: torch renormalises, we reflect
    assert (ours - torch_)[..., m:-m, m:-m].abs().max() < 1e-10
    assert (ours - torch_).abs().max() > 1e-3  # ... and they really do differ there


def test_sr_avgpool_is_avg_pool_with_nearest_pinv():
    op = invkit.operator("sr_avgpool", scale=4)
    x = randn(2, 3, 16, 24)
    assert torch.equal(op.A(x), F.avg_pool2d(x, 4))
    y = randn(2, 3, 4, 6, seed=1)
    assert torch.equal(op.pinv(y), F.interpolate(y, scale_factor=4, mode="nearest"))
    assert torch.allclose(op.AT(y), F.interpolate(y, scale_factor=4, mode="nearest") / 16)


def test_colorization_pinv_coefficients():
    op = invkit.operator("colorization")
    gray = randn(2, 1, 5, 7)
    out = op.pinv(gray)
    coef = out / gray
    expected = torch.tensor([0.9999, 1.0002, 0.9999], dtype=torch.float64).reshape(1, 3, 1, 1)
    assert (coef - expected).abs().max() < 1e-4
    x = randn(2, 3, 5, 7, seed=1)
    assert torch.allclose(op.A(x), 0.3333 * x[:, :1] + 0.3334 * x[:, 1:2] + 0.3333 * x[:, 2:])
    exact = invkit.operator("colorization", weights="exact")
    assert torch.allclose(exact.pinv(gray), gray.expand(2, 3, 5, 7))
    assert math.isclose(float(op.svd().s.max()), 0.57735, abs_tol=1e-5)


# -- DDRM's "Deblurring" class, built densely ---------------------------------------------------


def ddrm_deblur_reference(n: int, channels: int, k: int = 9, sigma: float = 15.0):
    """DDRM's ``Deblurring`` operator as flattened dense maps (H, W = n; pixel-major V-domain).

    Returns ``(A, A_pinv)`` acting on ``(B, C, n, n)`` tensors, with singular values
    ``repeat(1, C)``-tiled as in DDRM's ``singulars()``.
    """
    t = torch.arange(k, dtype=torch.float64) - k // 2
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    w = w / w.sum()
    Hs = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(i - k // 2, i + k // 2):  # the last tap is dropped
            if 0 <= j < n:
                Hs[i, j] = w[j - i + k // 2]
    U1, s1, V1h = torch.linalg.svd(Hs)
    V1 = V1h.T
    s1 = torch.where(s1 < 3e-2, torch.zeros_like(s1), s1)
    N = n * n
    s2 = (s1[:, None] * s1[None, :]).reshape(N)
    s_sorted, perm = torch.sort(s2, descending=True, stable=True)
    KV, KU = torch.kron(V1, V1), torch.kron(U1, U1)  # act on row-major vec(X)
    singulars = s_sorted.repeat(1, channels).reshape(-1)  # entry p·C + c gets s_sorted[(pC + c) mod N]

    def Vt(x):  # (B, C, n, n) -> (B, N·C), pixel-major channel-minor
        v = (x.reshape(x.shape[0], channels, N) @ KV)[:, :, perm]
        return v.permute(0, 2, 1).reshape(x.shape[0], -1)

    def Vmul(v):
        t_ = torch.zeros(v.shape[0], N, channels, dtype=v.dtype)
        t_[:, perm, :] = v.reshape(v.shape[0], N, channels)
        return (t_.permute(0, 2, 1) @ KV.T).reshape(v.shape[0], channels, n, n)

    def Ut(y):
        u = (y.reshape(y.shape[0], channels, N) @ KU)[:, :, perm]
        return u.permute(0, 2, 1).reshape(y.shape[0], -1)

    def Umul(u):
        t_ = torch.zeros(u.shape[0], N, channels, dtype=u.dtype)
        t_[:, perm, :] = u.reshape(u.shape[0], N, channels)
        return (t_.permute(0, 2, 1) @ KU.T).reshape(u.shape[0], channels, n, n)

    inv = torch.where(singulars > 0, 1 / torch.where(singulars > 0, singulars, 1.0), 0.0)

    def A(x):
        return Umul(singulars * Vt(x))

    def A_pinv(y):
        return Vmul(inv * Ut(y))

    return A, A_pinv


def test_deblur_gauss_ddrm_reproduces_ddrm_operator():
    n, C = 16, 3
    A_ref, P_ref = ddrm_deblur_reference(n, C)
    op = invkit.operator("deblur_gauss_ddrm")
    x = randn(2, C, n, n)
    assert (op.A(x) - A_ref(x)).abs().max() < 1e-10
    y = randn(2, C, n, n, seed=1)
    assert (op.pinv(y) - P_ref(y)).abs().max() < 1e-8
    # the dense matrix of the operator, and its Moore–Penrose inverse computed independently
    eye = torch.eye(C * n * n, dtype=torch.float64).reshape(-1, C, n, n)
    dense = op.A(eye).reshape(C * n * n, -1).T
    assert torch.allclose(op.pinv(eye).reshape(C * n * n, -1).T, torch.linalg.pinv(dense, rtol=1e-9), atol=1e-8)


def test_deblur_gauss_ddrm_is_not_a_blur_but_its_one_channel_form_is():
    """With C = 3 a delta spreads over the whole image (the repeat(1, 3) scramble); with C = 1
    the scramble is the identity and the operator is the truncated separable blur."""
    n = 16
    delta = torch.zeros(1, 3, n, n, dtype=torch.float64)
    delta[0, 1, 8, 8] = 1
    response = invkit.operator("deblur_gauss_ddrm").A(delta)
    far = response.clone()
    far[..., 4:13, 4:13] = 0
    assert far.abs().max() > 1e-2
    A1, _ = ddrm_deblur_reference(n, 1)
    one = invkit.operator("deblur_gauss_ddrm", channels=1).A(delta[:, 1:2])
    assert torch.allclose(one, A1(delta[:, 1:2]), atol=1e-12)
    # that 1-channel operator is local: at most the 8×8 window of the 9 taps minus the dropped one
    assert one[..., :4, :].abs().max() < 1e-2 and one[..., 13:, :].abs().max() < 1e-2


@pytest.mark.parametrize(("k", "sigma", "zeroed", "dc"), [(9, 15.0, 29, 0.891), (5, 10.0, 15, 0.80)])
def test_ddrm_deblur_truncation_and_gain_as_published(k, sigma, zeroed, dc):
    """SSD's 9/σ=15 zeroes 29 of 256 1-D singular values with DC gain 0.891; DDRM's 5/σ=10, 15 and 0.80."""
    op = invkit.operator("deblur_gauss_ddrm", kernel_size=k, sigma=sigma)
    y = torch.zeros(1, 3, 256, 256)
    s = op.svd_for(y).s
    # 3 and N = 256² are coprime, so each channel's scrambled values are a permutation of the
    # sorted 2-D values, (256 − zeroed)² of which are non-zero
    assert int((s == 0).sum()) == 3 * (256 * 256 - (256 - zeroed) ** 2)
    x = torch.ones(1, 1, 256, 256, dtype=torch.float64)
    one = invkit.operator("deblur_gauss_ddrm", kernel_size=k, sigma=sigma, channels=1)
    assert abs(math.sqrt(float(one.A(x)[0, 0, 128, 128])) - dc) < 6e-3


def test_deblur_gauss_true_blur_in_the_interior_for_small_sigma():
    """With a mild blur nothing is truncated, and A is the plain all-taps Gaussian blur."""
    op = invkit.operator("deblur_gauss", kernel_size=5, sigma=0.8)
    x = randn(1, 2, 20, 20)
    t = torch.arange(5, dtype=torch.float64) - 2
    w = torch.exp(-0.5 * (t / 0.8) ** 2)
    w = w / w.sum()
    kern = (w[:, None] * w[None, :]).expand(2, 1, 5, 5)
    ref = F.conv2d(x, kern, padding=2, groups=2)  # zero padding, as the operator
    assert (op.A(x) - ref).abs().max() < 1e-12


def test_blur_fft_is_circular_convolution():
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 2.0], [0.0, 1.0, 0.0]], dtype=torch.float64) / 9
    op = invkit.operator("blur_fft", kernel=kernel, rcond=1e-9)
    x = randn(2, 1, 9, 8)
    padded = torch.cat([x[..., -1:, :], x, x[..., :1, :]], dim=-2)
    padded = torch.cat([padded[..., -1:], padded, padded[..., :1]], dim=-1)
    ref = F.conv2d(padded, kernel.flip(0, 1)[None, None])  # convolution = correlation with the flipped kernel
    assert (op.A(x) - ref).abs().max() < 1e-12
    assert np.isclose(float(op.A(torch.ones(1, 1, 9, 8, dtype=torch.float64)).mean()), float(kernel.sum()))
