r"""The GMM plugin's backbones: ``gmm-grid`` (MCGdiff's 25-mode grid prior) and ``gmm`` (any mixture)."""

from __future__ import annotations

import torch

from invkit.errors import ConfigError
from invkit.schedule import NoiseSchedule

from .mixture import GaussianMixture
from .problems import LinearProblem, grid_means, grid_prior, random_problem
from .sliced import ci95, noise_floor, random_directions, sliced_wasserstein, wasserstein_1d

__all__ = ["gmm", "gmm_grid", "register_all"]


def _schedule(schedule: str | NoiseSchedule, T: int) -> NoiseSchedule:
    if isinstance(schedule, NoiseSchedule):
        return schedule
    if schedule == "linear":
        return NoiseSchedule.linear(T)
    if schedule == "cosine":
        return NoiseSchedule.cosine(T)
    raise ConfigError(f"schedule must be 'linear', 'cosine' or a NoiseSchedule, got {schedule!r}")


def gmm_grid(
    d: int = 8,
    seed: int = 0,
    *,
    equal_weights: bool = False,
    schedule: str | NoiseSchedule = "linear",
    T: int = 1000,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> GaussianMixture:
    """MCGdiff's 25-component grid prior (identity covariances, spacing 8) in dimension d."""
    g = torch.Generator("cpu").manual_seed(int(seed))
    return grid_prior(d, equal_weights=equal_weights, generator=g, schedule=_schedule(schedule, T), dtype=dtype, device=device)


def gmm(
    weights: object,
    means: object,
    covs: object = None,
    *,
    schedule: str | NoiseSchedule = "linear",
    T: int = 1000,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> GaussianMixture:
    """A Gaussian mixture with exact eps: weights (K,), means (K, d), covs None/(K, d)/(K, d, d)."""
    return GaussianMixture(weights, means, covs, schedule=_schedule(schedule, T), dtype=dtype, device=device)


def register_all(register):  # type: ignore[no-untyped-def]
    """Register the plugin's backbones (called by its ``invkit_register_backbones``)."""
    register("gmm-grid", gmm_grid, params=0)
    register("gmm", gmm, params=0)
