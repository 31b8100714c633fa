"""The Recipe: timestep plans, the loop's contract (NFE, callback, x_T, seeds, shapes, errors)."""

from __future__ import annotations

import pytest
import torch

import invkit
from invkit import DA, DDIM, DDRM, BackProj, NoGuidance, Recipe, StepInfo
from invkit.errors import CapabilityError, ConfigError, InvalidDTypeError, InvalidInputError
from invkit.plan import travel_schedule

from .models import GaussianPrior, Mask, Matrix, MatrixNoSVD, gen, random_matrix

SSD_550_F15 = [0, 39, 78, 118, 157, 196, 235, 274, 314, 353, 392, 431, 471, 510, 549]
SSD_550_B25 = [0, 23, 46, 69, 92, 114, 137, 160, 183, 206, 229, 252, 274, 297, 320, 343, 366, 389, 412, 435,
               458, 480, 503, 526, 549]  # fmt: skip
SSD_750_F15 = [0, 54, 107, 160, 214, 268, 321, 374, 428, 482, 535, 588, 642, 696, 749]
SSD_750_B25 = [0, 31, 62, 94, 125, 156, 187, 218, 250, 281, 312, 343, 374, 406, 437, 468, 499, 531, 562, 593,
               624, 655, 687, 718, 749]  # fmt: skip


def _problem(d=8, m=3, B=4, seed=0):
    op = Matrix(random_matrix(m, d, seed))
    x = torch.randn(B, d, generator=gen(seed + 1), dtype=torch.float64) * 0.4 + 0.1
    return op, x, op.A(x)


# -- timestep plans (spec ssd.md §1) ---------------------------------------------------------------
def test_ssd_lists_t0_550():
    inv, gen100 = Recipe(inverter=DA()).timesteps()
    assert inv == SSD_550_F15
    assert gen100[:7] == [0, 7, 13, 20, 26, 33, 39] and gen100[-3:] == [536, 542, 549] and len(gen100) == 85
    assert set(inv) <= set(gen100)  # B − 1 = 6·(F − 1)
    inv, gen30 = Recipe(inverter=DA(), inversion_steps=5, generation_steps=25).timesteps()
    assert inv == [0, 137, 274, 412, 549] and gen30 == SSD_550_B25


def test_ssd_lists_t0_750():
    inv, g = Recipe(inverter=DA(), t0=750).timesteps()
    assert inv == SSD_750_F15 and g[-4:] == [722, 731, 740, 749]
    inv, g = Recipe(inverter=DA(), t0=750, inversion_steps=5, generation_steps=25).timesteps()
    assert inv == [0, 187, 374, 562, 749] and g == SSD_750_B25


def test_from_noise_lists_are_leading_over_T():
    assert Recipe(generation_steps=20).timesteps(1000) == ([], list(range(0, 951, 50)))
    assert Recipe(generation_steps=100).timesteps(1000)[1] == list(range(0, 991, 10))
    assert Recipe(generation_steps=30).timesteps(1000)[1][-1] == 29 * 33


def test_travel_schedule():
    assert travel_schedule(4) == [3, 2, 1, 0, -1]
    # jumps at j ∈ {0, 2}, once each, two indices up
    assert travel_schedule(6, 2, 2) == [5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]
    # l = 1, r = 3: every j ∈ {0, 1, 2, 3} jumps twice, each jump one index up and one back down
    order = travel_schedule(5, 1, 3)
    pairs = list(zip(order, order[1:]))
    assert sum(b == a + 1 for a, b in pairs) == 8 and sum(b == a - 1 for a, b in pairs) == 5 + 8


# -- the loop ----------------------------------------------------------------------------------------
def test_ssd30_calls_and_timesteps_seen():
    op, x, y = _problem()
    model = GaussianPrior()
    res = Recipe(inverter=DA(), guidance=BackProj(), inversion_steps=5, generation_steps=25).run(
        model, y, op, return_info=True
    )
    assert res.nfe == model.calls == 29
    assert model.seen == [0, 137, 274, 412] + SSD_550_B25[::-1]
    assert res.inversion_timesteps == [0, 137, 274, 412, 549]
    assert res.generation_timesteps == SSD_550_B25[::-1]
    assert res.seconds > 0


