"""The ddim-repo DDPM UNet: key tree, parameter counts, embedding, padding, attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from invkit_ddpm.model import AttnBlock, DDPMUNet, Downsample, timestep_embedding

CELEBA = dict(ch=128, out_ch=3, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2, attn_resolutions=(16,), resolution=256)
CIFAR = dict(ch=128, out_ch=3, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1, resolution=32)
SMALL = dict(ch=32, out_ch=1, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=32, in_channels=1)


def _meta(**cfg):
    with torch.device("meta"):
        return DDPMUNet(**cfg)


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_celebahq_counts_and_key_tree():
    sd = _meta(**CELEBA).state_dict()
    assert _count(_meta(**CELEBA)) == 113_673_219
    assert len(sd) == 450
    # spec §2.2 key tree
    for key in [
        "temb.dense.0.weight", "temb.dense.1.bias", "conv_in.weight", "norm_out.weight", "conv_out.bias",
        "down.0.block.0.norm1.weight", "down.0.block.1.conv2.weight", "down.5.block.1.temb_proj.weight",
        "down.4.attn.0.q.weight", "down.4.attn.1.proj_out.bias", "down.4.downsample.conv.weight",
        "mid.block_1.norm2.bias", "mid.attn_1.k.weight", "mid.block_2.conv1.weight",
        "up.0.block.2.nin_shortcut.weight", "up.4.attn.2.v.bias", "up.5.upsample.conv.weight",
        "up.1.upsample.conv.weight",
    ]:
        assert key in sd, key
    assert not any(k.startswith("down.5.downsample") or k.startswith("up.0.upsample") for k in sd)
    assert {k.split(".")[1] for k in sd if k.startswith(("down.", "up.")) and ".attn." in k} == {"4"}
    assert not any("conv_shortcut" in k for k in sd)
    assert sd["temb.dense.0.weight"].shape == (512, 128)
    assert sd["down.4.attn.0.q.weight"].shape == (512, 512, 1, 1)
    # up is indexed by resolution level: level 5 (8 px, 512 ch) takes 1024 -> 512 on its first block,
    # level 0's last block takes the conv_in skip (128 + 128).
    assert sd["up.5.block.0.conv1.weight"].shape == (512, 1024, 3, 3)
    assert sd["up.0.block.2.conv1.weight"].shape == (128, 256, 3, 3)
    assert sd["up.2.block.2.conv1.weight"].shape == (256, 256 + 128, 3, 3)
    assert sd["conv_out.weight"].shape == (3, 128, 3, 3)


def test_cifar10_and_celeba64_counts():
    assert _count(_meta(**CIFAR)) == 35_746_307
    assert len(_meta(**CIFAR).state_dict()) == 328
    assert _count(_meta(ch=128, out_ch=3, ch_mult=(1, 2, 2, 2, 4), num_res_blocks=2,
                        attn_resolutions=(16,), resolution=64)) == 78_700_803


def test_groupnorm_eps_is_1e_6():
    net = _meta(**SMALL)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.eps == 1e-6 and m.num_groups == 32 for m in norms)


def test_embedding_is_sin_first_with_half_minus_one_denominator():
    t = torch.tensor([0, 1, 7, 999], dtype=torch.long)
    emb = timestep_embedding(t, 8, torch.float64)
    half = 4
    for b, tv in enumerate(t.tolist()):
        for k in range(half):
            w = math.exp(-math.log(10000.0) * k / (half - 1))
            assert emb[b, k].item() == pytest.approx(math.sin(tv * w), abs=1e-12)
            assert emb[b, half + k].item() == pytest.approx(math.cos(tv * w), abs=1e-12)
    # the last frequency is exactly 1e-4 (with denominator `half` it would be 10000^(-3/4))
    assert emb[3, 3].item() == pytest.approx(math.sin(999 * 1e-4), abs=1e-12)
    odd = timestep_embedding(t, 9, torch.float64)
    assert odd.shape == (4, 9) and torch.all(odd[:, -1] == 0)


def test_downsample_pads_right_and_bottom_only():
    down = Downsample(1, with_conv=True).double()
    with torch.no_grad():
        down.conv.weight.zero_()
        down.conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left tap of each 3x3 window
        down.conv.bias.zero_()
        x = torch.arange(1.0, 17.0, dtype=torch.float64).reshape(1, 1, 4, 4)
        out = down(x)
        assert out.shape == (1, 1, 2, 2)
        # windows start at (0,0), (0,2), (2,0), (2,2): no padding on the top/left
        assert out[0, 0].tolist() == [[1.0, 3.0], [9.0, 11.0]]
        down.conv.weight.zero_()
        down.conv.weight[0, 0, 2, 2] = 1.0  # bottom-right tap: lands in the zero padding at the edge
        out = down(x)
        assert out[0, 0].tolist() == [[11.0, 0.0], [0.0, 0.0]]


def test_attention_matches_independent_single_head_computation():
    g = torch.Generator().manual_seed(0)
    attn = AttnBlock(32).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    x = torch.randn(2, 32, 3, 5, generator=g, dtype=torch.float64)
    h = F.group_norm(x, 32, attn.norm.weight, attn.norm.bias, eps=1e-6)
    flat = h.flatten(2).transpose(1, 2)  # (B, HW, C)

    def lin(conv):
        return flat @ conv.weight[:, :, 0, 0].T + conv.bias

    ref = F.scaled_dot_product_attention(lin(attn.q), lin(attn.k), lin(attn.v))  # one head, scale C^-1/2
    ref = ref @ attn.proj_out.weight[:, :, 0, 0].T + attn.proj_out.bias
    ref = x + ref.transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(attn(x), ref, rtol=1e-12, atol=1e-12)


def test_small_forward_shapes_batch_and_float64():
    g = torch.Generator().manual_seed(1)
    net = DDPMUNet(**SMALL).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.05)
    x = torch.randn(3, 1, 32, 32, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 400, 999])
    with torch.no_grad():
        out = net(x, t)
        assert out.shape == (3, 1, 32, 32) and out.dtype == torch.float64
        # batch independence: sample 1 alone gives the same output
        torch.testing.assert_close(net(x[1:2], t[1:2]), out[1:2], rtol=1e-10, atol=1e-12)
        # the timestep matters
        assert not torch.allclose(net(x[1:2], t[:1]), out[1:2])


def test_grad_checkpoint_changes_nothing():
    g = torch.Generator().manual_seed(2)
    net = DDPMUNet(**SMALL, grad_checkpoint=False)
    ck = DDPMUNet(**SMALL, grad_checkpoint=True)
    ck.load_state_dict(net.state_dict())
    x = torch.randn(1, 1, 32, 32, generator=g)
    t = torch.tensor([10])
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    net(xa, t).square().sum().backward()
    ck(xb, t).square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
