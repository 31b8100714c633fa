r"""diffusers interop: load a local ``UNet2DModel`` folder as a Backbone, and convert ddim-repo DDPM
checkpoints to and from diffusers naming (``spec/backbones_and_operators.md`` §3).

The conversion is a pure rename plus a reshape of the 1×1 attention convs ``(C, C, 1, 1) ↔ (C, C)``:

=================================  ==========================================================
ddim ``Model``                     diffusers ``UNet2DModel``
=================================  ==========================================================
``temb.dense.0`` / ``.1``          ``time_embedding.linear_1`` / ``linear_2``
``down.i.block.j``                 ``down_blocks.i.resnets.j``
``down.i.attn.j``                  ``down_blocks.i.attentions.j``
``down.i.downsample.conv``         ``down_blocks.i.downsamplers.0.conv``
``up.i.…``                         ``up_blocks.(L−1−i).…`` (index reversed), ``upsample`` → ``upsamplers.0``
``mid.block_1/attn_1/block_2``     ``mid_block.resnets.0 / attentions.0 / resnets.1``
``norm_out``                       ``conv_norm_out``
resnet ``temb_proj/nin_shortcut``  ``time_emb_proj/conv_shortcut``
attn ``norm, q, k, v, proj_out``   ``group_norm, to_q, to_k, to_v, to_out.0``
=================================  ==========================================================

The diffusers side of the table is the current naming; files saved by old diffusers versions use
``query, key, value, proj_attn`` inside attentions, which :func:`from_diffusers` also accepts.
``diffusers`` itself is needed only to build or load a ``UNet2DModel`` (the optional extra
``invkit[diffusers]``); the renames are plain Python.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from invkit.models import Backbone, as_timestep_tensor
from invkit.checkpoint import resolve_dtype
from invkit.errors import CheckpointError, ConfigError, MissingFileError
from invkit.schedule import NoiseSchedule

__all__ = [
    "to_diffusers",
    "from_diffusers",
    "diffusers_config",
    "ddpm_to_diffusers",
    "diffusers_to_ddpm",
    "DiffusersBackbone",
    "diffusers_backbone",
]

_RESNET = {"temb_proj": "time_emb_proj", "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_ATTN_OLD = {"query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}
_ATTN_PROJ = {"q", "k", "v", "proj_out"}


def _import_diffusers():
    try:
        import diffusers
    except ImportError:
        raise ConfigError(
            "this needs the optional package 'diffusers': pip install 'invkit[diffusers]' (or pip install diffusers)"
        ) from None
    return diffusers


def _levels(keys: Sequence[str], prefix: str) -> int:
    idx = [int(m.group(1)) for k in keys if (m := re.match(rf"{re.escape(prefix)}\.(\d+)\.", k))]
    if not idx:
        raise CheckpointError(f"no '{prefix}.N.' keys: not a DDPM UNet state_dict in the expected naming")
    return max(idx) + 1


def _attn_to_diffusers(leaf: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    name, param = leaf.rsplit(".", 1)
    if name in _ATTN_PROJ and param == "weight":
        value = value.reshape(value.shape[0], value.shape[1])
    return f"{_ATTN[name]}.{param}", value


def _attn_from_diffusers(leaf: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    name, param = leaf.rsplit(".", 1)
    inverse = {v: k for k, v in _ATTN.items()}
    name = _ATTN_OLD.get(name, inverse.get(name))
    if name is None:
        raise CheckpointError(f"unknown diffusers attention key {leaf!r}")
    if name in _ATTN_PROJ and param == "weight" and value.ndim == 2:
        value = value[:, :, None, None]
    return f"{name}.{param}", value


def _resnet(leaf: str, table: Mapping[str, str]) -> str:
    head, _, rest = leaf.partition(".")
    return f"{table.get(head, head)}.{rest}"


def to_diffusers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ddim-repo DDPM ``state_dict`` to ``UNet2DModel`` keys (current diffusers naming)."""
    n = _levels(list(state), "down")
    out: dict[str, torch.Tensor] = {}
    top = {"temb.dense.0": "time_embedding.linear_1", "temb.dense.1": "time_embedding.linear_2", "norm_out": "conv_norm_out"}
    mid = {"block_1": "resnets.0", "attn_1": "attentions.0", "block_2": "resnets.1"}
    for key, v in state.items():
        if m := re.fullmatch(r"(down|up)\.(\d+)\.(block|attn)\.(\d+)\.(.+)", key):
            side, i, kind, j, leaf = m.groups()
            i = int(i) if side == "down" else n - 1 - int(i)
            if kind == "block":
                key2 = f"{side}_blocks.{i}.resnets.{j}.{_resnet(leaf, _RESNET)}"
            else:
                leaf, v = _attn_to_diffusers(leaf, v)
                key2 = f"{side}_blocks.{i}.attentions.{j}.{leaf}"
        elif m := re.fullmatch(r"down\.(\d+)\.downsample\.conv\.(\w+)", key):
            key2 = f"down_blocks.{m.group(1)}.downsamplers.0.conv.{m.group(2)}"
        elif m := re.fullmatch(r"up\.(\d+)\.upsample\.conv\.(\w+)", key):
            key2 = f"up_blocks.{n - 1 - int(m.group(1))}.upsamplers.0.conv.{m.group(2)}"
        elif m := re.fullmatch(r"mid\.(block_1|attn_1|block_2)\.(.+)", key):
            part, leaf = m.groups()
            if part == "attn_1":
                leaf, v = _attn_to_diffusers(leaf, v)
            else:
                leaf = _resnet(leaf, _RESNET)
            key2 = f"mid_block.{mid[part]}.{leaf}"
        else:
            base, _, param = key.rpartition(".")
            if base not in top and base not in ("conv_in", "conv_out"):
                raise CheckpointError(f"unexpected key {key!r} in a ddim-repo DDPM state_dict")
            key2 = f"{top.get(base, base)}.{param}"
        out[key2] = v
    return out