def test_callback_sees_every_step():
    op, x, y = _problem()
    infos: list[StepInfo] = []
    out = Recipe(inverter=DA(), guidance=BackProj(), inversion_steps=5, generation_steps=25).run(
        GaussianPrior(), y, op, callback=infos.append
    )
    phases = [i.phase for i in infos]
    assert phases == ["inversion"] * 4 + ["generation"] * 25
    assert [i.index for i in infos] == list(range(4)) + list(range(25))
    for a, b in zip(infos, infos[1:]):
        assert a.t_next == b.t  # the chain has no jump between inversion and generation
    assert infos[-1].t_next == -1 and torch.equal(infos[-1].x, out)
    assert all(i.eps is not None and i.x0 is not None for i in infos)
    # the last step returns the guided x0
    assert torch.equal(infos[-1].x0, out)


def test_ddim_round_trip_error_shrinks_with_steps():
    ident = Matrix(torch.eye(8, dtype=torch.float64))
    x = torch.randn(4, 8, generator=gen(1), dtype=torch.float64) * 0.5 + 0.1
    errors = []
    for n in (10, 40, 160):
        r = Recipe(inverter=DDIM(clamp=False), t0=1000, inversion_steps=n, generation_steps=n, eta=0.0, clamp=False)
        errors.append(float((r.run(GaussianPrior(), x, ident) - x).abs().max()))
    assert errors[0] > 2 * errors[1] > 4 * errors[2]
    assert errors[2] < 0.1


def test_noiseless_backprojection_is_consistent_on_vectors():
    op, x, y = _problem()
    for r in (
        Recipe(inverter=DA(), guidance=BackProj(), inversion_steps=5, generation_steps=25),
        Recipe(guidance=BackProj(), generation_steps=30, eta=0.85, clamp=False),
    ):
        out = r.run(GaussianPrior(), y, op, generator=gen(3))
        assert float((op.A(out) - y).abs().max()) <= 1e-6
        assert float((out - x).abs().max()) > 1e-3  # not just returning the truth


def test_images_and_cg_operators():
    mask = (torch.rand(6, 5, generator=gen(2)) > 0.5).double()
    op = Mask(mask)
    x = torch.rand(2, 3, 6, 5, generator=gen(4), dtype=torch.float64) * 2 - 1
    y = op.A(x)
    out = Recipe(inverter=DA(), guidance=BackProj(), inversion_steps=5, generation_steps=25).run(
        GaussianPrior(), y, op
    )
    assert out.shape == x.shape
    assert float((op.A(out) - y).abs().max()) <= 1e-6
    cg = MatrixNoSVD(random_matrix(3, 8))
    yv = cg.A(torch.randn(2, 8, generator=gen(5), dtype=torch.float64))
    out = Recipe(guidance=BackProj(), generation_steps=20, clamp=False).run(GaussianPrior(), yv, cg)
    assert float((cg.A(out) - yv).abs().max()) <= 1e-6


def test_float32_runs():
    op, x, y = _problem()
    op = op.float()
    out = Recipe(inverter=DA(), guidance=BackProj(), inversion_steps=5, generation_steps=25).run(
        GaussianPrior(), y.float(), op
    )
    assert out.dtype == torch.float32 and float((op.A(out) - y.float()).abs().max()) < 1e-4


