"""The task → operator mapping, the per-image masks and the per-image seeds."""

from __future__ import annotations

import math

import pytest
import torch

import invkit
from invkit import evaluation as ev
from invkit.errors import ConfigError, UnknownNameError

D = torch.float64
SHAPE = (1, 32, 32)


def _x(n: int, shape=SHAPE, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=D) * 2 - 1


def _op(name: str, idx=(0, 1), shape=SHAPE, seed: int = 0):
    return ev.get_task(name).build(shape, ev.image_generators(seed, list(idx), "operator")).double()


@pytest.mark.parametrize(
    "name, reference, y_hw",
    [
        ("sr2", ("sr_bicubic", {"scale": 2}), (16, 16)),
        ("sr4", ("sr_bicubic", {"scale": 4}), (8, 8)),
        ("deblur", ("deblur_gauss", {"kernel_size": 9, "sigma": 1.5}), (32, 32)),
        ("deblur-ddrm", ("deblur_gauss_ddrm", {"kernel_size": 9, "sigma": 15, "channels": 1}), (32, 32)),
        ("denoise", ("denoise", {}), (32, 32)),
    ],
)
def test_task_is_the_documented_operator(name, reference, y_hw):
    x = _x(2)
    op = _op(name)
    ref = invkit.operator(reference[0], **reference[1]).double()
    y = op.A(x)
    assert y.shape == (2, 1, *y_hw)
    assert torch.allclose(y, ref.A(x), atol=1e-12)
    assert torch.allclose(op.A(op.pinv(y)), y, atol=1e-8)  # A A⁺ y = y: every recipe can use it


def test_deblur_is_close_to_a_true_gaussian_blur():
    # a smooth image away from the border: the rank-truncated blur ≈ conv with the 9-tap σ=1.5 kernel
    t = torch.arange(9, dtype=D) - 4
    w = torch.exp(-(t**2) / (2 * 1.5**2))
    w = w / w.sum()
    yy, xx = torch.meshgrid(torch.arange(32, dtype=D), torch.arange(32, dtype=D), indexing="ij")
    x = (torch.sin(xx / 3) * torch.cos(yy / 4)).reshape(1, 1, 32, 32)
    blurred = torch.nn.functional.conv2d(x, (w[:, None] * w[None, :])[None, None], padding=4)
    y = _op("deblur", idx=(0,)).A(x)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    assert (y - blurred)[inner].abs().max() < 0.02
    assert (y - x)[inner].abs().max() > 0.1  # and it does blur


def test_box_mask_hides_half_of_each_side_at_a_position_per_image():
    idx = list(range(12))
    op = _op("inpaint-box", idx=idx)
    mask = op.A(torch.ones(len(idx), *SHAPE, dtype=D))[:, 0]
    corners = set()
    for m in mask:
        hidden = (m == 0).nonzero()
        assert hidden.shape[0] == 16 * 16
        top, left = hidden.min(0).values.tolist()
        assert (m[top : top + 16, left : left + 16] == 0).all()
        corners.add((top, left))
    assert len(corners) > 6  # drawn per image, not one box for all


def test_random_mask_keeps_half_of_the_pixels():
    op = _op("inpaint-random", idx=range(20))
    x = _x(20)
    mask = op.A(torch.ones_like(x))
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(op.A(x), x * mask)
    kept = mask.mean().item()
    assert abs(kept - 0.5) < 4 * math.sqrt(0.25 / mask.numel())  # 4 standard deviations
    assert not torch.equal(mask[0], mask[1])


@pytest.mark.parametrize("task", ["inpaint-box", "inpaint-random"])
def test_a_mask_depends_only_on_seed_and_image_index(task):
    ones = torch.ones(3, *SHAPE, dtype=D)
    batch = _op(task, idx=(5, 6, 7)).A(ones)
    alone = _op(task, idx=(6,)).A(ones[:1])
    assert torch.equal(batch[1], alone[0])
    other_seed = _op(task, idx=(6,), seed=1).A(ones[:1])
    assert not torch.equal(alone, other_seed)


