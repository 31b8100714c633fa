"""Sliced Wasserstein against scipy, closed forms and its own symmetries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from invkit.errors import InvalidInputError
from invkit_gmm import GaussianMixture, ci95, noise_floor, random_directions, sliced_wasserstein, wasserstein_1d

D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_identical_sets_give_zero():
    X = torch.randn(300, 5, generator=_gen(0), dtype=D)
    assert sliced_wasserstein(X, X, p=1) == 0.0
    assert sliced_wasserstein(X, X[torch.randperm(300, generator=_gen(1))], p=2) == 0.0


@pytest.mark.parametrize("n,m", [(200, 200), (200, 130), (7, 3)])
def test_each_slice_matches_scipy(n, m):
    g = _gen(2)
    u = torch.randn(n, 4, generator=g, dtype=D)
    v = 0.5 + 2 * torch.randn(m, 4, generator=g, dtype=D)
    got = wasserstein_1d(u, v, p=1)
    want = [wasserstein_distance(u[:, i].numpy(), v[:, i].numpy()) for i in range(4)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_sw1_is_the_mean_of_scipy_w1_over_the_same_slices():
    g = _gen(3)
    X = torch.randn(150, 6, generator=g, dtype=D)
    Y = torch.randn(90, 6, generator=g, dtype=D) + 1
    theta = random_directions(6, 50, generator=_gen(4))
    want = np.mean([wasserstein_distance(X @ th, Y @ th) for th in theta.T])
    assert sliced_wasserstein(X, Y, directions=theta, p=1) == pytest.approx(want, rel=1e-12)


def test_unequal_sizes_w2_equals_replicated_equal_sizes():
    """With m dividing n, replicating Y n/m times gives the same empirical law, so the same W_p."""
    g = _gen(5)
    u = torch.randn(12, 3, generator=g, dtype=D)
    v = torch.randn(4, 3, generator=g, dtype=D)
    torch.testing.assert_close(wasserstein_1d(u, v, p=2), wasserstein_1d(u, v.repeat(3, 1), p=2))


def test_shifted_point_clouds_match_the_analytic_value():
    """Y = X + m: every slice's W_p is |⟨θ, m⟩|, so SW1 = mean_l |⟨θ_l, m⟩| and SW2 = √mean ⟨θ_l, m⟩²;
    over uniform directions in R^d, E⟨θ, m⟩² = |m|²/d."""
    d = 4
    X = torch.randn(200, d, generator=_gen(6), dtype=D)
    shift = torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=D)
    theta = random_directions(d, 4000, generator=_gen(7))
    proj = (shift @ theta).abs()
    assert sliced_wasserstein(X, X + shift, p=1, directions=theta) == pytest.approx(float(proj.mean()), rel=1e-10)
    sw2 = sliced_wasserstein(X, X + shift, p=2, directions=theta)
    assert sw2 == pytest.approx(float(proj.pow(2).mean().sqrt()), rel=1e-10)
    assert sw2 == pytest.approx(float(shift.norm()) / math.sqrt(d), rel=0.04)


def test_shifted_gaussians_match_the_analytic_value():
    """N(0, I) vs N(m, I): each projection is a 1-D shift, W1 = |⟨θ, m⟩|; samples add a small bias."""
    d, n = 3, 4000
    shift = torch.tensor([2.0, 0.0, -2.0], dtype=D)
    theta = random_directions(d, 500, generator=_gen(8))
    X = torch.randn(n, d, generator=_gen(9), dtype=D)
    Y = torch.randn(n, d, generator=_gen(10), dtype=D) + shift
    exact = float((shift @ theta).abs().mean())
    assert sliced_wasserstein(X, Y, p=1, directions=theta) == pytest.approx(exact, abs=0.06)


def test_symmetry_default_slices_and_seeding():
    g = _gen(11)
    X = torch.randn(100, 3, generator=g, dtype=D)
    Y = torch.randn(60, 3, generator=g, dtype=D) * 2
    for p in (1, 2):
        assert sliced_wasserstein(X, Y, p=p) == pytest.approx(sliced_wasserstein(Y, X, p=p), rel=1e-13)
    # unseeded calls use the same fixed slices; another generator gives other slices
    assert sliced_wasserstein(X, Y) == sliced_wasserstein(X, Y)
    assert sliced_wasserstein(X, Y) != sliced_wasserstein(X, Y, generator=_gen(99))
    theta = random_directions(3, 10)
    torch.testing.assert_close(theta.norm(dim=0), torch.ones(10, dtype=D))


def test_chunked_slices_equal_one_pass():
    import invkit_gmm.sliced as sliced

    X = torch.randn(50, 3, generator=_gen(12), dtype=D)
    Y = torch.randn(40, 3, generator=_gen(13), dtype=D)
    whole = sliced_wasserstein(X, Y, n_slices=100)
    old = sliced._CHUNK
    sliced._CHUNK = 270  # 3 slices per chunk, the last one partial
    try:
        assert sliced_wasserstein(X, Y, n_slices=100) == pytest.approx(whole, rel=1e-13)
    finally:
        sliced._CHUNK = old


def test_noise_floor_is_the_sw_of_two_exact_sample_sets():
    mix = GaussianMixture([1.0, 1.0], [[-3.0, 0.0], [3.0, 0.0]])
    g1, g2 = _gen(14), _gen(14)
    floor = noise_floor(mix, 400, n_slices=200, generator=g1)
    X, Y = mix.sample(400, generator=g2), mix.sample(400, generator=g2)
    assert floor == sliced_wasserstein(X, Y, n_slices=200)
    # it shrinks with the sample size (roughly as 1/√n)
    big = noise_floor(mix, 6400, n_slices=200, generator=_gen(15))
    assert big < floor / 2


def test_ci95():
    mean, half = ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert half == pytest.approx(1.96 * np.std([1, 2, 3, 4], ddof=1) / 2)


def test_bad_inputs():
    X = torch.zeros(5, 2, dtype=D)
    with pytest.raises(InvalidInputError, match="same dimension"):
        sliced_wasserstein(X, torch.zeros(5, 3, dtype=D))
    with pytest.raises(InvalidInputError, match="NaN"):
        sliced_wasserstein(X, torch.full((5, 2), float("nan"), dtype=D))
    with pytest.raises(InvalidInputError, match="p must"):
        sliced_wasserstein(X, X, p=0.5)
    with pytest.raises(InvalidInputError, match="n_slices"):
        sliced_wasserstein(X, X, n_slices=0)
