"""Guidances: SSD+'s staged projection, DDNM(+), DDRM, DPS on exact toy problems."""

from __future__ import annotations

import math

import pytest
import torch

from invkit import DA, DDRM, DPS, BackProj, DDNMPlus, NoGuidance, Recipe, StagedBackProj, StepInfo
from invkit.errors import ConfigError
from invkit.plan import Context, GenStep

from .models import GaussianPrior, Matrix, MatrixNoSVD, gen, random_matrix


class CountingPinv(Matrix):
    """Counts pinv calls, so a test can see at which steps a projection ran."""

    pinv_calls = 0

    def pinv(self, y):  # noqa: ANN001
        self.pinv_calls += 1
        return super().pinv(y)


def _problem(op_cls=Matrix, d=8, m=3, B=3, seed=0):
    op = op_cls(random_matrix(m, d, seed))
    x = torch.randn(B, d, generator=gen(seed + 1), dtype=torch.float64) * 0.4 + 0.1
    return op, x, op.A(x)


def _residual(op, x, y) -> float:  # noqa: ANN001
    return float((op.A(x) - y).abs().max())


def _projected_timesteps(recipe: Recipe) -> tuple[set[int], set[int]]:
    """(timesteps whose step projected, timesteps whose step did not), from the pinv call count."""
    op, x, y = _problem(CountingPinv)
    ts: list[int] = []
    counts: list[int] = []

    def cb(info: StepInfo) -> None:
        if info.phase == "generation":
            ts.append(info.t)
            counts.append(op.pinv_calls)

    recipe.run(GaussianPrior(), y, op, callback=cb)
    # the run's first pinv call is A⁺y (the inversion's start); each projection makes one more
    projected, plain = set(), set()
    for t, before, after in zip(ts, [1] + counts, counts):
        (projected if after > before else plain).add(t)
    return projected, plain


@pytest.mark.parametrize("F, B, lowest, highest_plain", [(15, 85, 203, 196), (5, 25, 229, 206)])
def test_staged_backprojection_matches_spec(F, B, lowest, highest_plain):
    r = Recipe(inverter=DA(), guidance=StagedBackProj(200), inversion_steps=F, generation_steps=B)
    projected, plain = _projected_timesteps(r)
    assert min(projected) == lowest and max(plain) == highest_plain
    assert max(projected) == 549 and min(plain) == 0
    assert len(projected) == int((550 - 200) / 550 * B)


def test_full_backprojection_projects_every_step():
    projected, plain = _projected_timesteps(Recipe(inverter=DA(), guidance=BackProj(), inversion_steps=5,
                                                   generation_steps=25))  # fmt: skip
    assert len(projected) == 25 and not plain


def test_staged_backprojection_output_is_unprojected():
    op, x, y = _problem()
    r = Recipe(inverter=DA(), guidance=StagedBackProj(200), inversion_steps=5, generation_steps=25, clamp=False)
    assert _residual(op, r.run(GaussianPrior(), y, op), y) > 1e-3
    with pytest.raises(ConfigError):
        StagedBackProj(t_stop=-1)


def test_ddrm_and_ddnm_plus_are_consistent_without_noise():
    op, x, y = _problem()
    for g in (DDRM(sigma_y=0.0), DDNMPlus(sigma_y=0.0), DDNMPlus(sigma_y=0.0, spectral=False)):
        out = Recipe(guidance=g, generation_steps=20, eta=0.85, clamp=False).run(GaussianPrior(), y, op, generator=gen(2))
        assert _residual(op, out, y) <= 1e-6, g
    cg_op, _, y_cg = _problem(MatrixNoSVD)
    out = Recipe(guidance=DDNMPlus(0.0), generation_steps=20, clamp=False).run(GaussianPrior(), y_cg, cg_op)
    assert _residual(cg_op, out, y_cg) <= 1e-6


