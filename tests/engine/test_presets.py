"""Recipe presets: composition, per-task numbers, overrides, and the network calls they really make."""

from __future__ import annotations

import pytest
import torch

import invkit
from invkit import DA, DDIM, DDPM, DDRM, DPS, BackProj, DDNMPlus, NoGuidance, Recipe, StagedBackProj
from invkit.errors import ConfigError, UnknownNameError

from .models import GaussianPrior, Matrix, gen, random_matrix

PRESET_NFE = {
    "ssd-30": 29,
    "ssd-100": 99,
    "ssd+-100": 99,
    "ddnm-30": 30,
    "ddnm-100": 100,
    "ddnm+": 100,
    "ddrm-20": 20,
    "ddrm-30": 30,
    "ddrm-100": 100,
    "dps-250": 250,
    "sdedit": 85,
    "ddim-inversion": 99,
    "da-inversion": 99,
}


def test_registry_lists_every_preset():
    names = set(invkit.recipes())
    assert set(PRESET_NFE) | {"dps", "ssd", "ddnm", "ddrm"} <= names
    for name, nfe in PRESET_NFE.items():
        assert invkit.recipes_registry.get(name).meta["nfe"] == nfe


@pytest.mark.parametrize("name", sorted(PRESET_NFE))
def test_preset_network_calls(name):
    op = Matrix(random_matrix(3, 6))
    y = op.A(torch.randn(2, 6, generator=gen(0), dtype=torch.float64) * 0.3)
    model = GaussianPrior()
    res = invkit.recipe(name, task="sr").run(model, y, op, return_info=True)
    assert res.nfe == model.calls == PRESET_NFE[name]
    assert torch.isfinite(res.x).all()


@pytest.mark.slow
def test_dps_makes_1000_calls():
    op = Matrix(random_matrix(3, 6))
    y = op.A(torch.randn(1, 6, generator=gen(0), dtype=torch.float64) * 0.3)
    model = GaussianPrior()
    res = invkit.recipe("dps", task="inpainting").run(model, y, op, return_info=True)
    assert res.nfe == model.calls == 1000 and model.seen[0] == 999 and model.seen[-1] == 0


def test_ssd_per_task_numbers():
    sr = invkit.recipe("ssd-100", task="sr")
    assert sr == Recipe(inverter=DA(eta=0.4), guidance=BackProj(), t0=550, inversion_steps=15,
                        generation_steps=85, eta=0.8, spacing="uniform", name="ssd-100")  # fmt: skip
    col = invkit.recipe("ssd-30", task="colorization")
    assert (col.t0, col.inverter, col.inversion_steps, col.generation_steps) == (750, DA(eta=0.8), 5, 25)
    assert invkit.recipe("ssd-30") == invkit.recipe("ssd-30", task="sr")
    plus = invkit.recipe("ssd+-100", task="deblur", t_stop=150)
    assert plus.guidance == StagedBackProj(150) and plus.t0 == 550


def test_baseline_compositions():
    ddnm = invkit.recipe("ddnm-100", task="inpainting")
    assert (ddnm.inverter, ddnm.guidance, ddnm.eta, ddnm.clamp, ddnm.spacing, ddnm.t0) == (
        None, BackProj(), 0.85, False, "leading", None)  # fmt: skip
    assert invkit.recipe("ddnm+", sigma_y=0.1).guidance == DDNMPlus(sigma_y=0.1)
    ddrm = invkit.recipe("ddrm-20", task="sr", sigma_y=0.05)
    assert ddrm.guidance == DDRM(sigma_y=0.05, eta=0.85, eta_b=1.0) and ddrm.timesteps()[1][-1] == 950
    assert invkit.recipe("ddrm-30", eta=0.5).guidance.eta == 0.5
    assert invkit.recipe("dps", task="inpainting").guidance == DPS(zeta=0.5)
    assert invkit.recipe("dps-250", task="sr", zeta=1.0).guidance == DPS(zeta=1.0)
    assert invkit.recipe("dps-250").timesteps()[1][:3] == [0, 4, 8]
    assert invkit.recipe("sdedit").inverter == DDPM() and invkit.recipe("sdedit").guidance == NoGuidance()
    assert invkit.recipe("ddim-inversion").inverter == DDIM()
    assert invkit.recipe("da-inversion", task="colorization").inverter == DA(eta=0.8)


def test_overrides_and_families():
    assert invkit.recipe("ssd-100", task="sr", eta=0.0).eta == 0.0
    assert invkit.recipe("ddnm", task="sr", generation_steps=20).generation_steps == 20
    assert invkit.recipe("ddnm-30", travel_length=3, travel_repeat=2).travel_repeat == 2
    s = invkit.recipe("ssd", task="deblur", inversion_steps=4, generation_steps=10)
    assert (s.inversion_steps, s.generation_steps) == (4, 10)
    assert invkit.recipe("ddrm", generation_steps=7).generation_steps == 7
    assert invkit.recipe("dps", generation_steps=50).generation_steps == 50
    for family, kw in (("ddnm", {}), ("ddrm", {}), ("ssd", {"generation_steps": 10})):
        with pytest.raises(ConfigError, match="explicit"):
            invkit.recipe(family, **kw)


def test_bad_preset_requests_are_typed():
    with pytest.raises(UnknownNameError, match="colorization"):
        invkit.recipe("ssd-100", task="superres")
    with pytest.raises(ConfigError, match="sigma_y"):
        invkit.recipe("ssd-100", sigma_y=0.1)  # SSD has no noise parameter
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        invkit.recipe("ssd-30", eta=2.0)
    with pytest.raises(ConfigError, match="not both"):
        invkit.recipe("ddrm-20", guidance=BackProj(), sigma_y=0.1)
    with pytest.raises(UnknownNameError, match="ssd-100"):
        invkit.recipe("ssd-1000")
