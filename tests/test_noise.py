"""Measurement noise: Gaussian statistics and units, reproducibility, JPEG, validation."""

from __future__ import annotations

import attrs
import pytest
import torch

import invkit
from invkit import JPEG, Gaussian, InvalidInputError, Measurement, NoNoise, UniformGaussian


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gaussian_statistics():
    y = torch.zeros(4, 3, 128, 128, dtype=torch.float64)
    out = Gaussian(0.3)(y, generator=gen())
    n = out.numel()
    assert abs(float(out.mean())) < 4 * 0.3 / n**0.5
    assert abs(float(out.std()) / 0.3 - 1) < 4 / (2 * n) ** 0.5  # std of the sample std ≈ σ/√(2n)
    shifted = Gaussian(0.3)(y + 0.5, generator=gen())
    assert torch.allclose(shifted - 0.5, out)  # additive, independent of the signal


def test_units_are_minus_one_to_one():
    assert Gaussian.from_unit_range(0.05).sigma == pytest.approx(0.1)
    assert Gaussian(0.1) == Gaussian.from_unit_range(0.05)


def test_same_seed_same_bits_and_no_global_rng():
    y = torch.zeros(2, 3, 8, 8)
    torch.manual_seed(5)
    expected_global = torch.rand(4)
    torch.manual_seed(5)
    a = Gaussian(0.2)(y, generator=gen(7))
    b = Gaussian(0.2)(y, generator=gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, Gaussian(0.2)(y, generator=gen(8)))
    assert torch.equal(Gaussian(0.2)(y), Gaussian(0.2)(y))  # no generator: a fixed default seed
    UniformGaussian(0.2)(y, generator=gen(1))
    assert torch.equal(torch.rand(4), expected_global)  # torch's global RNG was not touched


def test_zero_sigma_and_no_noise_return_the_measurement():
    y = torch.randn(2, 5, generator=gen())
    assert torch.equal(Gaussian(0.0)(y, generator=gen()), y)
    assert torch.equal(NoNoise()(y), y)


def test_uniform_gaussian_draws_one_sigma_per_sample():
    y = torch.zeros(64, 1, 64, 64, dtype=torch.float64)
    out = UniformGaussian(0.2)(y, generator=gen(3))
    stds = out.reshape(64, -1).std(dim=1)
    assert float(stds.max()) < 0.2 * 1.05
    assert float(stds.min()) < 0.05 and float(stds.max()) > 0.15  # spread over [0, 0.2]
    assert UniformGaussian().sigma is None  # unknown to a solver


def smooth_image(B=2, C=3, H=32, W=48):
    u = torch.linspace(-1, 1, W)
    v = torch.linspace(-1, 1, H)[:, None]
    base = 0.8 * torch.sin(3 * u) * torch.cos(2 * v)
    return torch.stack([base * (c + 1) / C for c in range(C)]).expand(B, C, H, W).clone()


@pytest.mark.parametrize("C", [1, 3])
def test_jpeg_round_trip(C):
    x = smooth_image(C=C)
    out = JPEG(60)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    errors = [float(((JPEG(q)(x) - x) ** 2).mean()) for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def test_jpeg_is_deterministic():
    x = smooth_image()
    assert torch.equal(JPEG(30)(x, generator=gen(1)), JPEG(30)(x, generator=gen(2)))


@pytest.mark.parametrize("quality", [0, 101, 50.5, "60", None])
def test_jpeg_quality_validation(quality):
    with pytest.raises(InvalidInputError, match=r"quality must be an integer in 1\.\.100"):
        JPEG(quality)


def test_jpeg_needs_images():
    with pytest.raises(InvalidInputError, match=r"4 dimensions"):
        JPEG(60)(torch.zeros(3, 8, 8))


@pytest.mark.parametrize("cls", [Gaussian, UniformGaussian])
@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf"), "0.1"])
def test_sigma_validation(cls, sigma):
    with pytest.raises(InvalidInputError, match=r"must be a finite number >= 0"):
        cls(sigma)


def test_noise_parts_are_frozen_values():
    g = Gaussian(0.1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        g.sigma = 0.2
    assert "0.1" in repr(g)


def test_measurement_applies_the_operator_then_the_noise():
    op = invkit.operator("sr_avgpool", scale=2)
    x = torch.randn(2, 3, 8, 8, generator=gen(), dtype=torch.float64)
    y = Measurement(op, Gaussian(0.1)).sample(x, generator=gen(4))
    assert torch.equal(y, Gaussian(0.1)(op.A(x), generator=gen(4)))
    assert torch.equal(Measurement(op).sample(x), op.A(x))
    with pytest.raises(InvalidInputError):
        Measurement(op).sample(torch.zeros(3))
