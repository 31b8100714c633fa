"""guided-diffusion ADM UNet: preset sizes and key tree, embedding, attention head order, forward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import invkit
from invkit.errors import InvalidInputError
from invkit_adm import PRESETS
from invkit_adm.model import ADMUNet, qkv_attention, timestep_embedding

SMALL = dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult=(1, 2), attention_resolutions="8",
             num_head_channels=16, learn_sigma=True, resblock_updown=True)


def _meta(name):
    return invkit.backbone(name, device="meta").net


@pytest.mark.parametrize(
    "name, params, keys",
    [
        ("adm-imagenet256-uncond", 552_814_086, 566),
        ("adm-lsun256", 552_814_086, 566),
        ("adm-imagenet256-cond", 553_838_086, 567),
        ("adm-imagenet128", 421_529_606, 493),
        ("adm-imagenet64", 295_904_454, 541),
        ("adm-imagenet512", 558_997_638, 645),
        ("adm-ffhq256", 93_563_910, 362),
    ],
)
def test_preset_sizes_on_meta(name, params, keys):
    net = _meta(name)
    assert all(p.is_meta for p in net.parameters())
    assert sum(p.numel() for p in net.parameters()) == params
    assert len(net.state_dict()) == keys
    assert invkit.backbones_registry.get(name).meta["params"] == params


def test_imagenet256_uncond_key_tree():
    net = _meta("adm-imagenet256-uncond")
    sd = net.state_dict()
    assert sd["input_blocks.0.0.weight"].shape == (256, 3, 3, 3)
    assert sd["time_embed.0.weight"].shape == (1024, 256) and sd["time_embed.2.weight"].shape == (1024, 1024)
    assert "label_emb.weight" not in sd
    for n in (3, 6, 9, 12, 15):  # down-ResBlocks: ResBlock keys, no skip conv
        assert f"input_blocks.{n}.0.in_layers.2.weight" in sd
        assert f"input_blocks.{n}.0.skip_connection.weight" not in sd
    skips_in = sorted(int(k.split(".")[1]) for k in sd if k.startswith("input_blocks") and k.endswith("skip_connection.weight"))
    assert skips_in == [7, 13]
    attn_in = sorted(int(k.split(".")[1]) for k in sd if k.startswith("input_blocks") and k.endswith(".1.qkv.weight"))
    assert attn_in == [10, 11, 13, 14, 16, 17]
    assert sd["input_blocks.10.1.qkv.weight"].shape == (1536, 512, 1)
    assert sd["input_blocks.16.1.proj_out.weight"].shape == (1024, 1024, 1)
    assert net.input_blocks[10][1].heads == 8 and net.input_blocks[13][1].heads == 16
    assert sd["input_blocks.1.0.emb_layers.1.weight"].shape == (512, 1024)  # 2·C for scale-shift
    for leaf in ("in_layers.0.weight", "in_layers.2.weight", "emb_layers.1.bias", "out_layers.0.bias", "out_layers.3.weight"):
        assert f"input_blocks.1.0.{leaf}" in sd
    assert {k.split(".")[1] for k in sd if k.startswith("middle_block.")} == {"0", "1", "2"}
    assert sd["middle_block.1.qkv.weight"].shape == (3072, 1024, 1)
    assert len([k for k in sd if k.startswith("output_blocks") and k.endswith(".0.skip_connection.weight")]) == 18
    assert len([k for k in sd if k.endswith("skip_connection.weight")]) == 20
    assert sd["output_blocks.0.0.in_layers.2.weight"].shape == (1024, 2048, 3, 3)
    assert sd["output_blocks.2.0.in_layers.2.weight"].shape == (1024, 2048, 3, 3)
    assert sd["output_blocks.5.0.in_layers.2.weight"].shape == (1024, 1536, 3, 3)  # skip from input_blocks.12 (512)
    for n, m in ((2, 2), (5, 2), (8, 2), (11, 1), (14, 1)):  # up-ResBlocks
        assert f"output_blocks.{n}.{m}.in_layers.2.weight" in sd
        assert f"output_blocks.{n}.{m}.skip_connection.weight" not in sd
    assert not any(k.startswith("output_blocks.17.1") for k in sd)
    assert sd["out.0.weight"].shape == (256,) and sd["out.2.weight"].shape == (6, 256, 3, 3)


def test_class_cond_and_heads_settings():
    cond = _meta("adm-imagenet256-cond").state_dict()
    assert cond["label_emb.weight"].shape == (1000, 1024)
    net128 = _meta("adm-imagenet128")
    assert {b.heads for b in net128.modules() if hasattr(b, "heads")} == {4}  # num_heads=4, head_ch=-1
    net64 = _meta("adm-imagenet64")
    assert all(not b.legacy for b in net64.modules() if hasattr(b, "legacy"))
    assert all(b.legacy for b in net128.modules() if hasattr(b, "legacy"))
    assert net64.input_blocks[1][0].out_layers[2].p == 0.1
    assert invkit.backbone("adm-imagenet64", device="meta").schedule == invkit.NoiseSchedule.cosine(1000)
    assert invkit.backbone("adm-imagenet256-uncond", device="meta").schedule == invkit.NoiseSchedule.linear(1000)
    norms = [m for m in net64.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.eps == 1e-5 and m.num_groups == 32 for m in norms)


def test_embedding_is_cos_first_with_half_denominator():
    t = torch.tensor([0, 3, 999])
    emb = timestep_embedding(t, 6, torch.float64)
    for b, tv in enumerate(t.tolist()):
        for k in range(3):
            w = math.exp(-math.log(10000.0) * k / 3)
            assert emb[b, k].item() == pytest.approx(math.cos(tv * w), abs=1e-12)
            assert emb[b, 3 + k].item() == pytest.approx(math.sin(tv * w), abs=1e-12)
    assert timestep_embedding(t, 7, torch.float64)[:, -1].abs().sum() == 0


def _reference_attention(qkv, heads, legacy):
    """Per-head attention with explicit channel index sets for q, k, v."""
    b, width, length = qkv.shape
    c = width // (3 * heads)
    out = torch.zeros(b, heads * c, length, dtype=qkv.dtype)
    for h in range(heads):
        if legacy:  # head h owns the contiguous slice [3hc, 3hc + 3c) laid out q | k | v
            qi, ki, vi = (range(3 * h * c + j * c, 3 * h * c + (j + 1) * c) for j in range(3))
        else:  # q | k | v blocks of H·c channels, head h at offset h·c inside each block
            qi, ki, vi = (range(j * heads * c + h * c, j * heads * c + (h + 1) * c) for j in range(3))
        q, k, v = qkv[:, list(qi)], qkv[:, list(ki)], qkv[:, list(vi)]
        logits = torch.einsum("bct,bcs->bts", q, k) / math.sqrt(c)
        w = torch.softmax(logits, dim=-1)
        out[:, h * c:(h + 1) * c] = torch.einsum("bts,bcs->bct", w, v)
    return out


@pytest.mark.parametrize("legacy", [True, False])
def test_attention_head_order(legacy):
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(2, 3 * 3 * 4, 5, generator=g, dtype=torch.float64)  # 3 heads of 4 channels, 5 positions
    got = qkv_attention(qkv, 3, legacy=legacy)
    torch.testing.assert_close(got, _reference_attention(qkv, 3, legacy), rtol=1e-12, atol=1e-12)
    other = qkv_attention(qkv, 3, legacy=not legacy)
    assert not torch.allclose(got, other)  # the two orders really differ on this input


def _small(**kw):
    return invkit.backbone("adm", **{**SMALL, **kw})


def test_forward_shapes_learn_sigma_and_batch():
    bb = _small(seed=0, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 16, 16, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 500, 999])
    with torch.no_grad():
        raw = bb.net(x, t)
        eps = bb(x, t)
        assert raw.shape == (3, 6, 16, 16)
        assert eps.dtype == torch.float64 and eps.shape == (3, 3, 16, 16)
        torch.testing.assert_close(eps, raw[:, :3], rtol=0, atol=0)
        torch.testing.assert_close(bb(x[2:], t[2:]), eps[2:], rtol=1e-10, atol=1e-12)
        assert not torch.allclose(bb(x[2:], 5), eps[2:])


def test_class_conditional_labels():
    bb = _small(class_cond=True, seed=0)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with pytest.raises(InvalidInputError, match="class-conditional"):
            bb(x, 10)
        a = bb(x, 10, y=torch.tensor([1, 2]))
        b = bb(x, 10, y=torch.tensor([1, 7]))
        torch.testing.assert_close(a[0], b[0])
        assert not torch.allclose(a[1], b[1])
        with pytest.raises(InvalidInputError, match="0..999"):
            bb(x, 10, y=1000)
        fixed = _small(class_cond=True, seed=0, class_label=7)
        torch.testing.assert_close(fixed(x[1:], 10), b[1:])
    with pytest.raises(InvalidInputError, match="unconditional"):
        _small(seed=0)(x, 10, y=1)


def test_scale_shift_resblock_matches_manual():
    net = ADMUNet(**SMALL).double()
    from invkit.checkpoint import init_random

    init_random(net, torch.Generator().manual_seed(3))
    block = net.input_blocks[1][0]
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 32, 16, 16, generator=g, dtype=torch.float64)
    emb = torch.randn(2, 128, generator=g, dtype=torch.float64)
    h = F.conv2d(F.silu(F.group_norm(x, 32, block.in_layers[0].weight, block.in_layers[0].bias, 1e-5)),
                 block.in_layers[2].weight, block.in_layers[2].bias, padding=1)
    e = F.linear(F.silu(emb), block.emb_layers[1].weight, block.emb_layers[1].bias)
    scale, shift = e[:, :32, None, None], e[:, 32:, None, None]
    h = F.group_norm(h, 32, block.out_layers[0].weight, block.out_layers[0].bias, 1e-5) * (1 + scale) + shift
    h = F.conv2d(F.silu(h), block.out_layers[3].weight, block.out_layers[3].bias, padding=1)
    torch.testing.assert_close(block(x, emb), x + h, rtol=1e-12, atol=1e-12)


def test_grad_checkpoint_same_gradients():
    plain = _small(seed=0)
    ck = _small(seed=0, grad_checkpoint=True)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    plain(xa, 3).square().sum().backward()
    ck(xb, 3).square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


def test_presets_table_matches_spec_flags():
    cfg = PRESETS["adm-imagenet256-uncond"].config
    assert cfg["num_channels"] == 256 and cfg["num_head_channels"] == 64 and cfg["learn_sigma"]
    assert PRESETS["adm-imagenet64"].schedule == "cosine"