def from_diffusers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``UNet2DModel`` ``state_dict`` (current or old attention naming) to ddim-repo keys."""
    n = _levels(list(state), "down_blocks")
    inv_res = {v: k for k, v in _RESNET.items()}
    top = {"time_embedding.linear_1": "temb.dense.0", "time_embedding.linear_2": "temb.dense.1", "conv_norm_out": "norm_out"}
    mid = {"resnets.0": "block_1", "attentions.0": "attn_1", "resnets.1": "block_2"}
    out: dict[str, torch.Tensor] = {}
    for key, v in state.items():
        if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            side, i, kind, j, leaf = m.groups()
            i = int(i) if side == "down" else n - 1 - int(i)
            if kind == "resnets":
                key2 = f"{side}.{i}.block.{j}.{_resnet(leaf, inv_res)}"
            else:
                leaf, v = _attn_from_diffusers(leaf, v)
                key2 = f"{side}.{i}.attn.{j}.{leaf}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            key2 = f"down.{m.group(1)}.downsample.conv.{m.group(2)}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            key2 = f"up.{n - 1 - int(m.group(1))}.upsample.conv.{m.group(2)}"
        elif m := re.fullmatch(r"mid_block\.(resnets\.[01]|attentions\.0)\.(.+)", key):
            part, leaf = m.groups()
            if part.startswith("attentions"):
                leaf, v = _attn_from_diffusers(leaf, v)
            else:
                leaf = _resnet(leaf, inv_res)
            key2 = f"mid.{mid[part]}.{leaf}"
        else:
            base, _, param = key.rpartition(".")
            if base not in top and base not in ("conv_in", "conv_out"):
                raise CheckpointError(
                    f"unexpected key {key!r}: only UNet2DModels with the DDPM layout (positional time "
                    f"embedding, one attention head) convert to the ddim-repo naming"
                )
            key2 = f"{top.get(base, base)}.{param}"
        out[key2] = v
    return out


def diffusers_config(
    *,
    ch: int,
    out_ch: int,
    ch_mult: Sequence[int],
    num_res_blocks: int,
    attn_resolutions: Sequence[int],
    dropout: float = 0.0,
    resamp_with_conv: bool = True,
    in_channels: int = 3,
    resolution: int,
) -> dict[str, Any]:
    """``UNet2DModel`` keyword arguments equivalent to a ddim-repo DDPM config (the hub config of
    ``google/ddpm-celebahq-256`` for the CelebA-HQ one)."""
    if not resamp_with_conv:
        raise ConfigError("diffusers' DownBlock2D/UpBlock2D resample with a conv; resamp_with_conv=False has no equivalent")
    attn = [resolution // 2**i in tuple(attn_resolutions) for i in range(len(ch_mult))]
    return dict(
        sample_size=resolution,
        in_channels=in_channels,
        out_channels=out_ch,
        block_out_channels=tuple(ch * m for m in ch_mult),
        layers_per_block=num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        downsample_padding=0,
        flip_sin_to_cos=False,
        freq_shift=1,
        norm_eps=1e-6,
        norm_num_groups=32,
        attention_head_dim=None,
        act_fn="silu",
        time_embedding_type="positional",
        dropout=dropout,
    )


def ddpm_to_diffusers(net: torch.nn.Module):
    """A ``diffusers.UNet2DModel`` with ``net``'s (a :class:`DDPMUNet`) weights."""
    diffusers = _import_diffusers()
    cfg = _ddpm_config_of(net)
    unet = diffusers.UNet2DModel(**diffusers_config(**cfg))
    unet.load_state_dict(to_diffusers(net.state_dict()), strict=True)
    return unet.to(next(net.parameters()).dtype)


