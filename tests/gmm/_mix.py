"""Small mixtures of every covariance kind, and an independent log-density (scipy)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import multivariate_normal

from invkit_gmm import GaussianMixture

D = torch.float64
KINDS = ["identity", "diagonal", "full", "shared"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _spd(d: int, g: torch.Generator) -> torch.Tensor:
    B = torch.randn(d, d, generator=g, dtype=D)
    return B @ B.T / d + 0.3 * torch.eye(d, dtype=D)


def mixtures(d: int = 3, K: int = 3, seed: int = 0) -> dict[str, GaussianMixture]:
    """One mixture per covariance kind, with overlapping components so responsibilities matter."""
    g = gen(seed)
    w = torch.rand(K, generator=g, dtype=D) + 0.2
    mu = 1.5 * torch.randn(K, d, generator=g, dtype=D)
    return {
        "identity": GaussianMixture(w, mu),
        "diagonal": GaussianMixture(w, mu, torch.rand(K, d, generator=g, dtype=D) + 0.2),
        "full": GaussianMixture(w, mu, torch.stack([_spd(d, g) for _ in range(K)])),
        "shared": GaussianMixture(w, mu, _spd(d, g)[None]),
    }


def scipy_log_prob(m: GaussianMixture, x: np.ndarray, ab: float) -> np.ndarray:
    """log p_t(x) from scipy's multivariate normals with the dense diffused covariances."""
    S = m.covariances().numpy()
    comps = [
        np.log(w) + multivariate_normal(np.sqrt(ab) * mu, ab * Sk + (1 - ab) * np.eye(m.d)).logpdf(x)
        for w, mu, Sk in zip(m.weights.numpy(), m.means.numpy(), S)
    ]
    return np.logaddexp.reduce(np.stack(comps), axis=0)


def grid2(lo: float, hi: float, n: int) -> np.ndarray:
    """The points of an n×n grid over [lo, hi]², shape (n², 2)."""
    u = np.linspace(lo, hi, n)
    X, Y = np.meshgrid(u, u, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], 1)
