r"""Analytic Gaussian-mixture prior plugin: exact score, exact posterior, sliced Wasserstein.

Backbones:

- ``gmm-grid``: MCGdiff's 25-mode grid prior in any even dimension (``d=8, seed=0``).
- ``gmm``: any mixture from ``weights``, ``means`` and ``covs`` (None, diagonals or full).

Benchmark: ``invkit bench gmm`` (:mod:`invkit_gmm.bench`), recipes against the exact posterior.

Use the mixture as ground truth: ``prior.posterior(A, y, sigma_y).sample(n)`` gives exact
posterior samples to compare a recipe's output with through :func:`sliced_wasserstein`, beside
its :func:`noise_floor`. See ``docs/gmm.md``.

This entry module stays light (no torch at import): ``invkit --help`` imports every plugin to
list its commands; the public names below are imported from their submodules on first use.
"""

from __future__ import annotations

from invkit import hookimpl
from invkit.plugins import lazy_attributes

__all__ = [
    "GaussianMixture",
    "LinearProblem",
    "grid_means",
    "grid_prior",
    "random_problem",
    "sliced_wasserstein",
    "wasserstein_1d",
    "random_directions",
    "noise_floor",
    "ci95",
    "gmm",
    "gmm_grid",
]

__getattr__ = lazy_attributes(__name__, {
    "GaussianMixture": ".mixture",
    **dict.fromkeys(("LinearProblem", "grid_means", "grid_prior", "random_problem"), ".problems"),
    **dict.fromkeys(("ci95", "noise_floor", "random_directions", "sliced_wasserstein", "wasserstein_1d"), ".sliced"),
    **dict.fromkeys(("gmm", "gmm_grid"), ".backbones"),
})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


@hookimpl
def invkit_register_backbones(register):  # type: ignore[no-untyped-def]
    # the mixture imports torch: imported when the backbones are first needed, not with the plugin
    from .backbones import register_all

    register_all(register)


@hookimpl
def invkit_register_benchmarks(register):  # type: ignore[no-untyped-def]
    register("gmm", "invkit_gmm.bench", help="recipes against the exact posterior of a Gaussian-mixture prior")
