"""Inverter steps (spec ssd.md §2): DA's limits and the paper's worked coefficients."""

from __future__ import annotations

import math

import pytest
import torch

from invkit import DA, DDIM, DDPM
from invkit.errors import ConfigError
from invkit.schedule import NoiseSchedule

from .models import gen

ABAR = NoiseSchedule.linear().abar


def _ab(t: int) -> float:
    return float(ABAR[t])


def _inputs(shape=(3, 5), seed=0):
    g = gen(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 0.4
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    return x, eps


@pytest.mark.parametrize("clamp", [True, False])
def test_da_eta0_is_ddim_bitwise(clamp):
    x, eps = _inputs()
    g1, g2 = gen(7), gen(7)
    a = DA(eta=0.0, clamp=clamp).step(x, eps, _ab(137), _ab(274), g1)
    b = DDIM(clamp=clamp).step(x, eps, _ab(137), _ab(274), g2)
    assert torch.equal(a.x, b.x) and torch.equal(a.x0, b.x0)
    # deterministic: no noise drawn
    assert torch.equal(g1.get_state(), gen(7).get_state())


def test_ddim_inversion_formula():
    x, eps = _inputs()
    a, an = _ab(100), _ab(300)
    out = DDIM(clamp=False).step(x, eps, a, an, gen(0)).x
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    torch.testing.assert_close(out, math.sqrt(an) * x0 + math.sqrt(1 - an) * eps, rtol=0, atol=1e-14)


@pytest.mark.parametrize("t, tn", [(0, 137), (274, 412), (0, 999), (998, 999)])
def test_da_eta1_unclamped_is_forward_step(t, tn):
    x, eps = _inputs(seed=t)
    a, an = _ab(t), _ab(tn)
    b = 1 - an / a
    z = torch.randn(x.shape, generator=gen(3), dtype=torch.float64)
    forward = math.sqrt(1 - b) * x + math.sqrt(b) * z
    da = DA(eta=1.0, clamp=False).step(x, eps, a, an, gen(3)).x
    ddpm = DDPM().step(x, None, a, an, gen(3)).x
    torch.testing.assert_close(da, forward, rtol=0, atol=1e-12)
    torch.testing.assert_close(ddpm, forward, rtol=0, atol=1e-14)


def test_ddpm_needs_no_network():
    assert DDPM.needs_eps is False and DA.needs_eps is True and DDIM.needs_eps is True


@pytest.mark.parametrize(
    "t, tn, expected",
    [  # spec ssd.md §2: t0=550, F=5, eta=0.4, (c_x0, c_eps, c_z)
        (0, 137, (0.904, 0.332, 0.271)),
        (137, 274, (0.677, 0.605, 0.419)),
        (274, 412, (0.419, 0.760, 0.497)),
        (412, 549, (0.215, 0.812, 0.543)),
    ],
)
def test_da_worked_coefficients(t, tn, expected):
    a, an = _ab(t), _ab(tn)
    da = DA(eta=0.4, clamp=False)
    u = torch.full((1, 4), 0.5, dtype=torch.float64)
    e = torch.full((1, 4), 0.7, dtype=torch.float64)
    z = torch.randn((1, 4), generator=gen(5), dtype=torch.float64)
    zero = torch.zeros_like(u)
    noise_only = da.step(zero, zero, a, an, gen(5)).x  # c_z·z
    c_x0 = (da.step(math.sqrt(a) * u, zero, a, an, gen(5)).x - noise_only) / u  # x0 = u, eps = 0
    c_eps = (da.step(math.sqrt(1 - a) * e, e, a, an, gen(5)).x - noise_only) / e  # x0 = 0
    c_z = noise_only / z
    for got, want in zip((c_x0, c_eps, c_z), expected):
        assert torch.allclose(got, torch.full_like(got, want), atol=6e-4), (got, want)


def test_da_clamps_x0():
    x = torch.full((1, 3), 5.0, dtype=torch.float64)
    out = DA(eta=0.0).step(x, torch.zeros_like(x), _ab(10), _ab(20), gen(0))
    assert torch.equal(out.x0, torch.ones_like(x))
    unclamped = DA(eta=0.0, clamp=False).step(x, torch.zeros_like(x), _ab(10), _ab(20), gen(0))
    assert float(unclamped.x0.min()) > 5.0


@pytest.mark.parametrize("eta", [-0.1, 1.5, "0.4", True, float("nan")])
def test_da_rejects_bad_eta(eta):
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        DA(eta=eta)


def test_inverters_are_frozen_values():
    assert DA(eta=0.4) == DA(eta=0.4) and DA(eta=0.4) != DA(eta=0.5)
    with pytest.raises(Exception):
        DA(eta=0.4).eta = 0.5  # type: ignore[misc]
    with pytest.raises(ConfigError, match="True or False"):
        DDIM(clamp="yes")
