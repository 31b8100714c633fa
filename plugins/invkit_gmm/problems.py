r"""The MCGdiff Gaussian-mixture benchmark: the 25-mode grid prior and random linear problems.

Cardoso, Janati El Idrissi, Le Corff, Moulines, "Monte Carlo guided diffusion for Bayesian linear
inverse problems", ICLR 2024 (arXiv 2308.07983), §5.1; the construction follows the authors'
``gmm.py`` as described in spec ``gmm.md`` §1.1–1.2.
"""

from __future__ import annotations

import attrs
import torch

from invkit.errors import ConfigError, InvalidInputError
from invkit.rng import resolve
from invkit.schedule import NoiseSchedule

from .mixture import GaussianMixture

__all__ = ["grid_prior", "grid_means", "LinearProblem", "random_problem"]


def grid_means(d: int, spacing: float = 8.0, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The 25 means ``μ_ij = (−8i, −8j, −8i, −8j, …) ∈ R^d`` for ``i, j ∈ {−2, …, 2}`` (i outer).

    The 2-D 5×5 grid is tiled ``d/2`` times, so ``d`` must be even.
    """
    if not isinstance(d, int) or d < 2 or d % 2:
        raise ConfigError(f"the grid prior needs an even dimension d >= 2, got {d!r}")
    r = torch.arange(-2, 3, dtype=dtype)
    i, j = torch.meshgrid(r, r, indexing="ij")
    pair = torch.stack([-spacing * i.reshape(-1), -spacing * j.reshape(-1)], 1)  # (25, 2)
    return pair.repeat(1, d // 2)


def grid_prior(
    d: int = 8,
    *,
    equal_weights: bool = False,
    generator: torch.Generator | None = None,
    schedule: NoiseSchedule | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> GaussianMixture:
    r"""MCGdiff's prior: 25 identity-covariance components on the tiled grid of :func:`grid_means`.

    Weights ``w = z²/Σz²`` with ``z ~ N(0, I_25)`` drawn from ``generator`` (MCGdiff), or ``1/25``
    each with ``equal_weights=True`` (TMPD's copy of the benchmark).
    """
    if equal_weights:
        w = torch.ones(25, dtype=dtype)
    else:
        w = torch.randn(25, generator=resolve(generator, "cpu"), dtype=dtype) ** 2
    return GaussianMixture(w, grid_means(d, dtype=dtype), None, schedule=schedule, dtype=dtype, device=device)


@attrs.frozen(eq=False)
class LinearProblem:
    """One inverse problem ``y = A x + σ_y n``: the matrix, the measurement, the noise level and the
    signal ``x`` it was made from."""

    A: torch.Tensor
    y: torch.Tensor
    sigma_y: float
    x: torch.Tensor

    def posterior(self, prior: GaussianMixture) -> GaussianMixture:
        """The exact posterior of ``prior`` given this measurement."""
        return prior.posterior(self.A, self.y, self.sigma_y)


def random_problem(
    prior: GaussianMixture,
    d_y: int,
    *,
    sigma_y: float | None = None,
    generator: torch.Generator | None = None,
) -> LinearProblem:
    r"""MCGdiff's ``generate_measurement_equations``.

    ``A₀ ~ N(0, 1)^{d_y×d}`` gives a random orientation ``A₀ = U diag(s₀) Vᵀ``; its singular values
    are replaced by ``sort(U(0, 1)^{d_y})`` (descending): ``A = U diag(s) V_{:d_y}ᵀ``, rank ``d_y``.
    Then ``x ~ prior`` and ``y = A x + σ_y n`` with ``σ_y = u·max(s)``, ``u ~ U(0, 1)`` unless
    ``sigma_y`` fixes it (TMPD's protocol).
    """
    d = prior.d
    if not isinstance(d_y, int) or not 1 <= d_y <= d:
        raise ConfigError(f"d_y must be an integer in [1, {d}], got {d_y!r}")
    if sigma_y is not None and not sigma_y >= 0:
        raise InvalidInputError(f"sigma_y must be >= 0, got {sigma_y!r}")
    device = prior.means.device
    g = resolve(generator, device)
    dt = prior.dtype
    A0 = torch.randn((d_y, d), generator=g, dtype=dt, device=device)
    U, _, Vh = torch.linalg.svd(A0, full_matrices=False)
    s = torch.sort(torch.rand(d_y, generator=g, dtype=dt, device=device), descending=True).values
    A = (U * s) @ Vh
    x = prior.sample(1, generator=g)[0]
    if sigma_y is None:
        sigma_y = float(torch.rand((), generator=g, dtype=dt, device=device)) * float(s[0])
    y = A @ x + sigma_y * torch.randn(d_y, generator=g, dtype=dt, device=device)
    return LinearProblem(A, y, float(sigma_y), x)
