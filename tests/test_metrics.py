"""invkit.metrics: PSNR/SSIM as the paper computed them, consistency, the Fréchet distance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from invkit.errors import InvalidInputError
from invkit.metrics import consistency, feature_stats, fid_from_features, frechet_distance, psnr, ssim, to_uint8


def from_u8(u: np.ndarray) -> torch.Tensor:
    # the centre of each uint8 bin, so that truncation gives back exactly u
    return torch.from_numpy((u.astype(np.float64) + 0.5) / 127.5 - 1)


def test_to_uint8_truncates() -> None:
    # 254.9 and 0.99 in pixel units truncate down; out-of-range values clip
    x = torch.tensor([254.9, 0.99, 300.0, -5.0], dtype=torch.float64) / 127.5 - 1
    assert to_uint8(x).tolist() == [254, 0, 255, 0]


def test_psnr_of_known_mse() -> None:
    u = np.random.default_rng(0).integers(10, 240, size=(2, 3, 8, 8)).astype(np.uint8)
    v = u.copy()
    v[0, 0, 0, :4] += 4  # squared error 4·16 over 192 pixels
    v[1] -= 2  # squared error 4 everywhere
    p = psnr(from_u8(v), from_u8(u))
    expected = [10 * math.log10(255**2 / (64 / 192)), 10 * math.log10(255**2 / 4)]
    torch.testing.assert_close(p, torch.tensor(expected, dtype=torch.float64))
    assert torch.isinf(psnr(from_u8(u), from_u8(u))).all()


def test_psnr_quantization_matters() -> None:
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    y = x + 0.2 / 127.5  # 127.5 → 127.7 grey levels: the same uint8 bin
    assert torch.isinf(psnr(x, y))
    assert torch.isfinite(psnr(x, y, quantize=False))


def reference_ssim(a: np.ndarray, b: np.ndarray, *, window: str, sample_cov: bool) -> float:
    """Straight from Wang et al. eq. 13: loop over every full window, weighted statistics."""
    if window == "uniform":
        w = np.full((7, 7), 1 / 49)
    else:
        r = np.arange(11) - 5.0
        g = np.exp(-(r**2) / 4.5)
        w = np.outer(g, g) / np.outer(g, g).sum()
    k = w.shape[0]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    norm = k * k / (k * k - 1) if sample_cov else 1.0
    per_channel = []
    for ch in range(a.shape[0]):
        vals = []
        for i in range(a.shape[1] - k + 1):
            for j in range(a.shape[2] - k + 1):
                pa, pb = a[ch, i : i + k, j : j + k], b[ch, i : i + k, j : j + k]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va = norm * (w * (pa - ma) ** 2).sum()
                vb = norm * (w * (pb - mb) ** 2).sum()
                cab = norm * (w * (pa - ma) * (pb - mb)).sum()
                vals.append((2 * ma * mb + c1) * (2 * cab + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
        per_channel.append(np.mean(vals))
    return float(np.mean(per_channel))


@pytest.mark.parametrize("window,sample_cov", [("uniform", True), ("gaussian", False), ("gaussian", True)])
def test_ssim_matches_a_direct_implementation(window: str, sample_cov: bool) -> None:
    rng = np.random.default_rng(1)
    u = rng.integers(0, 256, size=(2, 2, 14, 17)).astype(np.uint8)
    noise = rng.integers(-40, 41, size=u.shape)
    v = np.clip(u.astype(int) + noise, 0, 255).astype(np.uint8)
    got = ssim(from_u8(u), from_u8(v), window=window, sample_covariance=sample_cov)
    expected = [reference_ssim(u[i].astype(float), v[i].astype(float), window=window, sample_cov=sample_cov) for i in range(2)]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    assert got.max() < 0.99


def test_ssim_identical_is_one_and_float32_works() -> None:
    x = torch.rand(3, 3, 12, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(ssim(x, x), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(ssim(x, x, window="gaussian"), torch.ones(3, dtype=torch.float64))


def test_ssim_rejects_small_and_mismatched() -> None:
    with pytest.raises(InvalidInputError, match="window"):
        ssim(torch.zeros(1, 1, 6, 6), torch.zeros(1, 1, 6, 6))
    with pytest.raises(InvalidInputError, match="same shape"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))


def test_consistency_is_residual_norm() -> None:
    class Half(torch.nn.Module):
        def A(self, x: torch.Tensor) -> torch.Tensor:
            return x[..., ::2]

    x = torch.arange(12, dtype=torch.float64).reshape(2, 6)
    y = x[..., ::2] + torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(consistency(Half(), x, y), torch.tensor([5.0, 1.0], dtype=torch.float64))


def test_frechet_identical_is_zero() -> None:
    f = np.random.default_rng(2).normal(size=(200, 6))
    assert abs(fid_from_features(f, f)) < 1e-9
    # rank-deficient covariances (N < D) stay finite and ≈ 0 (√ of round-off eigenvalues ~1e-8 each)
    g = np.random.default_rng(3).normal(size=(5, 20))
    assert abs(fid_from_features(g, torch.from_numpy(g))) < 1e-5


def test_frechet_commuting_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_general_against_scipy_sqrtm() -> None:
    rng = np.random.default_rng(4)
    L1, L2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = L1 @ L1.T + 0.1 * np.eye(5), L2 @ L2.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # one-dimensional: (μ1 − μ2)² + (σ1 − σ2)²
    assert frechet_distance([1.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(4.0 + 1.0)


def test_feature_stats_unbiased() -> None:
    f = np.random.default_rng(5).normal(size=(50, 3))
    mu, cov = feature_stats(torch.from_numpy(f))
    np.testing.assert_allclose(cov, np.cov(f.T), rtol=1e-12)
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-12)
    with pytest.raises(InvalidInputError):
        feature_stats(np.zeros((1, 3)))