def diffusers_to_ddpm(unet):
    """A :class:`DDPMUNet` with a DDPM-layout ``UNet2DModel``'s weights."""
    from .model import DDPMUNet

    c = unet.config
    ch = c.block_out_channels[0]
    if c.time_embedding_type != "positional" or c.flip_sin_to_cos or c.freq_shift != 1 or c.downsample_padding != 0:
        raise ConfigError(
            "only DDPM-layout UNet2DModels convert (positional embedding, flip_sin_to_cos=False, "
            "freq_shift=1, downsample_padding=0)"
        )
    res = c.sample_size if isinstance(c.sample_size, int) else c.sample_size[0]
    attn = tuple(res // 2**i for i, t in enumerate(c.down_block_types) if t.startswith("Attn"))
    net = DDPMUNet(
        ch=ch, out_ch=c.out_channels, ch_mult=tuple(b // ch for b in c.block_out_channels),
        num_res_blocks=c.layers_per_block, attn_resolutions=attn, dropout=getattr(c, "dropout", 0.0),
        in_channels=c.in_channels, resolution=res,
    )
    net.load_state_dict(from_diffusers(unet.state_dict()), strict=True)
    return net.to(next(unet.parameters()).dtype).eval()


def _ddpm_config_of(net: torch.nn.Module) -> dict[str, Any]:
    attn = []
    res = net.resolution
    for level in net.down:
        if len(level.attn):
            attn.append(res)
        res //= 2
    dropouts = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    return dict(
        ch=net.ch, out_ch=net.out_ch, ch_mult=tuple(lvl.block[0].out_channels // net.ch for lvl in net.down),
        num_res_blocks=net.num_res_blocks, attn_resolutions=tuple(attn), dropout=dropouts[0] if dropouts else 0.0,
        resamp_with_conv=net.down[0].downsample.with_conv if net.num_resolutions > 1 else True,
        in_channels=net.in_channels, resolution=net.resolution,
    )


class DiffusersBackbone(Backbone):
    """A diffusers ``UNet2DModel`` as a Backbone: ``eps = net(x, t).sample[:, :channels]``.

    ``net`` is the ``UNet2DModel`` itself (its ``state_dict`` has the diffusers keys).
    """

    def __init__(self, net, schedule: NoiseSchedule, *, autocast: torch.dtype | None = None):
        super().__init__()
        self.net = net
        self.schedule = schedule
        size = net.config.sample_size
        self.image_size = size if isinstance(size, int) else None
        self.channels = net.config.in_channels
        self.autocast = autocast

    def forward(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        tt = as_timestep_tensor(t, x)
        if self.autocast is not None:
            with torch.autocast(device_type=x.device.type, dtype=self.autocast):
                out = self.net(x, tt).sample
        else:
            out = self.net(x, tt).sample
        return out[:, : self.channels].to(x.dtype)


def _schedule_from(folder: Path) -> NoiseSchedule:
    for cand in (folder / "scheduler" / "scheduler_config.json", folder / "scheduler_config.json",
                 folder.parent / "scheduler" / "scheduler_config.json"):
        if cand.is_file():
            cfg = json.loads(cand.read_text())
            T = int(cfg.get("num_train_timesteps", 1000))
            kind = cfg.get("beta_schedule", "linear")
            if kind == "linear":
                return NoiseSchedule.linear(T, float(cfg.get("beta_start", 1e-4)), float(cfg.get("beta_end", 0.02)))
            if kind == "squaredcos_cap_v2":
                return NoiseSchedule.cosine(T)
            raise ConfigError(f"{cand}: beta_schedule {kind!r} is not supported (linear, squaredcos_cap_v2)")
    return NoiseSchedule.linear(1000)


def diffusers_backbone(
    *,
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    channels_last: bool = False,
    compile: bool = False,
) -> DiffusersBackbone:
    """A local diffusers ``UNet2DModel`` folder (a pipeline folder with ``unet/``, or the unet folder
    itself) as a Backbone; the schedule comes from ``scheduler/scheduler_config.json`` when present
    (linear 1e-4..0.02, T=1000 otherwise). Only local files are read."""
    diffusers = _import_diffusers()
    folder = Path(path).expanduser()
    unet_dir = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    if not (unet_dir / "config.json").is_file():
        raise MissingFileError(
            f"{folder}: no UNet2DModel config.json here or in {folder / 'unet'}; download the model folder "
            f"(e.g. `huggingface-cli download google/ddpm-celebahq-256 --local-dir DIR`) and pass path=DIR"
        )
    weights_dtype, autocast = resolve_dtype(dtype)
    unet = diffusers.UNet2DModel.from_pretrained(str(unet_dir), local_files_only=True)
    unet = unet.to(device=device, dtype=weights_dtype).eval()
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    if compile:
        unet.compile()
    return DiffusersBackbone(unet, _schedule_from(folder), autocast=autocast)
