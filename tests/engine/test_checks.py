"""The input rules of ``Recipe.run`` (docs/recipes.md, "Input rules") and the η rule: each bad
input below raises a typed error before the first network call (or, for a bad ε, at the step
that produced it), and the inputs next to the rules' edges still run."""

from __future__ import annotations

import math

import attrs
import pytest
import torch

import invkit
from invkit import DDRM, DPS, BackProj, DDNMPlus, NetBackbone, Recipe
from invkit.checks import EPS_CHECK_EVERY, EpsMonitor
from invkit.errors import ConfigError, InvalidDTypeError, InvalidInputError
from invkit.models import as_timestep_tensor
from invkit.noise import JPEG, Gaussian
from invkit.schedule import NoiseSchedule

from .models import BadAt, GaussianPrior, Gain, Mask, Matrix, gen, random_matrix

R = Recipe(guidance=BackProj(), generation_steps=5, clamp=False)


def _image(shape=(2, 3, 6, 5), seed=0, lo=-1.0, hi=1.0):  # noqa: ANN001
    return torch.rand(shape, generator=gen(seed), dtype=torch.float64) * (hi - lo) + lo


def _mask(H=6, W=5):  # noqa: ANN001
    return Mask((torch.rand(H, W, generator=gen(2)) > 0.3).double())


def _refused(exc, match, y, op=None, model=None, **kw):  # noqa: ANN001
    """``R.run`` raises ``exc`` matching ``match`` and the model was never called."""
    model = model if model is not None else GaussianPrior()
    with pytest.raises(exc, match=match):
        R.run(model, y, op if op is not None else _mask(), **kw)
    assert getattr(model, "calls", 0) == 0


# -- dtype ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "y, match",
    [
        (torch.zeros(2, 3, 6, 5, dtype=torch.uint8), "127.5"),
        (torch.zeros(2, 3, 6, 5, dtype=torch.int64), "floating-point"),
        (torch.zeros(2, 3, 6, 5, dtype=torch.bool), "floating-point"),
        (torch.zeros(2, 3, 6, 5, dtype=torch.complex64), "real"),
        (torch.zeros(2, 3, 6, 5, dtype=torch.float16), r"y\.float\(\)"),
        (torch.zeros(2, 3, 6, 5, dtype=torch.bfloat16), "autocast"),
        ([[0.0, 1.0]], "torch.Tensor"),
    ],
)
def test_bad_dtypes(y, match):
    _refused(InvalidDTypeError, match, y)


def test_float64_y_runs_on_a_float32_net():
    net = torch.nn.Conv2d(3, 3, 1).float()
    model = NetBackbone(_EpsNet(net), NoiseSchedule.linear(1000), image_size=None)
    y = _mask().A(_image())  # float64
    out = R.run(model, y, _mask())
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


