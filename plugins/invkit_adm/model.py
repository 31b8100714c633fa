r"""guided-diffusion's ADM UNet (Dhariwal & Nichol 2021, openai/guided-diffusion ``UNetModel``).

Written from ``spec/backbones_and_operators.md`` §1: the constructor takes guided-diffusion's
command-line flag names, and the ``state_dict`` has exactly ``UNetModel``'s keys and shapes, so
the published ImageNet/LSUN checkpoints load strictly. Facts that matter for exactness:

- timestep embedding ``[cos(t ω_k), sin(t ω_k)]`` (cos first), ``ω_k = exp(−ln(10000) · k / half)``;
- GroupNorm(32, eps=1e-5), evaluated in float32 for half-precision inputs;
- ResBlock with scale-shift norm ``GN(h)·(1 + scale) + shift``; up/down ResBlocks resample (nearest
  ×2 / 2×2 average) between ``in_layers[:-1]`` and the conv;
- attention heads ``C / num_head_channels`` (or ``num_heads``); the *legacy* order splits heads
  before q|k|v, the *new* order (64×64 model) chunks q|k|v first; q and k are each scaled by
  ``ch^{-1/4}`` and the softmax runs in float32;
- skips are concatenated ``[h, skip]`` (h first).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _grad_checkpoint

from invkit.errors import ConfigError, InvalidInputError

__all__ = ["ADMUNet", "timestep_embedding", "qkv_attention", "default_channel_mult", "attention_ds"]

_HALF = (torch.float16, torch.bfloat16)


def timestep_embedding(t: torch.Tensor, dim: int, dtype: torch.dtype = torch.float32, max_period: float = 10000.0) -> torch.Tensor:
    r"""ADM's sinusoidal embedding ``[cos(t ω), sin(t ω)]`` (cos first) with
    ``ω_k = exp(−ln(max_period) · k / half)``, ``k = 0..half−1``, ``half = dim // 2``; an odd
    ``dim`` gets one trailing zero. (The ddim-repo DDPM is sin-first with denominator ``half − 1``.)"""
    half = dim // 2
    k = torch.arange(half, dtype=dtype, device=t.device)
    freqs = torch.exp(-math.log(max_period) * k / half)
    args = t.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


def default_channel_mult(image_size: int) -> tuple[float, ...]:
    """guided-diffusion's ``create_model`` default ``channel_mult`` for an image size."""
    table = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4), 32: (1, 2, 2, 2)}
    if image_size not in table:
        raise ConfigError(f"no default channel_mult for image_size={image_size}; pass channel_mult explicitly")
    return table[image_size]


