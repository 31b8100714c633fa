"""``DPMSolver2M`` as a part (composition rules, first step, time travel), the ``ssd-2m`` presets,
and the ``quadratic`` / ``karras`` timestep spacings."""

from __future__ import annotations

import math

import pytest
import torch

import invkit
from invkit import DA, DDRM, DPS, BackProj, DDNMPlus, NoGuidance, NoiseSchedule, Recipe, StagedBackProj, timesteps
from invkit.errors import ConfigError
from invkit.multistep import DPMSolver2M, log_snr

from .models import GaussianPrior, Matrix


def _problem(seed: int = 0, n: int = 4, d: int = 6, m: int = 3):
    g = torch.Generator().manual_seed(seed)
    op = Matrix(torch.randn(m, d, generator=g, dtype=torch.float64))
    y = op.A(0.3 * torch.randn(n, d, generator=g, dtype=torch.float64))
    return op, y


# -- the part --------------------------------------------------------------------------------------
@pytest.mark.parametrize("inner", [DDRM(), DDNMPlus(), DPS()])
def test_guidances_that_own_their_update_are_refused(inner):
    with pytest.raises(ConfigError, match="own update"):
        DPMSolver2M(inner)


def test_a_non_guidance_is_refused():
    with pytest.raises(ConfigError, match="Guidance"):
        DPMSolver2M("backproj")


def test_first_step_is_ssd_and_later_steps_differ():
    op, y = _problem()
    prior = GaussianPrior(channels=1)
    runs = {}
    for name, guid in [("ssd", BackProj()), ("2m", DPMSolver2M(BackProj()))]:
        seen = []
        r = Recipe(inverter=DA(eta=0.4), guidance=guid, inversion_steps=3, generation_steps=8, clamp=False)
        r.run(prior, y, op, generator=torch.Generator().manual_seed(1), callback=lambda s: seen.append(s))
        runs[name] = [s for s in seen if s.phase == "generation"]
    a, b = runs["ssd"], runs["2m"]
    assert torch.equal(a[0].x, b[0].x) and torch.equal(a[0].x0, b[0].x0)
    assert (a[1].x - b[1].x).abs().max() > 1e-6


def test_wrapped_guidance_keeps_its_own_context():
    """StagedBackProj reads its stop index from ctx.extra: the wrapper hands it its own context."""
    op, y = _problem()
    prior = GaussianPrior(channels=1)
    r = Recipe(inverter=DA(eta=0.0), guidance=DPMSolver2M(StagedBackProj(t_stop=200)), inversion_steps=3,
               generation_steps=10, clamp=False, eta=0.0)
    x = r.run(prior, y, op)
    # projection stopped below t = 200: the output is no longer exactly consistent
    assert float((op.A(x) - y).abs().max()) > 1e-8


def test_time_travel_restarts_the_history():
    """After a DDNM time-travel step the 2M step is first order again (no stale x0 from below)."""
    op, y = _problem()
    prior = GaussianPrior(channels=1)
    kw = dict(generation_steps=10, eta=0.0, clamp=False, travel_length=2, travel_repeat=2)
    seen = []
    x = Recipe(guidance=DPMSolver2M(BackProj()), **kw).run(
        prior, y, op, generator=torch.Generator().manual_seed(0), callback=seen.append
    )
    assert float((op.A(x) - y).abs().max()) < 1e-10
    travel_at = [k for k, s in enumerate(seen) if s.phase == "travel"]
    assert travel_at
    # the step right after travel equals a plain DDIM step from the same state
    k = travel_at[-1] + 1
    st = seen[k]
    a_next = 1.0 if st.t_next < 0 else float(prior.schedule.abar[st.t_next])
    want = math.sqrt(a_next) * st.x0 + math.sqrt(1 - a_next) * st.eps
    torch.testing.assert_close(st.x, want, rtol=1e-12, atol=1e-12)


def test_log_snr():
    assert log_snr(0.5) == 0.0 and log_snr(1.0) == math.inf
    assert log_snr(0.8) == pytest.approx(0.5 * math.log(4.0))


