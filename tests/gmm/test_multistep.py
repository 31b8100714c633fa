"""DPM-Solver++(2M) (``invkit.multistep``) on the exact-ε Gaussian mixture, in float64: the update
against an independent transcription of Lu et al.'s formulas, the convergence orders on the
probability-flow ODE, exact consistency with back projection, and the exact-posterior benchmark."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import invkit
from invkit import DA, BackProj, NoGuidance, Recipe, rng
from invkit.multistep import DPMSolver2M
from invkit_gmm import GaussianMixture, grid_prior, random_directions, random_problem, sliced_wasserstein

D = torch.float64
N_SAMPLES = 128


def _prior(d: int = 4, K: int = 3, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(K, generator=g, dtype=D) + 0.2
    mu = 1.5 * torch.randn(K, d, generator=g, dtype=D)
    return GaussianMixture(w, mu, torch.rand(K, d, generator=g, dtype=D) * 0.5 + 0.3)


def _ode(prior: GaussianMixture, guidance, steps: int, spacing: str, eta: float = 0.0, seed: int = 1):
    """The unguided run from x_T at t = 999 to the clean output (t0 = T: the whole ODE)."""
    d = prior.d
    op = invkit.operator("matrix", M=torch.eye(d, dtype=D)[:1])
    x_T = torch.randn(N_SAMPLES, d, generator=torch.Generator().manual_seed(seed), dtype=D)
    r = Recipe(guidance=guidance, generation_steps=steps, eta=eta, clamp=False, spacing=spacing)
    y = torch.zeros(N_SAMPLES, 1, dtype=D)
    return r.run(prior, y, op, x_T=x_T, generator=torch.Generator().manual_seed(seed + 1)), x_T


def _lu_2m(prior: GaussianMixture, x: torch.Tensor, ts: list[int], eta: float = 0.0, generator=None) -> torch.Tensor:
    """DPM-Solver++(2M) as Lu et al. write it (x-form, data prediction), plus the SDE variant's
    midpoint correction and noise (η_s with e^{−η_s h} = √(1−η²)); last step to ᾱ = 1 first order."""
    abar = prior.schedule.abar
    desc = sorted(ts, reverse=True)
    prev = None
    c = math.sqrt(1.0 - eta * eta)
    for i, t in enumerate(desc):
        a = float(abar[t])
        al, sg = math.sqrt(a), math.sqrt(1 - a)
        lam = math.log(al / sg)
        x0 = (x - sg * prior(x, t)) / al
        if i == len(desc) - 1:
            return x0
        an = float(abar[desc[i + 1]])
        al_n, sg_n = math.sqrt(an), math.sqrt(1 - an)
        h = math.log(al_n / sg_n) - lam
        x_new = sg_n / sg * c * x + al_n * (1 - c * math.exp(-h)) * x0
        if prev is not None:
            r = (lam - prev[1]) / h
            x_new = x_new + 0.5 * al_n * (1 - c * math.exp(-h)) / r * (x0 - prev[0])
        if eta > 0:
            x_new = x_new + sg_n * eta * rng.randn_like(x, generator)
        x, prev = x_new, (x0, lam)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("spacing, eta", [("uniform", 0.0), ("karras", 0.0), ("quadratic", 0.5)])
def test_the_update_is_lu_et_al_dpm_solver_pp_2m(spacing, eta):
    prior = _prior()
    steps = 12
    got, x_T = _ode(prior, DPMSolver2M(NoGuidance()), steps, spacing, eta)
    ts = Recipe(generation_steps=steps, spacing=spacing).timesteps()[1]
    want = _lu_2m(prior, x_T, ts, eta, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def _slope(errors: list[float], steps: list[int]) -> float:
    return float(-np.polyfit(np.log(steps), np.log(errors), 1)[0])


def test_convergence_orders_on_the_probability_flow_ode():
    """Error to a 1000-step 2M solution: DDIM O(h), 2M O(h²) (quadratic and Karras grids; on the
    uniform grid 2M's first step 0 → 999/N spans most of λ's range, so order 2 appears only from
    N ≈ 40 on: measured local slopes 1.41, 1.76, 2.02)."""
    prior = _prior()
    ref, _ = _ode(prior, DPMSolver2M(NoGuidance()), 1000, "uniform")
    steps = [10, 20, 40, 80]

    def errs(guidance, spacing):
        return [float((_ode(prior, guidance, n, spacing)[0] - ref).norm(dim=1).mean()) for n in steps]

    for spacing in ("uniform", "quadratic", "karras"):
        assert 0.9 <= _slope(errs(NoGuidance(), spacing), steps) <= 1.1, spacing
    for spacing in ("quadratic", "karras"):
        e = errs(DPMSolver2M(NoGuidance()), spacing)
        assert 1.85 <= _slope(e, steps) <= 2.4, (spacing, e)
    e = errs(DPMSolver2M(NoGuidance()), "uniform")
    assert 1.8 <= math.log2(e[2] / e[3]) <= 2.3, e


@pytest.mark.parametrize("eta", [0.0, 0.8])
def test_back_projected_2m_is_exactly_consistent(eta):
    prior = grid_prior(8, generator=torch.Generator().manual_seed(0))
    problem = random_problem(prior, 2, sigma_y=0.0, generator=torch.Generator().manual_seed(1))
    op = invkit.operator("matrix", M=problem.A)
    y = problem.y.expand(64, 2).clone()
    for r in (
        Recipe(inverter=DA(eta=0.4, clamp=False), guidance=DPMSolver2M(BackProj()), t0=550, inversion_steps=3,
               generation_steps=17, eta=eta, clamp=False),
        Recipe(guidance=DPMSolver2M(BackProj()), generation_steps=20, eta=eta, clamp=False, spacing="karras"),
    ):
        x = r.run(prior, y, op, generator=torch.Generator().manual_seed(3))
        assert float((op.A(x) - y).abs().max()) < 1e-10


def _posterior_sw(steps: int, guidance, problems: int = 3, n: int = 256) -> float:
    """Mean SW1 to the exact posterior over a few d = 8, d_y = 2 grid problems (σ_y = 0)."""
    prior = grid_prior(8, generator=torch.Generator().manual_seed(7919 + 8))
    theta = random_directions(8, 200, generator=torch.Generator().manual_seed(7920 + 8))
    sws = []
    for i in range(problems):
        g = torch.Generator().manual_seed(100 + i)
        problem = random_problem(prior, 2, sigma_y=0.0, generator=g)
        ref = problem.posterior(prior).sample(n, generator=g)
        F = max(2, round(0.15 * steps))  # SSD-100's 15/85 split, as the GMM benchmark splits
        recipe = Recipe(inverter=DA(eta=0.4, clamp=False), guidance=guidance or BackProj(), t0=550,
                        inversion_steps=F, generation_steps=steps - F, eta=0.8, clamp=False)
        op = invkit.operator("matrix", M=problem.A)
        x = recipe.run(prior, problem.y.expand(n, 2).clone(), op, generator=torch.Generator().manual_seed(5 + i))
        sws.append(sliced_wasserstein(x, ref, directions=theta))
    return float(np.mean(sws))


def test_ssd_2m_on_the_exact_posterior_is_no_worse_than_ssd():
    """SW1 to the exact posterior at 20 steps (19 calls): 2M within 25 % of SSD or better."""
    ssd = _posterior_sw(20, None)
    ssd_2m = _posterior_sw(20, DPMSolver2M(BackProj()))
    assert math.isfinite(ssd_2m) and ssd_2m <= 1.25 * ssd, (ssd, ssd_2m)