def attention_ds(image_size: int, attention_resolutions: Sequence[int] | str) -> tuple[int, ...]:
    """Feature-map resolutions in pixels (the flag ``"32,16,8"``) → downsample factors ``image_size // r``."""
    if isinstance(attention_resolutions, str):
        attention_resolutions = [int(r) for r in attention_resolutions.split(",") if r.strip()]
    return tuple(image_size // int(r) for r in attention_resolutions)


def qkv_attention(
    qkv: torch.Tensor, heads: int, *, legacy: bool, probs_hook: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    r"""Multi-head attention on a packed ``qkv`` of shape ``(B, 3·H·c, T)``; returns ``(B, H·c, T)``.

    ``legacy=True`` (guided-diffusion ``QKVAttentionLegacy``): view as ``(B·H, 3c, T)`` *then* split
    into q, k, v — each head owns a contiguous ``3c`` slice. ``legacy=False`` (``QKVAttention``):
    chunk into q | k | v first, then split each into heads. Both compute
    ``softmax((q c^{-1/4})ᵀ (k c^{-1/4}))`` over keys, in float32 for half-precision inputs.
    ``probs_hook(P) -> P`` (attention injection, :mod:`invkit.injection`) sees the ``(B·H, T, T)``
    probabilities after the softmax and may replace them; V is always the input's.
    """
    b, width, length = qkv.shape
    c = width // (3 * heads)
    if legacy:
        q, k, v = qkv.reshape(b * heads, 3 * c, length).split(c, dim=1)
    else:
        q, k, v = (z.reshape(b * heads, c, length) for z in qkv.chunk(3, dim=1))
    scale = 1.0 / math.sqrt(math.sqrt(c))
    w = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    w = torch.softmax(w.float() if w.dtype in _HALF else w, dim=-1).to(w.dtype)
    if probs_hook is not None:
        w = probs_hook(w)
    return torch.einsum("bts,bcs->bct", w, v).reshape(b, heads * c, length)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32, C, eps=1e-5) that normalises half-precision inputs in float32."""

    def __init__(self, channels: int):
        super().__init__(32, channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in _HALF:
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


class _Resample(nn.Module):
    """Parameter-free nearest ×2 (``up``) or 2×2 average pooling (down), used inside up/down ResBlocks."""

    def __init__(self, up: bool):
        super().__init__()
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest") if self.up else F.avg_pool2d(x, 2, 2)


class Upsample(nn.Module):
    """Nearest ×2 then (``use_conv``) a 3×3 conv — key ``conv``; used when ``resblock_updown`` is off."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """Stride-2 3×3 conv with padding 1 (``use_conv``), else 2×2 average pooling — key ``op``."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    r"""``h = in_layers(x)`` (GN, SiLU, conv); with scale-shift norm
    ``h = out_layers[1:](GN(h)·(1 + scale) + shift)`` where ``(scale, shift) = emb_layers(emb)``,
    else ``h = out_layers(h + emb_layers(emb))``; output ``skip_connection(x) + h``."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int,
        *,
        use_scale_shift_norm: bool,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if self.updown:
            self.h_upd = _Resample(up)
            self.x_upd = _Resample(up)
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels)
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(p=dropout), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over spatial positions: ``x + proj_out(attn(qkv(norm(x))))`` with 1-D 1×1 convs.

    ``attn_probs_hook`` is the attention-injection point (see :func:`qkv_attention`); ``None``
    changes no bit."""

    attn_probs_hook = None

    def __init__(self, channels: int, num_heads: int, num_head_channels: int, *, new_order: bool):
        super().__init__()
        if num_head_channels == -1:
            self.heads = num_heads
        else:
            if channels % num_head_channels:
                raise ConfigError(f"channels {channels} not divisible by num_head_channels {num_head_channels}")
            self.heads = channels // num_head_channels
        self.legacy = not new_order
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1)
        h = qkv_attention(self.qkv(self.norm(flat)), self.heads, legacy=self.legacy, probs_hook=self.attn_probs_hook)
        return (flat + self.proj_out(h)).reshape(x.shape)


class TimestepSequential(nn.Sequential):
    """A sequence whose ResBlocks also receive the embedding (guided-diffusion ``TimestepEmbedSequential``)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, run=None) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = run(layer, x, emb) if run is not None else layer(x, emb)
            elif isinstance(layer, AttentionBlock) and run is not None:
                x = run(layer, x)
            else:
                x = layer(x)
        return x


