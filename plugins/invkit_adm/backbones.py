"""The ADM plugin's backbones: guided-diffusion UNets (ImageNet 64/128/256/512, LSUN, DPS FFHQ checkpoints).

Backbones registered:

- ``adm``: the family, built from guided-diffusion's flag names with random weights (``seed=`` or
  ``generator=``) or from a ``checkpoint=``;
- ``adm-imagenet256-uncond``, ``adm-imagenet256-cond``, ``adm-imagenet128``, ``adm-imagenet64``,
  ``adm-imagenet512``, ``adm-lsun256``, ``adm-ffhq256``: the published checkpoints (a local file is
  required; nothing is downloaded).

ε is the first 3 output channels of the learned-sigma nets. Schedules are linear 1e-4..0.02,
T=1000, except the 64×64 model's cosine schedule. Class-conditional backbones take ``y=`` labels
(``model(x, t, y=labels)``), or use ``class_label=`` given when building.
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

from .model import ADMUNet

__all__ = ["ADMUNet", "ADMBackbone", "PRESETS", "adm"]

_OPENAI = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/{}"
_COMMON = dict(learn_sigma=True, use_scale_shift_norm=True, resblock_updown=True, attention_resolutions="32,16,8")
_SOURCE = "OpenAI guided-diffusion (Dhariwal & Nichol 2021), README 'Download pre-trained models'"


@attrs.frozen
class Preset:
    """A published checkpoint: net flags, schedule, file name, where it comes from, parameter count."""

    config: dict[str, Any]
    schedule: str
    checkpoint: str
    url: str
    source: str
    params: int
    description: str


PRESETS: dict[str, Preset] = {
    "adm-imagenet256-uncond": Preset(
        dict(image_size=256, num_channels=256, num_res_blocks=2, num_head_channels=64, **_COMMON),
        "linear", "256x256_diffusion_uncond.pt", _OPENAI.format("256x256_diffusion_uncond.pt"),
        _SOURCE + "; used by DDRM, DDNM, SSD and DPS for ImageNet", 552_814_086,
        "ImageNet 256 unconditional ADM (DDRM/DDNM/SSD/DPS)",
    ),
    "adm-imagenet256-cond": Preset(
        dict(image_size=256, num_channels=256, num_res_blocks=2, num_head_channels=64, class_cond=True, **_COMMON),
        "linear", "256x256_diffusion.pt", _OPENAI.format("256x256_diffusion.pt"), _SOURCE, 553_838_086,
        "ImageNet 256 class-conditional ADM (y= labels)",
    ),
    "adm-imagenet128": Preset(
        dict(image_size=128, num_channels=256, num_res_blocks=2, num_heads=4, class_cond=True, **_COMMON),
        "linear", "128x128_diffusion.pt", _OPENAI.format("128x128_diffusion.pt"), _SOURCE, 421_529_606,
        "ImageNet 128 class-conditional ADM (y= labels)",
    ),
    "adm-imagenet64": Preset(
        dict(image_size=64, num_channels=192, num_res_blocks=3, num_head_channels=64, class_cond=True,
             use_new_attention_order=True, dropout=0.1, **_COMMON),
        "cosine", "64x64_diffusion.pt", _OPENAI.format("64x64_diffusion.pt"), _SOURCE, 295_904_454,
        "ImageNet 64 class-conditional ADM, cosine schedule (y= labels)",
    ),
    "adm-imagenet512": Preset(
        dict(image_size=512, num_channels=256, num_res_blocks=2, num_head_channels=64, class_cond=True, **_COMMON),
        "linear", "512x512_diffusion.pt", _OPENAI.format("512x512_diffusion.pt"), _SOURCE, 558_997_638,
        "ImageNet 512 class-conditional ADM (y= labels)",
    ),
    "adm-lsun256": Preset(
        dict(image_size=256, num_channels=256, num_res_blocks=2, num_head_channels=64, dropout=0.1, **_COMMON),
        "linear", "lsun_bedroom.pt", _OPENAI.format("lsun_bedroom.pt"),
        _SOURCE + "; lsun_cat.pt and lsun_horse.pt (same URL folder) have the same architecture", 552_814_086,
        "LSUN 256 unconditional ADM (bedroom / cat / horse)",
    ),
    "adm-ffhq256": Preset(
        dict(image_size=256, num_channels=128, num_res_blocks=1, num_head_channels=64,
             **{**_COMMON, "attention_resolutions": "16"}),
        "linear", "ffhq_10m.pt", "https://github.com/DPS2022/diffusion-posterior-sampling#pretrained-models",
        "DPS (Chung et al. 2023) FFHQ 256 model; its README links the Google Drive file", 93_563_910,
        "FFHQ 256 unconditional ADM (DPS ffhq_10m.pt)",
    ),
}


class ADMBackbone(NetBackbone):
    """:class:`NetBackbone` for ADM nets: ε is the first ``channels`` outputs; a class-conditional net
    takes ``y=`` labels per call, or falls back to the ``class_label`` given at build time."""

    def __init__(self, net: ADMUNet, schedule: NoiseSchedule, *, autocast: torch.dtype | None = None, class_label: int | None = None):
        super().__init__(
            net, schedule, image_size=net.image_size, channels=net.in_channels, autocast=autocast,
            size_multiple=2 ** (len(net.channel_mult) - 1),  # one ×2 downsampling per level but the last
        )
        if class_label is not None and net.num_classes is None:
            raise InvalidInputError("class_label= is only for class-conditional ADM nets; this one is unconditional")
        self.class_label = class_label

    @property
    def class_cond(self) -> bool:
        return self.net.num_classes is not None

    def forward(self, x: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        if not self.class_cond:
            if y is not None:
                raise InvalidInputError("this ADM backbone is unconditional: it takes no class labels y")
            return super().forward(x, t)
        if y is None:
            y = self.class_label
        if y is None:
            raise InvalidInputError(
                "this ADM backbone is class-conditional: call model(x, t, y=labels) or build it with class_label=..."
            )
        labels = torch.as_tensor(y, dtype=torch.long, device=x.device)
        if labels.ndim == 0:
            labels = labels.expand(x.shape[0])
        if labels.shape != (x.shape[0],):
            raise InvalidInputError(f"class labels y must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
        if labels.min() < 0 or labels.max() >= self.net.num_classes:
            raise InvalidInputError(f"class labels must be in 0..{self.net.num_classes - 1}")
        return super().forward(x, t, y=labels)


def _schedule(kind: str) -> NoiseSchedule:
    return NoiseSchedule.cosine(1000) if kind == "cosine" else NoiseSchedule.linear(1000)


def adm(
    *,
    image_size: int = 64,
    num_channels: int = 128,
    num_res_blocks: int = 2,
    channel_mult: Sequence[float] | str | None = None,
    attention_resolutions: Sequence[int] | str = "16,8",
    num_heads: int = 4,
    num_head_channels: int = -1,
    num_heads_upsample: int = -1,
    learn_sigma: bool = False,
    use_scale_shift_norm: bool = True,
    resblock_updown: bool = False,
    use_new_attention_order: bool = False,
    class_cond: bool = False,
    dropout: float = 0.0,
    in_channels: int = 3,
    schedule: str = "linear",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    channels_last: bool = False,
    compile: bool = False,
    grad_checkpoint: bool = False,
    class_label: int | None = None,
) -> ADMBackbone:
    """guided-diffusion ADM UNet from its flag names; random weights (seed/generator) or a checkpoint."""
    if schedule not in ("linear", "cosine"):
        raise InvalidInputError(f"schedule must be 'linear' or 'cosine', got {schedule!r}")
    cfg = dict(
        image_size=image_size, num_channels=num_channels, num_res_blocks=num_res_blocks, channel_mult=channel_mult,
        attention_resolutions=attention_resolutions, num_heads=num_heads, num_head_channels=num_head_channels,
        num_heads_upsample=num_heads_upsample, learn_sigma=learn_sigma, use_scale_shift_norm=use_scale_shift_norm,
        resblock_updown=resblock_updown, use_new_attention_order=use_new_attention_order, class_cond=class_cond,
        dropout=dropout, in_channels=in_channels, grad_checkpoint=grad_checkpoint,
    )
    net, autocast = build_net(
        lambda: ADMUNet(**cfg), preset="adm", checkpoint=checkpoint, device=device, dtype=dtype,
        generator=generator, seed=seed, channels_last=channels_last, compile=compile,
    )
    return ADMBackbone(net, _schedule(schedule), autocast=autocast, class_label=class_label)


def _preset_factory(name: str):
    preset = PRESETS[name]

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
        class_label: int | None = None,
    ) -> ADMBackbone:
        missing = missing_checkpoint_message(name, preset.checkpoint, preset.source, preset.url)
        net, autocast = build_net(
            lambda: ADMUNet(**preset.config, grad_checkpoint=grad_checkpoint), preset=name, checkpoint=checkpoint,
            device=device, dtype=dtype, generator=generator, seed=seed, missing=missing,
            channels_last=channels_last, compile=compile,
        )
        return ADMBackbone(net, _schedule(preset.schedule), autocast=autocast, class_label=class_label)

    factory.__name__ = name.replace("-", "_")
    factory.__doc__ = f"{preset.description}: guided-diffusion ADM UNet; needs checkpoint={preset.checkpoint!r}."
    return factory


def register_all(register):
    """Register every backbone of the plugin (called by its ``invkit_register_backbones``)."""
    register("adm", adm, description="guided-diffusion ADM UNet from flag names (random init or checkpoint=)")
    for name, p in PRESETS.items():
        register(name, _preset_factory(name), description=p.description, checkpoint=p.checkpoint, url=p.url, params=p.params)
