"""The Gaussian-mixture prior: densities against scipy, the diffused marginal, the noiseless
posterior, sampling, the grid prior and the random problems, in float64. (The score, Tweedie and
posterior formulas are checked against independent computations in ``test_engine_exact.py``.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import invkit
from invkit.errors import CapabilityError, ConfigError, InvalidInputError
from invkit.plugins import backbones_registry
from invkit_gmm import GaussianMixture, grid_means, grid_prior, random_problem

from ._mix import D, KINDS, mixtures, scipy_log_prob
from ._mix import gen as _gen


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t", [None, 0, 300, 999])
def test_log_prob_matches_scipy(kind, t):
    m = mixtures()[kind]
    x = 2 * torch.randn(7, m.d, generator=_gen(1), dtype=D)
    ab = 1.0 if t is None else float(m.schedule.abar[t])
    np.testing.assert_allclose(m.log_prob(x, t).numpy(), scipy_log_prob(m, x.numpy(), ab), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_eps_is_scaled_score_and_per_sample_timesteps(kind):
    m = mixtures()[kind]
    x = torch.randn(4, m.d, generator=_gen(3), dtype=D)
    t = torch.tensor([10, 500, 10, 999])
    eps = m(x, t)
    for i, ti in enumerate(t.tolist()):
        ab = m.schedule.abar[ti]
        torch.testing.assert_close(eps[i], -math.sqrt(1 - ab) * m.score(x[i : i + 1], ti)[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m(x, 10), m(x, torch.full((4,), 10)), rtol=0, atol=0)


def test_diffused_is_the_forward_marginal():
    m = mixtures()["full"]
    t = 600
    ab = float(m.schedule.abar[t])
    mt = m.diffused(t)
    torch.testing.assert_close(mt.means, math.sqrt(ab) * m.means)
    torch.testing.assert_close(mt.covariances(), ab * m.covariances() + (1 - ab) * torch.eye(m.d, dtype=D))
    x = torch.randn(5, m.d, generator=_gen(6), dtype=D)
    torch.testing.assert_close(mt.log_prob(x), m.log_prob(x, t))


@pytest.mark.parametrize("kind", KINDS)
def test_noiseless_posterior_is_the_limit_and_satisfies_the_constraint(kind):
    m = mixtures(d=4, K=3, seed=9)[kind]
    g = _gen(10)
    A = torch.randn(2, 4, generator=g, dtype=D)
    y = A @ m.sample(1, generator=g)[0]
    exact = m.posterior(A, y, 0.0)
    near = m.posterior(A, y, 1e-6)
    torch.testing.assert_close(exact.weights, near.weights, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(exact.means, near.means, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(exact.covariances(), near.covariances(), rtol=0, atol=1e-8)
    x = exact.sample(500, generator=g)
    assert float((x @ A.T - y).abs().max()) < 1e-10
    # the null-space directions keep their spread: the posterior is not a point
    assert float(x.std(0).min()) > 0.1
    with pytest.raises(CapabilityError, match="no density"):
        exact.log_prob(x[:2])
    assert torch.isfinite(exact(x[:3], 10)).all()


def test_noiseless_posterior_rejects_inconsistent_y_and_handles_rank_deficiency():
    m = mixtures(d=3)["identity"]
    A = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=D)  # rank 1
    with pytest.raises(InvalidInputError, match="range of A"):
        m.posterior(A, torch.tensor([1.0, 0.0], dtype=D), 0.0)
    post = m.posterior(A, torch.tensor([1.0, 2.0], dtype=D), 0.0)
    x = post.sample(100, generator=_gen(11))
    torch.testing.assert_close(x[:, 0], torch.ones(100, dtype=D), rtol=0, atol=1e-12)
    # the redundant row carries no information: the same as conditioning on x_0 = 1 alone
    single = m.posterior(A[:1], torch.tensor([1.0], dtype=D), 0.0)
    torch.testing.assert_close(post.weights, single.weights)
    torch.testing.assert_close(post.means, single.means)


def test_posterior_accepts_an_operator():
    m = mixtures(d=3)["full"]
    A = torch.randn(2, 3, generator=_gen(12), dtype=D)
    y = torch.tensor([0.3, -1.0], dtype=D)
    a, b = m.posterior(A, y, 0.2), m.posterior(invkit.operator("matrix", M=A), y.reshape(1, 2), 0.2)
    torch.testing.assert_close(a.weights, b.weights)
    torch.testing.assert_close(a.means, b.means)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_moments(kind):
    """Sample mean and covariance within 5 standard errors of the mixture's (false alarm ≈ 1e-5 per entry)."""
    m = mixtures()[kind]
    n = 40000
    x = m.sample(n, generator=_gen(13))
    w, mu, S = m.weights, m.means, m.covariances()
    mean = w @ mu
    cov = (w[:, None, None] * (S + mu[:, :, None] * mu[:, None, :])).sum(0) - torch.outer(mean, mean)
    se = (cov.diagonal() / n).sqrt()
    assert bool(((x.mean(0) - mean).abs() < 5 * se).all())
    # entry-wise standard error of a sample covariance is at most sqrt((c_ii c_jj + c_ij²)·kurtosis/n); a
    # mixture's fourth moments are bounded here by 3× the Gaussian ones
    se_cov = (3 * (torch.outer(cov.diagonal(), cov.diagonal()) + cov**2) / n).sqrt()
    assert bool(((torch.cov(x.T) - cov).abs() < 5 * se_cov).all())


