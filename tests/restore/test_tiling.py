"""Tiled restoration (mask-shift): the plan, the tile operator's exact algebra, consistency, seams."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import invkit
from invkit.errors import CapabilityError, ConfigError
from invkit.models import NetBackbone
from invkit.restoration import TileOperator, prepare, restore, restore_batch, seam_stats, tile_plan
from invkit.schedule import NoiseSchedule

FAST = "ssd:inversion_steps=2,generation_steps=3"


class _Eps(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            self.conv.weight.copy_(0.2 * torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.zero_()

    def forward(self, x, t):
        return self.conv(x) * (0.5 + t.to(x.dtype).reshape(-1, 1, 1, 1) / 1000)


def tiny(channels: int = 1, image_size: int | None = 16, multiple: int = 4) -> NetBackbone:
    model = NetBackbone(_Eps(channels), NoiseSchedule.linear(1000), image_size=image_size, channels=channels)
    model.net.size_multiple = multiple
    return model


def rand(shape, seed=0, dtype=torch.float32):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1).to(dtype)


def test_plan_covers_the_grid_in_raster_order():
    plan = tile_plan((56, 40), 16, 4)
    covered = torch.zeros(56, 40, dtype=torch.int64)
    free = torch.zeros(56, 40, dtype=torch.int64)
    for t in plan:
        assert (t.height, t.width) == (16, 16)
        covered[t.top : t.top + 16, t.left : t.left + 16] += 1
        free[t.top + t.overlap_h : t.top + 16, t.left + t.overlap_w : t.left + 16] += 1
        # the overlap strips were restored by earlier tiles
        assert t.overlap_h == 0 or t.top > 0
    assert bool((covered >= 1).all())
    assert bool((free == 1).all())  # each pixel is new in exactly one tile
    assert [(t.top, t.left) for t in plan][:4] == [(0, 0), (0, 12), (0, 24), (12, 0)]
    last = plan[-1]  # the last tile ends at the edge, so its overlap is larger
    assert (last.top, last.left, last.overlap_h, last.overlap_w) == (40, 24, 12, 4)
    (one,) = tile_plan((8, 8), 16, 4)
    assert (one.height, one.width, one.overlap_h, one.overlap_w) == (8, 8, 0, 0)
    with pytest.raises(ConfigError):
        tile_plan((8, 8), 4, 4)


@pytest.mark.parametrize("name,params,scale,C", [
    ("sr_bicubic", {"scale": 4}, 4, 1),
    ("sr_avgpool", {"scale": 2}, 2, 3),
    ("colorization", {}, 1, 3),
    ("denoise", {}, 1, 1),
])  # fmt: skip
def test_tile_operator_is_exact(name, params, scale, C):
    free = invkit.operator(name, **params)
    oh, ow = 4, 8
    shape = (C, 16, 16)
    y_free_shape = tuple(free.A(torch.zeros(1, C, 16 - oh, 16 - ow, dtype=torch.float64)).shape[1:])
    op = TileOperator(free, shape, (oh, ow), y_free_shape)
    x = rand((2,) + shape, seed=1, dtype=torch.float64)
    y = op.A(x)
    assert y.shape == (2, op.n_free + C * (16 * 16 - (16 - oh) * (16 - ow)))
    assert torch.allclose(op.A(op.pinv(y)), y, atol=1e-10)  # A A⁺ y = y on the range
    p = op.pinv(y)
    assert torch.allclose(op.pinv(op.A(p)), p, atol=1e-10)  # A⁺ A A⁺ = A⁺
    z = rand(y.shape, seed=2, dtype=torch.float64)
    lhs, rhs = (op.A(x) * z).sum(), (x * op.AT(z)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10)  # ⟨A x, z⟩ = ⟨x, Aᵀ z⟩
    proj = op.project(rand((2,) + shape, seed=3, dtype=torch.float64), y)
    assert torch.allclose(proj[..., :oh, :], x[..., :oh, :]) and torch.allclose(proj[..., :, :ow], x[..., :, :ow])


@pytest.mark.parametrize("task,shape,C", [
    ("sr4", (1, 14, 10), 1),          # bicubic: a surrogate per tile, then one exact projection
    ("sr8-avgpool", (1, 7, 5), 1),    # block-local: consistent by construction
    ("inpaint-random", (1, 50, 38), 1),
    ("denoise", (1, 50, 38), 1),
    ("colorization", (1, 30, 22), 3),
])  # fmt: skip
def test_tiled_restoration_is_consistent_with_the_given_y(task, shape, C):
    model = tiny(C)
    if task == "inpaint-random":
        job = prepare(rand(shape, seed=4), task, backbone=model, mode="degrade")
    else:
        job = prepare(rand(shape, seed=4), task, backbone=model, noise_sigma=0.0 if task == "denoise" else None)
    (res,) = restore_batch([job], model, FAST, tile=16)
    assert res.info["tile"] == 16 and res.info["tiles"] > 1
    assert any("tiles" in n for n in res.notes)
    assert res.consistency < 1e-5 * max(1.0, float(job.y.norm()))
    # only bicubic needs the final projection: the others are consistent tile by tile
    assert res.info.get("final_projection", False) == (task == "sr4")


def test_auto_tiles_only_well_beyond_the_training_size():
    model = tiny(image_size=8, multiple=4)  # fully convolutional: whole up to 4 × 8 = 32 px
    whole = restore(rand((1, 8, 8)), "sr4", recipe=FAST, backbone=model, return_info=True)
    assert whole.x.shape == (1, 32, 32) and whole.info["tile"] is None
    big = restore(rand((1, 9, 4)), "sr4", recipe=FAST, backbone=model, return_info=True)
    assert big.info["tile"] == 32 and big.info["overlap"] == 8 and big.info["tiles"] == 2
    fixed = tiny(image_size=8, multiple=8)  # runs at 8 px only: every larger output is tiled
    assert restore(rand((1, 3, 2)), "sr4", recipe=FAST, backbone=fixed, return_info=True).info["tile"] == 8
    free = restore(rand((1, 5, 4)), "sr4", recipe=FAST, backbone=tiny(image_size=None), return_info=True)
    assert free.info["tile"] is None  # a size-agnostic backbone is never tiled by default
    assert restore(rand((1, 5, 4)), "sr4", recipe=FAST, backbone=model, tile="off", return_info=True).info["tile"] is None
    assert restore(rand((1, 5, 4)), "sr4", recipe=FAST, backbone=model, tile=8, return_info=True).info["tile"] == 8


def test_fashion32_runs_whole_up_to_128_px_and_tiles_beyond():
    y = rand((1, 16, 12), seed=5) * 0.5
    fast = "ssd-30:inversion_steps=2,generation_steps=2"
    res = restore(y, "sr4", recipe=fast, return_info=True)
    assert res.x.shape == (1, 64, 48) and res.info["tile"] is None
    res = restore(rand((1, 33, 8), seed=6) * 0.5, "sr4", recipe=fast, return_info=True)
    assert res.x.shape == (1, 132, 32) and res.info["padded"] == [136, 32]
    assert res.info["tile"] == 128 and res.info["overlap"] == 32 and res.info["tiles"] == 2
    assert res.consistency < 1e-5 * max(1.0, float(res.y.norm()))


def test_tiling_refused_where_it_cannot_be_exact():
    model = tiny()
    y = rand((1, 20, 20))
    with pytest.raises(CapabilityError, match="tile='off'"):
        restore(y, "deblur", recipe=FAST, backbone=model, tile=8)
    res = restore(rand((1, 40, 40)), "deblur", recipe=FAST, backbone=tiny(image_size=8, multiple=4), return_info=True)
    assert res.info["tile"] is None and any("not tiled" in n for n in res.notes)
    with pytest.raises(ConfigError, match="multiple"):
        restore(rand((1, 6, 6)), "sr4", recipe=FAST, backbone=model, tile=10)
    with pytest.raises(ConfigError):
        restore(rand((1, 6, 6)), "sr4", recipe=FAST, backbone=model, tile="big")
    with pytest.raises(ConfigError, match="overlap"):
        restore_batch([prepare(rand((1, 6, 6)), "sr4", backbone=model)], model, FAST, tile=8, overlap=3)


def test_seam_stats_sees_a_seam():
    H, W = 40, 40
    smooth = torch.linspace(0, 1, W).repeat(H, 1)[None]
    s = seam_stats(smooth, 16, 4)
    assert abs(s["ratio"] - 1) < 1e-6 and s["n_border"] > 0
    seamed = smooth.clone()
    seamed[..., :, 16:] += 0.5  # a jump at the first column border (the end of tile 0)
    s = seam_stats(seamed, 16, 4)
    assert s["ratio"] > 10
    assert seam_stats(seamed, 16, 0)["ratio"] > 10  # tiles without overlap meet at 16, 32


def test_spectral_recipes_are_told_how_to_tile():
    with pytest.raises(CapabilityError, match="tile='off'"):
        restore(rand((1, 6, 6)), "sr4", recipe="ddrm:generation_steps=2", backbone=tiny(), tile=8)