def test_presets():
    r = invkit.recipe("ssd-2m-30", task="colorization")
    assert r.guidance == DPMSolver2M(BackProj()) and (r.t0, r.inversion_steps, r.generation_steps) == (750, 5, 25)
    r = invkit.recipe("ssd-2m", inversion_steps=3, generation_steps=8, eta=0.0)
    assert (r.inversion_steps, r.generation_steps, r.eta, r.name) == (3, 8, 0.0, "ssd-2m")
    with pytest.raises(ConfigError, match="inversion_steps"):
        invkit.recipe("ssd-2m")
    prior = GaussianPrior(channels=1)
    op = invkit.operator("sr_bicubic", scale=2)
    y = op.A(torch.zeros(1, 1, 8, 8))
    assert invkit.recipe("ssd-2m-30").run(prior, y, op, return_info=True).nfe == 29


# -- spacings --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing", ["quadratic", "karras"])
@pytest.mark.parametrize("t0", [1, 2, 7, 50, 550, 750, 1000])
def test_new_spacings_are_n_strictly_increasing_integers_from_0_to_t0_minus_1(spacing, t0):
    for n in sorted({1, 2, 3, 5, 10, 25, 85, t0 // 2 + 1, t0}):
        if n > t0 or n < 1:
            continue
        ts = timesteps(n, t0, spacing, T=1000)
        assert len(ts) == n and all(isinstance(t, int) for t in ts)
        assert ts[-1] == t0 - 1 and (n == 1 or ts[0] == 0)
        assert all(a < b for a, b in zip(ts, ts[1:]))


def test_quadratic_values():
    assert timesteps(5, 550, "quadratic") == [0, 34, 137, 309, 549]
    assert timesteps(10, 1000, "quadratic") == [round((k / 9) ** 2 * 999) for k in range(10)]


def test_karras_follows_the_rho_curve_in_log_sigma():
    s = NoiseSchedule.linear()
    ab = s.abar
    ts = s.timesteps(20, 1000, "karras")
    sig = [math.sqrt((1 - ab[t]) / ab[t]) for t in ts]
    lo, hi = sig[0] ** (1 / 7), sig[-1] ** (1 / 7)
    want = [(lo + k / 19 * (hi - lo)) ** 7 for k in range(20)]
    # nearest integer timestep: log σ within half a timestep's log-σ increment of the target
    for t, a, b in zip(ts, sig, want):
        step = 0.5 * math.log((1 - ab[min(t + 1, 999)]) / ab[min(t + 1, 999)] * ab[max(t - 1, 0)] / (1 - ab[max(t - 1, 0)]))
        assert abs(math.log(a / b)) <= step + 1e-12
    # and it uses the schedule it is given: the cosine schedule gives another list
    assert NoiseSchedule.cosine().timesteps(20, 1000, "karras") != ts


def test_recipe_accepts_the_new_spacings_and_rejects_unknown_ones():
    for spacing in ("quadratic", "karras"):
        inv, gen = Recipe(inverter=DA(), guidance=BackProj(), spacing=spacing).timesteps()
        assert inv[0] == 0 and inv[-1] == gen[-1] == 549
    with pytest.raises(ConfigError, match="karras"):
        Recipe(spacing="cubic")
    with pytest.raises(ConfigError, match="karras"):
        timesteps(5, 100, "cubic")


def test_unguided_2m_with_eta_zero_matches_ddim_on_a_gaussian_at_one_step():
    """A single generation step has no history: 2M is DDIM exactly."""
    prior = GaussianPrior(channels=1)
    op, y = _problem()
    a = Recipe(guidance=NoGuidance(), generation_steps=1, eta=0.0, clamp=False).run(prior, y, op)
    b = Recipe(guidance=DPMSolver2M(NoGuidance()), generation_steps=1, eta=0.0, clamp=False).run(prior, y, op)
    assert torch.equal(a, b)
