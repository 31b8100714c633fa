"""ddim-repo DDPM <-> diffusers UNet2DModel: rename table, and equal outputs both ways."""

from __future__ import annotations

import json

import pytest
import torch

import invkit
from invkit.checkpoint import init_random
from invkit_ddpm.diffusers_interop import (
    diffusers_config,
    diffusers_to_ddpm,
    ddpm_to_diffusers,
    from_diffusers,
    to_diffusers,
)
from invkit_ddpm.model import DDPMUNet

CFG = dict(ch=32, out_ch=3, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=16)


def _meta_sd(**cfg):
    with torch.device("meta"):
        return DDPMUNet(**cfg).state_dict()


def test_rename_table_and_round_trip_without_diffusers():
    sd = _meta_sd(**CFG)
    d = to_diffusers(sd)
    assert len(d) == len(sd)
    # up index reversed: 3 levels, so up.0 -> up_blocks.2
    assert d["up_blocks.2.resnets.1.conv_shortcut.weight"] is sd["up.0.block.1.nin_shortcut.weight"]
    assert d["up_blocks.0.upsamplers.0.conv.weight"] is sd["up.2.upsample.conv.weight"]
    assert "up_blocks.2.upsamplers.0.conv.weight" not in d  # level 0 has no upsample
    assert d["down_blocks.1.attentions.0.to_q.weight"].shape == (64, 64)  # (C,C,1,1) -> (C,C)
    assert "down_blocks.1.attentions.0.to_out.0.bias" in d and "down_blocks.1.attentions.0.group_norm.weight" in d
    assert d["down_blocks.0.downsamplers.0.conv.weight"] is sd["down.0.downsample.conv.weight"]
    assert d["mid_block.attentions.0.to_v.bias"] is sd["mid.attn_1.v.bias"]
    assert d["mid_block.resnets.1.time_emb_proj.weight"] is sd["mid.block_2.temb_proj.weight"]
    assert d["time_embedding.linear_2.bias"] is sd["temb.dense.1.bias"]
    assert d["conv_norm_out.weight"] is sd["norm_out.weight"]
    back = from_diffusers(d)
    assert set(back) == set(sd) and all(back[k].shape == sd[k].shape for k in sd)
    # old diffusers attention names (query/key/value/proj_attn) are accepted too
    old = {k.replace("to_q", "query").replace("to_k", "key").replace("to_v", "value").replace("to_out.0", "proj_attn"): v
           for k, v in d.items()}
    assert set(from_diffusers(old)) == set(sd)


def test_celebahq_config_matches_hub_layout():
    cfg = diffusers_config(ch=128, out_ch=3, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2, attn_resolutions=(16,), resolution=256)
    assert cfg["block_out_channels"] == (128, 128, 256, 256, 512, 512)
    assert cfg["down_block_types"] == ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D")
    assert cfg["up_block_types"] == ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4
    assert cfg["freq_shift"] == 1 and cfg["flip_sin_to_cos"] is False and cfg["downsample_padding"] == 0


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 16, 16, generator=g), torch.tensor([5, 637])


def test_ddpm_to_diffusers_same_outputs():
    pytest.importorskip("diffusers")
    net = DDPMUNet(**CFG).eval()
    init_random(net, torch.Generator().manual_seed(1))
    unet = ddpm_to_diffusers(net).eval()
    x, t = _inputs()
    with torch.no_grad():
        ref = net(x, t)
        got = unet(x, t).sample
    assert ref.abs().max() > 0.05
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)


def test_diffusers_to_ddpm_and_folder_backbone(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    unet = diffusers.UNet2DModel(**diffusers_config(**CFG)).eval()
    init_random(unet, torch.Generator().manual_seed(2))  # diffusers' own init uses the global RNG
    net = diffusers_to_ddpm(unet)
    x, t = _inputs()
    with torch.no_grad():
        ref = unet(x, t).sample
        torch.testing.assert_close(net(x, t), ref, rtol=0, atol=1e-5)
    folder = tmp_path / "pipe"
    unet.save_pretrained(folder / "unet")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"})
    )
    bb = invkit.backbone("diffusers", path=folder)
    assert bb.schedule == invkit.NoiseSchedule.linear(1000) and bb.image_size == 16
    with torch.no_grad():
        torch.testing.assert_close(bb(x, t), ref, rtol=0, atol=1e-6)
    with pytest.raises(invkit.MissingFileError, match="config.json"):
        invkit.backbone("diffusers", path=tmp_path / "empty")


def test_full_celebahq_conversion_matches_diffusers_keys_and_shapes():
    diffusers = pytest.importorskip("diffusers")
    cfg = dict(ch=128, out_ch=3, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2, attn_resolutions=(16,), resolution=256)
    ours = to_diffusers(_meta_sd(**cfg))
    with torch.device("meta"):
        theirs = diffusers.UNet2DModel(**diffusers_config(**cfg)).state_dict()
    assert set(ours) == set(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert sum(v.numel() for v in theirs.values()) == 113_673_219
