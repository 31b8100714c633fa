r"""Sliced Wasserstein distances between point clouds (spec ``gmm.md`` §3.5).

For unit directions ``θ_l`` (``θ ~ N(0, I_d)`` normalised, drawn once from a seeded generator so
every method is compared on the same slices) and the 1-D projections ``u = X θ_l``, ``v = Y θ_l``:

.. math::  SW_p(X, Y) = \Big(\frac1L \sum_l W_p^p(u_l, v_l)\Big)^{1/p},\qquad
           W_p^p(u, v) = \int_0^1 |F_u^{-1}(q) − F_v^{-1}(q)|^p\,dq.

``p = 1`` is the MCGdiff/TMPD metric (the mean over slices of ``scipy.stats.wasserstein_distance``);
``p = 2`` is POT's ``sliced_wasserstein_distance``. The empirical quantile functions are step
functions, so the integral is an exact finite sum over the merged breakpoints ``{i/n} ∪ {j/m}``;
with ``n = m`` it is ``mean |sort(u) − sort(v)|^p``.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from invkit.errors import InvalidInputError
from invkit.rng import resolve

__all__ = ["random_directions", "sliced_wasserstein", "wasserstein_1d", "noise_floor", "ci95"]

_CHUNK = 1 << 22  # projected numbers per chunk of slices: bounds memory at L = 10⁴, n = 10⁴


def random_directions(
    d: int,
    n_slices: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``n_slices`` unit vectors uniform on the sphere of ``R^d``, shape ``(d, n_slices)``.

    With ``generator=None`` the draw is seeded (the default seed of :func:`invkit.rng.resolve`), so
    two calls give the same slices.
    """
    if not isinstance(n_slices, int) or n_slices < 1:
        raise InvalidInputError(f"n_slices must be an integer >= 1, got {n_slices!r}")
    theta = torch.randn((d, n_slices), generator=resolve(generator, device), dtype=dtype, device=device)
    return theta / theta.norm(dim=0, keepdim=True)


def wasserstein_1d(u: torch.Tensor, v: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    r"""``W_p^p`` between the empirical laws of the columns of ``u`` (n, L) and ``v`` (m, L), shape ``(L,)``.

    Exact for unequal sizes: on each interval between consecutive breakpoints of ``{i/n} ∪ {j/m}``
    both quantile functions are constant.
    """
    n, m = u.shape[0], v.shape[0]
    us, vs = torch.sort(u, 0).values, torch.sort(v, 0).values
    if n == m:
        return ((us - vs).abs() ** p).mean(0)
    # breakpoints as integer multiples of 1/(n·m) so that equal levels merge exactly
    levels = torch.unique(torch.cat([torch.arange(1, n + 1) * m, torch.arange(1, m + 1) * n]))
    lo = torch.cat([levels.new_zeros(1), levels[:-1]])
    width = ((levels - lo).to(u.dtype) / (n * m)).to(u.device)
    mid = lo + levels  # 2× the midpoint in units of 1/(n·m): its quantile index is floor(mid/(2m)) for u
    iu = torch.div(mid, 2 * m, rounding_mode="floor").to(u.device)
    iv = torch.div(mid, 2 * n, rounding_mode="floor").to(u.device)
    return (width[:, None] * (us[iu] - vs[iv]).abs() ** p).sum(0)


def _cloud(X: object, name: str) -> torch.Tensor:
    if not isinstance(X, torch.Tensor) or not X.is_floating_point():
        raise InvalidInputError(f"{name} must be a floating-point tensor of shape (n, d)")
    if X.ndim != 2 or X.shape[0] < 1:
        raise InvalidInputError(f"{name} must have shape (n, d) with n >= 1, got {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise InvalidInputError(f"{name} contains NaN or Inf values (a diverged sampler?)")
    return X


def sliced_wasserstein(
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    p: float = 1,
    n_slices: int = 1000,
    generator: torch.Generator | None = None,
    directions: torch.Tensor | None = None,
) -> float:
    r"""``SW_p(X, Y) = (mean_l W_p^p(Xθ_l, Yθ_l))^{1/p}`` between clouds ``X`` (n, d) and ``Y`` (m, d).

    ``p = 1`` gives SW1 = mean_l W1 (MCGdiff, TMPD), ``p = 2`` gives SW2 = √(mean_l W2²) (POT).
    The slices are ``directions`` (``(d, L)`` unit columns) when given, else
    :func:`random_directions` ``(d, n_slices, generator=generator)``, seeded by default.
    Computed in float64.
    """
    X, Y = _cloud(X, "X").double(), _cloud(Y, "Y").double()
    if X.shape[1] != Y.shape[1]:
        raise InvalidInputError(f"X and Y must have the same dimension, got {X.shape[1]} and {Y.shape[1]}")
    if not p >= 1:
        raise InvalidInputError(f"p must be >= 1, got {p!r}")
    if directions is None:
        directions = random_directions(X.shape[1], n_slices, generator=generator, device=X.device)
    elif directions.ndim != 2 or directions.shape[0] != X.shape[1]:
        raise InvalidInputError(f"directions must have shape ({X.shape[1]}, L), got {tuple(directions.shape)}")
    theta = directions.to(dtype=torch.float64, device=X.device)
    L = theta.shape[1]
    step = max(1, _CHUNK // (X.shape[0] + Y.shape[0]))
    total = sum(float(wasserstein_1d(X @ theta[:, a : a + step], Y @ theta[:, a : a + step], p).sum()) for a in range(0, L, step))
    return (total / L) ** (1.0 / p)


class _Sampler(Protocol):
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


def noise_floor(
    dist: _Sampler,
    n: int,
    m: int | None = None,
    *,
    p: float = 1,
    n_slices: int = 1000,
    directions: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """The SW between two independent exact sample sets of ``dist`` of sizes ``n`` and ``m`` (default n).

    What a perfect sampler scores with the same sizes and slices: report it next to every SW.
    ``generator`` draws the samples; the slices are ``directions`` or the seeded default of
    :func:`sliced_wasserstein`, so they match an SW computed with the same arguments.
    """
    m = n if m is None else m
    X = dist.sample(n, generator=generator)
    Y = dist.sample(m, generator=generator)
    return sliced_wasserstein(X, Y, p=p, n_slices=n_slices, directions=directions)


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width ``1.96·std/√n`` (sample std, ddof = 1) of a normal 95% interval, as MCGdiff aggregates."""
    n = len(values)
    if n == 0:
        raise InvalidInputError("ci95 needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, float("nan")
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, 1.96 * std / math.sqrt(n)