def test_scalar_ddnm_plus_at_zero_noise_is_ddnm():
    op, x, y = _problem(MatrixNoSVD)
    kw = dict(generation_steps=20, eta=0.85, clamp=False)
    a = Recipe(guidance=BackProj(), **kw).run(GaussianPrior(), y, op, generator=gen(4))
    b = Recipe(guidance=DDNMPlus(0.0), **kw).run(GaussianPrior(), y, op, generator=gen(4))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_noise_aware_guidances_relax_consistency():
    """With σ_y > 0 neither DDRM nor DDNM+ forces A x̂ = y exactly (y is noisy), but both stay near it."""
    op, x, y = _problem()
    noisy = y + 0.1 * torch.randn(y.shape, generator=gen(8), dtype=torch.float64)
    for g in (DDRM(sigma_y=0.1), DDNMPlus(sigma_y=0.1), DDNMPlus(sigma_y=0.1, spectral=False)):
        out = Recipe(guidance=g, generation_steps=20, eta=0.85, clamp=False).run(GaussianPrior(), noisy, op)
        assert torch.isfinite(out).all()
        assert 1e-4 < _residual(op, out, noisy) < 1.0, g


def _ctx(op, y, steps=20, t0=1000):  # noqa: ANN001
    return Context(op, y, t0, steps)


def test_ddrm_initialisation_centres_range_on_pinv_y():
    op, x, y = _problem()
    g = DDRM(sigma_y=0.0)
    ctx = g.start(_ctx(op, y))
    a = float(GaussianPrior().schedule.abar[950])
    step = GenStep.make(19, 950, 900, a, 0.5, 0.85)
    z = torch.randn(3, 8, generator=gen(3), dtype=torch.float64)
    x_T = g.init(z, step, ctx)
    view = op.svd()
    v = view.Vt(x_T) / math.sqrt(a)  # VE spectral state
    sigma_T = math.sqrt(1 - a) / math.sqrt(a)
    ybar = view.Vt(op.pinv(y))
    in_range = view.s > 0
    torch.testing.assert_close(v[:, in_range], ybar[:, in_range] + sigma_T * z[:, in_range])
    torch.testing.assert_close(v[:, ~in_range], sigma_T * z[:, ~in_range])


def test_ddrm_validation():
    for bad in (dict(eta=1.5), dict(eta_b=-0.1), dict(sigma_y=-1.0), dict(sigma_y=float("inf"))):
        with pytest.raises(ConfigError):
            DDRM(**bad)
    with pytest.raises(ConfigError):
        DDNMPlus(sigma_y=0.1, eta=2.0)


def test_dps_decreases_the_residual():
    op, x, y = _problem(B=4)

    def res(zeta: float) -> float:
        out = Recipe(guidance=DPS(zeta=zeta), generation_steps=100, clamp=False).run(GaussianPrior(), y, op,
                                                                                    generator=gen(2))  # fmt: skip
        return float((op.A(out) - y).norm(dim=1).mean())

    assert res(0.3) < 0.5 * res(0.0)


def test_dps_batch_samples_are_independent():
    """Per-sample norms: a sample's trajectory does not depend on the other samples in the batch."""
    op, x, y = _problem(B=2)
    r = Recipe(guidance=DPS(zeta=0.3), generation_steps=10, clamp=False)  # DPS takes no η
    x_T = torch.randn(2, 8, generator=gen(1), dtype=torch.float64)
    both = r.run(GaussianPrior(), y, op, x_T=x_T)
    y2 = y.clone()
    y2[1] += 1.0
    changed = r.run(GaussianPrior(), y2, op, x_T=x_T)
    # the posterior step draws noise for the whole batch at once, so compare with the same draws
    torch.testing.assert_close(both[0], changed[0], rtol=0, atol=1e-12)
    assert not torch.allclose(both[1], changed[1])


def test_time_travel_costs_and_consistency():
    op, x, y = _problem()
    model = GaussianPrior()
    infos: list[StepInfo] = []
    r = Recipe(guidance=BackProj(), generation_steps=6, travel_length=2, travel_repeat=2, eta=0.85, clamp=False)
    res = r.run(model, y, op, callback=infos.append, return_info=True)
    assert res.nfe == model.calls == 10
    assert [i.phase for i in infos].count("travel") == 4
    travel = [i for i in infos if i.phase == "travel"]
    assert all(i.t_next > i.t and i.eps is None for i in travel)
    assert _residual(op, res.x, y) <= 1e-6


def test_no_guidance_ignores_y():
    op, x, y = _problem()
    r = Recipe(guidance=NoGuidance(), generation_steps=10)
    a = r.run(GaussianPrior(), y, op, generator=gen(0))
    b = r.run(GaussianPrior(), y + 1.0, op, generator=gen(0))
    assert torch.equal(a, b)