def test_same_seed_same_bits():
    op, x, y = _problem()
    r = Recipe(inverter=DA(), guidance=BackProj(), inversion_steps=5, generation_steps=25)
    a = r.run(GaussianPrior(), y, op, generator=gen(11))
    b = r.run(GaussianPrior(), y, op, generator=gen(11))
    c = r.run(GaussianPrior(), y, op, generator=gen(12))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_x_T_is_the_starting_noise():
    op, x, y = _problem()
    x_T = torch.randn(4, 8, generator=gen(9), dtype=torch.float64)
    r = Recipe(guidance=BackProj(), generation_steps=10, eta=0.0, clamp=False)  # deterministic given x_T
    a = r.run(GaussianPrior(), y, op, x_T=x_T, generator=gen(1))
    b = r.run(GaussianPrior(), y, op, x_T=x_T, generator=gen(2))
    c = r.run(GaussianPrior(), y, op, x_T=x_T + 0.1, generator=gen(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    first: list[StepInfo] = []
    r.run(GaussianPrior(), y, op, x_T=x_T, callback=lambda i: first.append(i) if not first else None)
    model = GaussianPrior()
    eps = model(x_T, 900)
    torch.testing.assert_close(first[0].eps, eps)  # the first call saw x_T itself


def test_x_T_errors():
    op, x, y = _problem()
    with pytest.raises(InvalidInputError, match="A⁺y"):
        Recipe(inverter=DA()).run(GaussianPrior(), y, op, x_T=torch.zeros(4, 8, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="batch size"):
        Recipe(generation_steps=5).run(GaussianPrior(), y, op, x_T=torch.zeros(3, 8, dtype=torch.float64))


def test_output_is_an_ordinary_tensor():
    op, x, y = _problem()
    out = Recipe(generation_steps=5).run(GaussianPrior(), y, op)
    out.add_(1.0)  # an inference tensor would refuse this
    assert not out.is_inference()


def test_progress_bar_runs(capsys):
    op, x, y = _problem()
    Recipe(generation_steps=5, name="demo").run(GaussianPrior(), y, op, progress=True)
    assert "demo" in capsys.readouterr().err


# -- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(generation_steps=0), "generation_steps"),
        (dict(inversion_steps=0), "inversion_steps"),
        (dict(generation_steps=2.5), "generation_steps"),
        (dict(eta=1.2), r"\[0, 1\]"),
        (dict(eta=-0.1), r"\[0, 1\]"),
        (dict(t0=0), "t0"),
        (dict(spacing="cubic"), "spacing"),
        (dict(inverter="DA"), "Inverter"),
        (dict(guidance=None), "Guidance"),
        (dict(clamp=1), "True or False"),
        (dict(inverter=DA(), inversion_steps=1), "inversion_steps"),
        (dict(inverter=DA(), t0=10, generation_steps=20), "20 steps"),
        (dict(inverter=DA(), spacing="leading", inversion_steps=4, generation_steps=25), "uniform"),
        (dict(generation_steps=5, travel_length=5, travel_repeat=2), "travel_length"),
    ],
)
def test_bad_parameters_fail_at_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Recipe(**kwargs)


def test_t0_beyond_T_fails_at_run_before_any_call():
    op, x, y = _problem()
    model = GaussianPrior(T=500)
    with pytest.raises(ConfigError, match="T = 500"):
        Recipe(inverter=DA(), t0=550).run(model, y, op)
    assert model.calls == 0


def test_bad_inputs_are_typed():
    op, x, y = _problem()
    r = Recipe(generation_steps=5)
    with pytest.raises(InvalidDTypeError):
        r.run(GaussianPrior(), y.long(), op)
    with pytest.raises(InvalidInputError, match="NaN"):
        r.run(GaussianPrior(), y * float("nan"), op)
    with pytest.raises(InvalidInputError, match="schedule"):
        r.run(lambda x, t: x, y, op)
    with pytest.raises(InvalidInputError, match="Operator"):
        r.run(GaussianPrior(), y, lambda x: x)


def test_capability_error_before_any_network_call():
    model = GaussianPrior()
    op = MatrixNoSVD(random_matrix(3, 8))
    y = op.A(torch.randn(2, 8, generator=gen(0), dtype=torch.float64))
    with pytest.raises(CapabilityError, match="SVD"):
        Recipe(guidance=DDRM(), generation_steps=20, clamp=False).run(model, y, op)
    assert model.calls == 0


def test_lazy_names_resolve():
    for name in ("Recipe", "RunResult", "StepInfo", "DA", "DDIM", "DDPM", "Inverter", "Guidance", "NoGuidance",
                 "BackProj", "StagedBackProj", "DDNMPlus", "DPS", "DDRM"):  # fmt: skip
        assert getattr(invkit, name) is not None
    assert callable(invkit.recipe) and isinstance(invkit.recipe("ssd-30"), Recipe)
    assert NoGuidance() == Recipe().guidance


@pytest.mark.parametrize("name", ["ssd-30", "ddnm-30", "ddrm-20", "ddnm+"])
def test_presets_on_a_registered_image_operator(name):
    if "sr_avgpool" not in invkit.operators_registry:
        pytest.skip("the operators plugin does not provide sr_avgpool")
    op = invkit.operator("sr_avgpool", scale=2).double()
    x = torch.rand(2, 3, 8, 6, generator=gen(6), dtype=torch.float64) * 2 - 1
    y = op.A(x)
    out = invkit.recipe(name, task="sr").run(GaussianPrior(), y, op)
    assert out.shape == x.shape
    assert float((op.A(out) - y).abs().max()) <= 1e-6