def test_colorization_needs_rgb():
    with pytest.raises(ConfigError, match="RGB"):
        ev.get_task("colorization").build(SHAPE)
    op = ev.get_task("colorization").build((3, 8, 8)).double()
    assert op.A(_x(2, (3, 8, 8))).shape == (2, 1, 8, 8)


def test_unknown_task_lists_the_tasks():
    with pytest.raises(UnknownNameError, match="sr4") as exc:
        ev.get_task("sr3")
    assert "Did you mean" in str(exc.value)


def test_image_seeds_are_distinct_and_stable():
    seeds = {ev.image_seed(0, i, s) for i in range(500) for s in ev.STREAMS}
    assert len(seeds) == 500 * len(ev.STREAMS)
    assert all(0 <= s < 2**63 for s in seeds)
    assert ev.image_seed(3, 7, "noise") == ev.image_seed(3, 7, "noise")
    assert ev.image_seed(3, 7, "noise") != ev.image_seed(4, 7, "noise")
    with pytest.raises(ConfigError):
        ev.image_seed(0, 1, "nope")


def test_noise_choice():
    sr = ev.get_task("sr4")
    assert isinstance(ev.make_noise(sr), invkit.NoNoise)
    assert ev.make_noise(sr, sigma=0.1) == invkit.Gaussian(0.1)
    assert ev.make_noise(sr, jpeg=60) == invkit.JPEG(60)
    assert ev.make_noise(ev.get_task("denoise")).sigma > 0  # denoising without noise would be trivial
    with pytest.raises(ConfigError):
        ev.make_noise(sr, sigma=0.1, jpeg=60)


def test_method_syntax():
    m = ev.parse_method("ssd:inversion_steps=3,generation_steps=17,eta=0.5")
    assert (m.name, dict(m.overrides)) == ("ssd", {"inversion_steps": 3, "generation_steps": 17, "eta": 0.5})
    r = m.build(ev.get_task("sr4"), invkit.NoNoise())
    assert (r.inversion_steps, r.generation_steps, r.eta) == (3, 17, 0.5)
    assert ev.parse_method("input").build(ev.get_task("sr4"), invkit.NoNoise()) is None
    for bad in ("ssd:inversion_steps", ":x=1", "ssd:1x=2"):
        with pytest.raises(ConfigError):
            ev.parse_method(bad)
    with pytest.raises(UnknownNameError):
        ev.parse_method("ssd-31").build(ev.get_task("sr4"), invkit.NoNoise())


def test_noise_aware_recipes_are_told_sigma():
    task, noise = ev.get_task("denoise"), invkit.Gaussian(0.1)
    assert ev.parse_method("ddrm-30").build(task, noise).guidance.sigma_y == 0.1
    assert ev.parse_method("ddnm+").build(task, noise).guidance.sigma_y == 0.1
    assert ev.parse_method("ddrm-30:sigma_y=0.3").build(task, noise).guidance.sigma_y == 0.3
    assert ev.parse_method("ddrm-30").build(task, invkit.NoNoise()).guidance.sigma_y == 0.0


def test_sweep_budgets():
    # the paper's SSD splits: 30 = 5 + 25, 100 = 15 + 85
    assert ev.sweep_steps("ssd", 30) == {"inversion_steps": 5, "generation_steps": 25}
    assert ev.sweep_steps("ssd", 100) == {"inversion_steps": 15, "generation_steps": 85}
    for nfe in ev.SWEEP_NFES:
        s = ev.sweep_steps("ssd", nfe)
        assert s["inversion_steps"] >= 2 and s["inversion_steps"] + s["generation_steps"] == nfe
        assert ev.sweep_steps("ddrm", nfe) == {"generation_steps": nfe}
    assert len(ev.sweep_methods()) == len(ev.SWEEP_FAMILIES) * len(ev.SWEEP_NFES)
    # the SSD-based families split the budget as SSD does
    for fam in ("ssd-inject", "ssd-2m"):
        assert ev.sweep_steps(fam, 30) == ev.sweep_steps("ssd", 30)
    assert ev.sweep_methods(("ssd-inject",), (10,)) == ["ssd-inject:inversion_steps=2,generation_steps=8"]