class ADMUNet(nn.Module):
    r"""guided-diffusion ``UNetModel``, built from the ``create_model`` flag names.

    ``forward(x, t, y=None)``: ``x`` (B, in_channels, H, W), ``t`` int64 (B,), ``y`` int64 class
    labels (B,) — required exactly when ``class_cond``. Returns ``in_channels`` channels (ε), or twice
    as many with ``learn_sigma`` (ε, then the variance interpolation ``v``).

    ``attention_resolutions`` are feature-map sizes in pixels (``"32,16,8"`` or a tuple), as on
    guided-diffusion's command line; ``channel_mult=None`` takes ``create_model``'s default for
    ``image_size``. ``grad_checkpoint`` recomputes blocks in the backward pass (guided-diffusion always
    does so for attention); it changes no keys and no values.
    """

    def __init__(
        self,
        *,
        image_size: int,
        num_channels: int,
        num_res_blocks: int,
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
        num_classes: int = 1000,
        dropout: float = 0.0,
        in_channels: int = 3,
        conv_resample: bool = True,
        grad_checkpoint: bool = False,
    ):
        super().__init__()
        if channel_mult is None or channel_mult == "":
            channel_mult = default_channel_mult(image_size)
        elif isinstance(channel_mult, str):
            channel_mult = tuple(float(m) for m in channel_mult.split(","))
        mult = tuple(channel_mult)
        ds_attn = attention_ds(image_size, attention_resolutions)
        mc = num_channels
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.image_size = image_size
        self.channel_mult = mult
        self.in_channels = in_channels
        self.model_channels = mc
        self.out_channels = (2 if learn_sigma else 1) * in_channels
        self.num_classes = num_classes if class_cond else None
        self.grad_checkpoint = grad_checkpoint
        emb_ch = 4 * mc

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        if class_cond:
            self.label_emb = nn.Embedding(num_classes, emb_ch)

        def res(cin: int, cout: int, **kw) -> ResBlock:
            return ResBlock(cin, emb_ch, dropout, cout, use_scale_shift_norm=use_scale_shift_norm, **kw)

        def attn(c: int, heads: int) -> AttentionBlock:
            return AttentionBlock(c, heads, num_head_channels, new_order=use_new_attention_order)

        ch = input_ch = int(mult[0] * mc)
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skip_chans = [ch]
        ds = 1
        for level, m in enumerate(mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(m * mc))]
                ch = int(m * mc)
                if ds in ds_attn:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_chans.append(ch)
            if level != len(mult) - 1:
                down = res(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample, ch)
                self.input_blocks.append(TimestepSequential(down))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = TimestepSequential(res(ch, ch), attn(ch, num_heads), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, m in reversed(list(enumerate(mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), int(mc * m))]
                ch = int(mc * m)
                if ds in ds_attn:
                    layers.append(attn(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample, ch))
                    ds //= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(input_ch, self.out_channels, 3, padding=1))

    def attention_layers(self) -> dict[str, AttentionBlock]:
        """Every attention block by name, in execution order: ``input_<k>_attn``, ``middle_attn``,
        ``output_<k>_attn``, with ``k`` the index of the block in ``input_blocks`` /
        ``output_blocks`` (guided-diffusion's module names; the 256-px ImageNet model has decoder
        attention in ``output_blocks`` 0–8). Used by :mod:`invkit.injection`."""
        out: dict[str, AttentionBlock] = {}
        for prefix, blocks in (("input", self.input_blocks), ("output", self.output_blocks)):
            if prefix == "output":
                out["middle_attn"] = next(m for m in self.middle_block if isinstance(m, AttentionBlock))
            for k, block in enumerate(blocks):
                for m in block:
                    if isinstance(m, AttentionBlock):
                        out[f"{prefix}_{k}_attn"] = m
        return out

    def _run(self, fn, *args: torch.Tensor) -> torch.Tensor:
        return _grad_checkpoint(fn, *args, use_reentrant=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if (y is None) != (self.num_classes is None):
            raise InvalidInputError(
                "this ADM net is class-conditional: pass class labels y" if y is None
                else "this ADM net is unconditional: it takes no class labels y"
            )
        w = self.time_embed[0].weight
        temb = timestep_embedding(t, self.model_channels, torch.float64 if w.dtype == torch.float64 else torch.float32)
        emb = self.time_embed(temb.to(w.dtype))
        if y is not None:
            emb = emb + self.label_emb(y)
        run = self._run if self.grad_checkpoint and torch.is_grad_enabled() else None
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, run)
            hs.append(h)
        h = self.middle_block(h, emb, run)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb, run)
        return self.out(h.to(x.dtype))