class _Plain(GaussianPrior):
    """A Backbone (not a NetBackbone) with float32 weights that does not cast its input."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones((), dtype=torch.float32))


def test_a_backbone_that_does_not_cast_needs_y_in_its_dtype():
    y = _mask().A(_image())  # float64
    _refused(InvalidDTypeError, r"weights are torch\.float32.*NetBackbone", y, model=_Plain())
    assert R.run(_Plain(), y.float(), _mask().float()).dtype == torch.float32


class _EpsNet(torch.nn.Module):
    def __init__(self, conv):  # noqa: ANN001
        super().__init__()
        self.conv = conv

    def forward(self, x, t):  # noqa: ANN001
        assert x.dtype == self.conv.weight.dtype  # NetBackbone cast it
        return self.conv(x) * 0.1


# -- values, batch, type of model and operator ------------------------------------------------------------------
def test_bad_values_and_parts():
    y = _mask().A(_image())
    _refused(InvalidInputError, "NaN", y * float("nan"))
    _refused(InvalidInputError, "NaN or Inf", torch.where(y > 0.5, float("inf"), y))
    _refused(InvalidInputError, "B >= 1", torch.zeros(0, 3, 6, 5, dtype=torch.float64))
    _refused(InvalidInputError, "no values", torch.zeros(2, 3, 0, 5, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="schedule"):
        R.run(lambda x, t: x, y, _mask())
    with pytest.raises(InvalidInputError, match="Operator"):
        R.run(GaussianPrior(), y, lambda x: x)


# -- device ------------------------------------------------------------------------------------------------------
def test_devices_must_agree():
    y = _mask().A(_image())
    net = NetBackbone(_EpsNet(torch.nn.Conv2d(3, 3, 1).double()), NoiseSchedule.linear(1000), image_size=None)
    with pytest.raises(InvalidInputError, match=r"backbone's weights are on cpu.*model\.to"):
        R.run(net, y.to("meta"), _mask())
    with pytest.raises(InvalidInputError, match=r"operator Mask's buffers are on meta.*op\.to"):
        R.run(GaussianPrior(), y, _mask().to("meta"))


# -- shape, channels, size -------------------------------------------------------------------------------------
def test_y_must_fit_the_operator():
    _refused(InvalidInputError, "cannot take y of shape", _image((2, 3, 7, 5)))  # the mask is 6×5
    op = Matrix(random_matrix(3, 8))
    _refused(InvalidInputError, r"maps x of shape \(2, 8\) to \(2, 3\)", _image((2, 8)) * 0.1, op=op)


def test_channels_must_fit_the_backbone():
    y = _mask().A(_image((2, 1, 6, 5)))
    _refused(InvalidInputError, "3 channel", y, model=GaussianPrior(channels=3))
    assert R.run(GaussianPrior(channels=1), y, _mask()).shape == (2, 1, 6, 5)


def test_an_image_passed_as_y_to_sr_is_refused():
    op = invkit.operator("sr_avgpool", scale=2).double()
    model = GaussianPrior(image_size=8)
    image = _image((1, 3, 8, 8))  # the full-size image, not its 4×4 measurement
    _refused(InvalidInputError, r"16×16.*trained at 8×8.*op\.A\(x\).*allow_any_size=True", image, op=op, model=model)
    assert R.run(model, op.A(image), op).shape == (1, 3, 8, 8)  # the measurement is fine
    # on purpose: run the size-8 backbone at 16×16
    assert R.run(model, image, op, allow_any_size=True).shape == (1, 3, 16, 16)


def test_size_multiple_and_size_agnostic_backbones():
    op = invkit.operator("denoise")
    y = _image((1, 3, 6, 10))
    _refused(InvalidInputError, "multiple of 4", y, op=op, model=GaussianPrior(image_size=8, size_multiple=4),
             allow_any_size=True)  # fmt: skip
    _refused(InvalidInputError, "multiple of 4", y, op=op, model=GaussianPrior(size_multiple=4))
    assert R.run(GaussianPrior(image_size=8, size_multiple=2), y, op, allow_any_size=True).shape == y.shape
    assert R.run(GaussianPrior(image_size=None), y, op).shape == y.shape  # size-agnostic
    with pytest.raises(InvalidInputError, match="True or False"):
        R.run(GaussianPrior(), y, op, allow_any_size="yes")


def test_x_T_must_have_x_shape():
    y = _mask().A(_image())
    _refused(InvalidInputError, "x's shape", y, x_T=torch.zeros(2, 3, 6, 4, dtype=torch.float64))
    _refused(InvalidInputError, "x_T contains NaN", y, x_T=torch.full((2, 3, 6, 5), float("nan")))
    _refused(InvalidDTypeError, "x_T", y, x_T=torch.zeros(2, 3, 6, 5, dtype=torch.int64))


# -- value range ----------------------------------------------------------------------------------------------------
def test_y_in_0_255_is_refused():
    x = _image((2, 3, 6, 5), lo=0, hi=255)
    _refused(InvalidInputError, r"\[0, 255\].*127\.5", _mask().A(x))
    assert torch.isfinite(R.run(GaussianPrior(), _mask().A(x), _mask(), check_range=False)).all()


def test_y_in_0_1_is_refused():
    x = _image((2, 3, 6, 5), lo=0, hi=1)
    x[:, :, 0, 0] = 0.0  # a black pixel, as photos have
    x[:, :, 1, 1] = 0.004
    _refused(InvalidInputError, r"\[0, 1\].*2·x − 1", _mask().A(x))
    assert torch.isfinite(R.run(GaussianPrior(), _mask().A(x), _mask(), check_range=False)).all()


def test_range_rule_spares_legitimate_inputs():
    mask = _mask()
    bright = _image((2, 3, 6, 5), lo=0.05, hi=1.0)  # a bright [-1, 1] image: all ≥ mid-grey, none near it
    assert torch.isfinite(R.run(GaussianPrior(), mask.A(bright), mask)).all()
    noisy = mask.A(_image()) + 0.3 * torch.randn(2, 3, 6, 5, generator=gen(3), dtype=torch.float64)
    assert torch.isfinite(R.run(GaussianPrior(), noisy, mask)).all()  # σ = 0.3 noise: values beyond ±1
    big = Gain(40.0)  # a large-gain operator: y is far outside [-1, 1] but A⁺y is not
    assert torch.isfinite(R.run(GaussianPrior(), big.A(_image()), big)).all()
    zeros = torch.zeros(2, 3, 6, 5, dtype=torch.float64)  # all mid-grey (the fashion32 sampler's y)
    assert torch.isfinite(R.run(GaussianPrior(), zeros, invkit.operator("denoise"))).all()
    data = _image((2, 3, 6, 5), lo=0, hi=255)  # data that is not an image: value_range=None
    assert torch.isfinite(R.run(GaussianPrior(value_range=None), data, invkit.operator("denoise"))).all()


# -- ε ------------------------------------------------------------------------------------------------------------------
def test_non_finite_eps_stops_the_run_naming_step_and_t():
    op, y = _mask(), _mask().A(_image())
    model = BadAt({600})  # visits 800, 600, 400, 200, 0: step 1 is t = 600
    with pytest.raises(InvalidInputError, match=r"non-finite ε .* generation step 1 \(t = 600\)"):
        R.run(model, y, op)
    assert model.calls == 2  # stopped at once on the CPU
    inv = Recipe(inverter=invkit.DA(), guidance=BackProj(), inversion_steps=5, generation_steps=25)
    with pytest.raises(InvalidInputError, match=r"inversion step 1 \(t = 137\)"):
        inv.run(BadAt({137}), y, op)


def test_eps_of_the_wrong_shape_stops_the_run():
    op, y = _mask(), _mask().A(_image())
    with pytest.raises(InvalidInputError, match=r"ε of shape \(2, 1, 6, 5\) .* generation step 0 \(t = 800\)"):
        R.run(BadAt({800}, shape=True), y, op)


def test_lazy_eps_checks_name_the_first_bad_step():
    """The GPU path: flags stay on the device and are read every few steps, without losing the step."""
    mon = EpsMonitor(torch.device("cuda"))  # only the device type is read: no GPU needed
    assert mon.lazy
    x = torch.zeros(2, 3)
    for k, t in enumerate((900, 700, 500)):
        mon(x * float("nan") if t in (700, 500) else x, x, "generation", k, t)  # no error yet
    with pytest.raises(InvalidInputError, match=r"generation step 1 \(t = 700\)"):
        mon.flush()
    mon2 = EpsMonitor(torch.device("cuda"))
    with pytest.raises(InvalidInputError, match=r"step 3 \(t = 3\)"):
        for k in range(EPS_CHECK_EVERY):  # read back on the EPS_CHECK_EVERY-th call, without a flush
            mon2(x * float("nan") if k == 3 else x, x, "generation", k, k)
    assert k == EPS_CHECK_EVERY - 1


# -- timesteps ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "t, match",
    [
        (-1, "outside"), (1000, r"outside the schedule's range 0\.\.999"), (2.5, "integer"), ("5", "integer"),
        (True, "integer"), (float("nan"), "integer"), (torch.tensor([2.5, 3.0]), "integers"),
        (torch.tensor([3, 1000]), "outside"), (torch.tensor([1, 2, 3]), "shape"), (torch.tensor([True, False]), "integers"),
    ],
)  # fmt: skip
def test_backbones_reject_bad_timesteps(t, match):
    model = NetBackbone(_EpsNet(torch.nn.Conv2d(3, 3, 1)), NoiseSchedule.linear(1000), image_size=None)
    with pytest.raises(InvalidInputError, match=match):
        model(torch.zeros(2, 3, 4, 4), t)


def test_integer_valued_timesteps_are_accepted():
    x = torch.zeros(2, 1)
    for t in (3, 3.0, torch.tensor(3), torch.tensor([3.0, 3.0]), torch.tensor([3, 3], dtype=torch.int32)):
        assert as_timestep_tensor(t, x, 1000).tolist() == [3, 3]


# -- the η rule --------------------------------------------------------------------------------------------------------------
def test_one_generation_eta():
    op = Matrix(random_matrix(3, 8))
    y = op.A(torch.randn(2, 8, generator=gen(1), dtype=torch.float64) * 0.3)
    kw = dict(generation_steps=10, clamp=False)
    # DDRM() follows the recipe's η, so the η the user wrote is the η that runs
    a = Recipe(guidance=DDRM(), eta=0.5, **kw).run(GaussianPrior(), y, op, generator=gen(2))
    b = Recipe(guidance=DDRM(eta=0.5), eta=0.5, **kw).run(GaussianPrior(), y, op, generator=gen(2))
    c = Recipe(guidance=DDRM(), eta=0.85, **kw).run(GaussianPrior(), y, op, generator=gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    for bad in (DDRM(eta=0.85), DDNMPlus(eta=0.3)):
        with pytest.raises(ConfigError, match=r"disagrees.*Recipe\(eta="):
            Recipe(guidance=bad, eta=0.5, **kw)
    with pytest.raises(ConfigError, match="DPS has no generation η"):
        Recipe(guidance=DPS(), eta=0.5, **kw)
    with pytest.raises(ConfigError, match="DPS has no generation η"):
        Recipe(guidance=DPS(), eta=0.8, **kw)  # given explicitly, even at the default value
    r = Recipe(guidance=DPS(), **kw)
    assert r.eta == 0.8 and repr(r.eta) == "0.8" and attrs.evolve(r, generation_steps=3).generation_steps == 3
    # presets
    assert invkit.recipe("ddrm-20", eta=0.5).guidance.eta == 0.5
    with pytest.raises(ConfigError, match="disagrees"):
        invkit.recipe("ddrm-20", guidance=DDRM(eta=0.3))
    with pytest.raises(ConfigError, match="DPS has no generation η"):
        invkit.recipe("dps-250", eta=0.3)


# -- schedules and noise -----------------------------------------------------------------------------------------------------
def test_schedule_and_noise_inputs_are_typed():
    for T in (2.5, 0, True, None):
        with pytest.raises(ConfigError, match="T must be an integer"):
            NoiseSchedule.linear(T)
    with pytest.raises(ConfigError, match="beta_end"):
        NoiseSchedule.linear(1000, beta_end="x")
    with pytest.raises(ConfigError, match="betas"):
        NoiseSchedule(["a", "b"])
    with pytest.raises(InvalidInputError, match=r"-1\.\.999"):
        NoiseSchedule.linear(1000).abar_at(1000)
    with pytest.raises(InvalidDTypeError):
        Gaussian(0.1)(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(InvalidDTypeError, match="real"):
        JPEG()(torch.zeros(1, 3, 8, 8, dtype=torch.complex64))
    with pytest.raises(InvalidInputError, match="no values"):
        JPEG()(torch.zeros(0, 3, 8, 8))
    assert math.isclose(NoiseSchedule.linear(1000).abar_at(-1), 1.0)
