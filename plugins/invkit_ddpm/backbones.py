"""The DDPM plugin's backbones: the ddim-repo UNet family, its published checkpoints, the diffusers adapter.

Backbones registered:

- ``ddpm``: the family, built from the ddim config names with random weights (``seed=`` or
  ``generator=``) or from a ``checkpoint=``;
- ``ddpm-celebahq256``, ``ddpm-lsun-church256``, ``ddpm-lsun-bedroom256``, ``ddpm-lsun-cat256``,
  ``ddpm-cifar10-32``: the published checkpoints (a local file is required; nothing is downloaded);
- ``diffusers``: a local diffusers ``UNet2DModel`` folder (needs the ``diffusers`` extra).

Every one is a :class:`invkit.backbone.NetBackbone` over a linear schedule 1e-4..0.02, T=1000;
``backbone.net`` is the module whose ``state_dict`` has the checkpoint's keys.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import attrs
import torch

from invkit.models import NetBackbone
from invkit.checkpoint import build_net, missing_checkpoint_message
from invkit.errors import InvalidInputError
from invkit.schedule import NoiseSchedule

from .model import DDPMUNet

__all__ = ["DDPMUNet", "PRESETS", "ddpm"]

_BIG = dict(ch=128, out_ch=3, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2, attn_resolutions=(16,), dropout=0.0, resolution=256)
_HEIBOX = "https://heibox.uni-heidelberg.de/f/{}/?dl=1"
_PESSER = (
    "pesser's PyTorch conversion of Ho et al.'s EMA weights (the ddim repo's functions/ckpt_util.py "
    "downloads it as {})"
)

@attrs.frozen
class Preset:
    """A published checkpoint: its net config, file name, where it comes from, parameter count."""

    config: dict[str, Any]
    checkpoint: str
    url: str
    source: str
    params: int
    description: str


PRESETS: dict[str, Preset] = {
    "ddpm-celebahq256": Preset(
        _BIG,
        "celeba_hq.ckpt",
        "https://image-editing-test-12345.s3-us-west-2.amazonaws.com/checkpoints/celeba_hq.ckpt",
        "SDEdit's CelebA-HQ 256 DDPM, also used by DDRM, DDNM and SSD; if the S3 link is denied, a mirror "
        "is https://huggingface.co/gwang-kim/DiffusionCLIP-CelebA_HQ (file celeba_hq.ckpt)",
        113_673_219,
        "CelebA-HQ 256 DDPM (SDEdit/DDRM/DDNM/SSD celeba_hq.ckpt)",
    ),
    "ddpm-lsun-church256": Preset(
        _BIG, "model-4432000.ckpt", _HEIBOX.format("44ccb50ef3c6436db52e"),
        _PESSER.format("ema_diffusion_lsun_church_model/model-4432000.ckpt"), 113_673_219,
        "LSUN church 256 DDPM (EMA)",
    ),
    "ddpm-lsun-bedroom256": Preset(
        _BIG, "model-2388000.ckpt", _HEIBOX.format("b95206528f384185889b"),
        _PESSER.format("ema_diffusion_lsun_bedroom_model/model-2388000.ckpt"), 113_673_219,
        "LSUN bedroom 256 DDPM (EMA)",
    ),
    "ddpm-lsun-cat256": Preset(
        _BIG, "model-1761000.ckpt", _HEIBOX.format("0701aac3aa69457bbe34"),
        _PESSER.format("ema_diffusion_lsun_cat_model/model-1761000.ckpt"), 113_673_219,
        "LSUN cat 256 DDPM (EMA)",
    ),
    "ddpm-cifar10-32": Preset(
        dict(ch=128, out_ch=3, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1, resolution=32),
        "model-790000.ckpt", _HEIBOX.format("2e4f01e2d9ee49bab1d5"),
        _PESSER.format("ema_diffusion_cifar10_model/model-790000.ckpt"), 35_746_307,
        "CIFAR-10 32 DDPM (EMA)",
    ),
}


def _wrap(net: DDPMUNet, autocast: torch.dtype | None, channels: int) -> NetBackbone:
    return NetBackbone(
        net, NoiseSchedule.linear(1000), image_size=net.resolution, channels=channels, autocast=autocast,
        size_multiple=2 ** (net.num_resolutions - 1),  # one ×2 downsampling per level but the last
    )


def _int_tuple(value: Sequence[int] | int | str, name: str) -> tuple[int, ...]:
    """A config list given as a sequence, a single int (``8``) or a string (``"16,8"``)."""
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    elif isinstance(value, int):
        value = [value]
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a list of integers (e.g. 16,8), got {value!r}") from None


def ddpm(
    *,
    ch: int = 128,
    out_ch: int = 3,
    ch_mult: Sequence[int] = (1, 1, 2, 2, 4, 4),
    num_res_blocks: int = 2,
    attn_resolutions: Sequence[int] = (16,),
    dropout: float = 0.0,
    resamp_with_conv: bool = True,
    in_channels: int = 3,
    resolution: int = 256,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    channels_last: bool = False,
    compile: bool = False,
    grad_checkpoint: bool = False,
) -> NetBackbone:
    """ddim-repo DDPM UNet from its config names; random weights (seed/generator) or a checkpoint."""
    cfg = dict(
        ch=ch, out_ch=out_ch, ch_mult=_int_tuple(ch_mult, "ch_mult"), num_res_blocks=num_res_blocks,
        attn_resolutions=_int_tuple(attn_resolutions, "attn_resolutions"), dropout=dropout, resamp_with_conv=resamp_with_conv,
        in_channels=in_channels, resolution=resolution, grad_checkpoint=grad_checkpoint,
    )
    net, autocast = build_net(
        lambda: DDPMUNet(**cfg), preset="ddpm", checkpoint=checkpoint, device=device, dtype=dtype,
        generator=generator, seed=seed, channels_last=channels_last, compile=compile,
    )
    return _wrap(net, autocast, channels=min(out_ch, in_channels))


def _preset_factory(name: str):
    preset = PRESETS[name]
    cfg, fname = preset.config, preset.checkpoint

    def factory(
        *,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        channels_last: bool = False,
        compile: bool = False,
        grad_checkpoint: bool = False,
    ) -> NetBackbone:
        missing = missing_checkpoint_message(name, fname, preset.source, preset.url)
        net, autocast = build_net(
            lambda: DDPMUNet(**cfg, grad_checkpoint=grad_checkpoint), preset=name, checkpoint=checkpoint,
            device=device, dtype=dtype, generator=generator, seed=seed, missing=missing,
            channels_last=channels_last, compile=compile,
        )
        return _wrap(net, autocast, channels=3)

    factory.__name__ = name.replace("-", "_")
    factory.__doc__ = f"{preset.description}: ddim-repo DDPM UNet; needs checkpoint={fname!r}."
    return factory


def register_all(register):
    """Register every backbone of the plugin (called by its ``invkit_register_backbones``)."""
    # arch_aliases: how exports of `invkit train` before 0.2 named this architecture
    register("ddpm", ddpm, description="ddim-repo DDPM UNet from config names (random init or checkpoint=)",
             arch_aliases=("invkit_ddpm.model.DDPMUNet",))
    for name, p in PRESETS.items():
        register(name, _preset_factory(name), description=p.description, checkpoint=p.checkpoint, url=p.url, params=p.params)
    from .diffusers_interop import diffusers_backbone

    register("diffusers", diffusers_backbone, description="a local diffusers UNet2DModel folder (path=...)")
