"""Safe strict loading: round trips, prefixes, refused pickles, mismatch messages, presets without files."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

import invkit
from invkit.checkpoint import load_state_dict, load_strict, resolve_dtype, save_state_dict, write_atomic
from invkit.errors import CheckpointError, ConfigError, MissingFileError

DDPM = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=16)
ADM = dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult=(1, 2), attention_resolutions="8",
           num_head_channels=16, learn_sigma=True, resblock_updown=True)


def _x():
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))


def _out(bb):
    with torch.no_grad():
        return bb(_x(), torch.tensor([3, 700]))


def test_safetensors_round_trip_is_exact(tmp_path):
    src = invkit.backbone("ddpm", **DDPM, seed=1)
    path = tmp_path / "w.safetensors"
    save_state_dict(src.net.state_dict(), path)
    loaded = invkit.backbone("ddpm", **DDPM, checkpoint=path)
    for k, v in src.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[k], v), k
    torch.testing.assert_close(_out(loaded), _out(src), rtol=0, atol=0)
    other = invkit.backbone("ddpm", **DDPM, seed=2)
    assert not torch.allclose(_out(other), _out(src))


def test_saves_are_atomic_and_readable_by_others(tmp_path):
    path = tmp_path / "w.safetensors"
    save_state_dict({"a": torch.arange(4.0)}, path)
    old = os.umask(0o022)
    try:
        save_state_dict({"a": torch.ones(3)}, path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # safetensors alone would leave 0o600
    assert torch.equal(load_state_dict(path)["a"], torch.ones(3))

    def dies(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, dies)
    assert torch.equal(load_state_dict(path)["a"], torch.ones(3))  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]  # no temporary left


def test_pt_with_module_prefix_and_wrapper(tmp_path):
    src = invkit.backbone("adm", **ADM, seed=1)
    sd = src.net.state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "ddp.pt")
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "wrapped.ckpt")
    for name in ("ddp.pt", "wrapped.ckpt"):
        state = load_state_dict(tmp_path / name)
        assert set(state) == set(sd)
        torch.testing.assert_close(_out(invkit.backbone("adm", **ADM, checkpoint=tmp_path / name)), _out(src), rtol=0, atol=0)


class _Payload:
    """Unpickling this would create a marker file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused_without_running(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    obj = {"weight": torch.zeros(2), "evil": _Payload(marker)}
    if writer == "torch":
        torch.save(obj, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_state_dict(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        invkit.backbone("ddpm", **DDPM, checkpoint=path)
    assert not marker.exists()


def test_non_tensor_entries_and_unknown_format(tmp_path):
    torch.save({"a": torch.zeros(1), "step": 5}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="not tensors"):
        load_state_dict(tmp_path / "mixed.pt")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_state_dict(tmp_path / "w.npz")
    with pytest.raises(MissingFileError, match="does not exist"):
        load_state_dict(tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_state_dict(tmp_path / "bad.safetensors")


def test_class_cond_vs_uncond_message(tmp_path):
    cond = invkit.backbone("adm", **ADM, class_cond=True, seed=0)
    path = tmp_path / "cond.safetensors"
    save_state_dict(cond.net.state_dict(), path)
    uncond = invkit.backbone("adm", **ADM, device="meta").net
    with pytest.raises(CheckpointError) as err:
        load_strict(uncond, load_state_dict(path), preset="adm-imagenet256-uncond")
    msg = str(err.value)
    assert "adm-imagenet256-uncond" in msg and "label_emb" in msg and "class-conditional" in msg
    plain = invkit.backbone("adm", **ADM, seed=0)
    save_state_dict(plain.net.state_dict(), tmp_path / "uncond.safetensors")
    with pytest.raises(CheckpointError, match="unconditional") as err:
        invkit.backbone("adm", **ADM, class_cond=True, checkpoint=tmp_path / "uncond.safetensors")
    assert "missing" in str(err.value)


def test_learn_sigma_message(tmp_path):
    six = invkit.backbone("adm", **ADM, seed=0)
    save_state_dict(six.net.state_dict(), tmp_path / "six.safetensors")
    with pytest.raises(CheckpointError, match="learn_sigma") as err:
        invkit.backbone("adm", **{**ADM, "learn_sigma": False}, checkpoint=tmp_path / "six.safetensors")
    assert "out.2.weight" in str(err.value)


def test_wrong_family_message(tmp_path):
    adm = invkit.backbone("adm", **ADM, seed=0)
    save_state_dict(adm.net.state_dict(), tmp_path / "adm.safetensors")
    with pytest.raises(CheckpointError, match="ADM") as err:
        invkit.backbone("ddpm", **DDPM, checkpoint=tmp_path / "adm.safetensors")
    assert "unexpected keys (first: time_embed" in str(err.value) or "input_blocks" in str(err.value)


def test_preset_without_checkpoint_says_where_to_get_it():
    with pytest.raises(MissingFileError) as err:
        invkit.backbone("ddpm-celebahq256")
    msg = str(err.value)
    assert "celeba_hq.ckpt" in msg and "https://" in msg and "checkpoint=" in msg
    with pytest.raises(MissingFileError, match="256x256_diffusion_uncond.pt"):
        invkit.backbone("adm-imagenet256-uncond")
    spec = invkit.backbones_registry.get("adm-imagenet256-uncond")
    assert spec.meta["checkpoint"] == "256x256_diffusion_uncond.pt" and spec.meta["url"].startswith("https://")
    meta = invkit.backbone("ddpm-celebahq256", device="meta")
    assert sum(p.numel() for p in meta.net.parameters()) == 113_673_219
    with pytest.raises(ConfigError, match="meta"):
        invkit.backbone("ddpm-cifar10-32", device="meta", checkpoint="x.pt")


def test_preset_loads_a_matching_file(tmp_path):
    """A file with the preset's exact keys loads strictly (here the CIFAR-10 architecture, random)."""
    donor = invkit.backbone("ddpm", ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                            dropout=0.1, resolution=32, seed=0)
    path = tmp_path / "model-790000.ckpt"
    torch.save(donor.net.state_dict(), path)
    bb = invkit.backbone("ddpm-cifar10-32", checkpoint=path)
    assert bb.image_size == 32 and bb.schedule == invkit.NoiseSchedule.linear(1000)
    assert torch.equal(bb.net.conv_out.weight, donor.net.conv_out.weight)
    assert not bb.net.training


def test_seeded_init_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = invkit.backbone("ddpm", **DDPM, seed=4)
    b = invkit.backbone("ddpm", **DDPM, generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)
    for k, v in a.net.state_dict().items():
        assert torch.equal(b.net.state_dict()[k], v)
    with pytest.raises(ConfigError, match="not both"):
        invkit.backbone("ddpm", **DDPM, seed=1, generator=torch.Generator())


def test_dtypes():
    assert resolve_dtype(None) == (torch.float32, None)
    assert resolve_dtype("bf16") == (torch.float32, torch.bfloat16)
    assert resolve_dtype(torch.float64) == (torch.float64, None)
    with pytest.raises(ConfigError):
        resolve_dtype("int8")
    f32 = invkit.backbone("ddpm", **DDPM, seed=0)
    f64 = invkit.backbone("ddpm", **DDPM, seed=0, dtype="float64")
    assert f64.net.conv_in.weight.dtype == torch.float64
    x = _x()
    with torch.no_grad():
        ref = f64(x.double(), 10)
        torch.testing.assert_close(f32(x, 10).double(), ref, rtol=1e-4, atol=1e-5)
        bf = invkit.backbone("ddpm", **DDPM, seed=0, dtype=torch.bfloat16)
        out = bf(x, 10)
    assert out.dtype == torch.float32 and bf.net.conv_in.weight.dtype == torch.float32
    err = (out.double() - ref).abs().max() / ref.abs().max()
    assert 0 < err < 0.1  # really ran in bfloat16, and still close


def test_channels_last_same_output():
    a = invkit.backbone("ddpm", **DDPM, seed=0)
    b = invkit.backbone("ddpm", **DDPM, seed=0, channels_last=True)
    assert b.net.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(_out(b), _out(a), rtol=1e-4, atol=1e-5)