def test_float32_input_and_any_batch_shape():
    m = grid_prior(8, generator=_gen(14))
    x = m.sample(6, generator=_gen(15))
    e64 = m(x, 200)
    e32 = m(x.float(), 200)
    assert e32.dtype == torch.float32
    torch.testing.assert_close(e32, e64.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m(x.reshape(6, 2, 4), 200), e64.reshape(6, 2, 4))


def test_d800_responsibilities_are_stable():
    """In d = 800 the log-densities are ~10⁵; responsibilities must stay finite and sum to one."""
    m = grid_prior(800, generator=_gen(16))
    x = m.sample(50, generator=_gen(17))
    R = m.responsibilities(x, 0)
    assert torch.isfinite(R).all()
    torch.testing.assert_close(R.sum(1), torch.ones(50, dtype=D))
    eps = m(x, 999)
    assert torch.isfinite(eps).all()


def test_grid_prior_layout():
    mu = grid_means(6)
    assert mu.shape == (25, 6)
    assert {(a, b) for a, b in mu[:, :2].tolist()} == {(-8.0 * i, -8.0 * j) for i in range(-2, 3) for j in range(-2, 3)}
    torch.testing.assert_close(mu[:, 2:4], mu[:, :2])
    torch.testing.assert_close(mu[:, 4:6], mu[:, :2])
    with pytest.raises(ConfigError, match="even"):
        grid_means(7)
    p = grid_prior(4, generator=_gen(0))
    q = grid_prior(4, generator=_gen(0))
    torch.testing.assert_close(p.weights, q.weights)
    torch.testing.assert_close(p.weights.sum(), torch.tensor(1.0, dtype=D))
    assert float(p.weights.std()) > 0
    torch.testing.assert_close(grid_prior(4, equal_weights=True).weights, torch.full((25,), 1 / 25, dtype=D))
    torch.testing.assert_close(p.covariances(), torch.eye(4, dtype=D).expand(25, 4, 4))


def test_random_problem():
    prior = grid_prior(8, generator=_gen(0))
    pb = random_problem(prior, 3, generator=_gen(1))
    s = torch.linalg.svdvals(pb.A)
    assert bool((s > 0).all() and (s < 1).all())
    assert pb.A.shape == (3, 8) and pb.y.shape == (3,) and pb.x.shape == (8,)
    assert 0 <= pb.sigma_y <= float(s[0])
    again = random_problem(prior, 3, generator=_gen(1))
    torch.testing.assert_close(pb.A, again.A, rtol=0, atol=0)
    assert again.sigma_y == pb.sigma_y
    fixed = random_problem(prior, 2, sigma_y=0.0, generator=_gen(2))
    torch.testing.assert_close(fixed.y, fixed.A @ fixed.x)
    post = fixed.posterior(prior)
    assert float((post.sample(10, generator=_gen(3)) @ fixed.A.T - fixed.y).abs().max()) < 1e-10
    with pytest.raises(ConfigError, match="d_y"):
        random_problem(prior, 9)


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(InvalidInputError, match="weights"):
        GaussianMixture([1.0, 2.0], torch.zeros(3, 2))
    with pytest.raises(InvalidInputError, match="positive definite"):
        GaussianMixture([1.0], torch.zeros(1, 2), torch.tensor([[[1.0, 0.0], [0.0, -1.0]]]))
    with pytest.raises(InvalidInputError, match="covs"):
        GaussianMixture([1.0], torch.zeros(1, 2), torch.ones(3))
    m = GaussianMixture([1.0], torch.zeros(1, 2))
    with pytest.raises(InvalidInputError, match=r"\(B, 2\)"):
        m(torch.zeros(3, 5), 10)
    with pytest.raises(InvalidInputError, match="outside"):
        m(torch.zeros(3, 2), 1000)
    with pytest.raises(InvalidInputError, match="sigma_y"):
        m.posterior(torch.ones(1, 2), torch.ones(1), -1.0)


def test_registered_backbones_build():
    m = backbones_registry.build("gmm-grid", d=4, seed=3)
    assert isinstance(m, GaussianMixture) and m.d == 4 and m.K == 25
    torch.testing.assert_close(m.weights, grid_prior(4, generator=_gen(3)).weights)
    g = backbones_registry.build("gmm", weights=[1.0, 3.0], means=[[0.0], [2.0]], covs=[[0.5], [2.0]])
    torch.testing.assert_close(g.weights, torch.tensor([0.25, 0.75], dtype=D))
    assert g.schedule.T == 1000 and g.channels == 1
