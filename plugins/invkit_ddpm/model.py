r"""The ddim-repo DDPM UNet (Ho et al. 2020, as ported to PyTorch in ermongroup/ddim ``Model``).

Written from ``spec/backbones_and_operators.md`` §2: its ``state_dict`` has exactly the keys of
the ddim/DDRM/DDNM/SDEdit/SSD ``Model``, so ``celeba_hq.ckpt`` and the LSUN/CIFAR-10 EMA
checkpoints load strictly. The details that differ from guided-diffusion's ADM are deliberate:

- timestep embedding ``[sin(t ω_k), cos(t ω_k)]`` (sin first) with
  ``ω_k = exp(−ln(10000) · k / (half − 1))`` (denominator ``half − 1``);
- GroupNorm(32, eps=1e-6); swish ``x · σ(x)``;
- single-head attention built from 1×1 ``Conv2d`` layers ``q, k, v, proj_out`` with scale ``C^{-1/2}``;
- downsample: zero pad (left 0, right 1, top 0, bottom 1), then a stride-2 3×3 conv with no padding;
- ``up[i]`` is indexed by resolution level ``i`` (level ``num_resolutions − 1`` runs first).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _grad_checkpoint

__all__ = ["DDPMUNet", "timestep_embedding", "Downsample", "Upsample", "ResnetBlock", "AttnBlock"]


def timestep_embedding(t: torch.Tensor, dim: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Sinusoidal embedding of the DDPM/ddim code: ``[sin(t ω), cos(t ω)]``, sin first, with
    ``ω_k = exp(−ln(10000) · k / (half − 1))``, ``k = 0..half−1``, ``half = dim // 2``; an odd
    ``dim`` gets one trailing zero. (ADM's embedding is cos-first with denominator ``half``.)"""
    half = dim // 2
    k = torch.arange(half, dtype=dtype, device=t.device)
    freqs = torch.exp(-math.log(10000.0) * k / (half - 1))
    args = t.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class _TimeEmbed(nn.Module):
    """Holds ``dense.0`` (ch → 4ch) and ``dense.1`` (4ch → 4ch): the checkpoint's ``temb.dense.*``."""

    def __init__(self, ch: int, temb_ch: int):
        super().__init__()
        self.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then (``with_conv``) a 3×3 conv with padding 1."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x


class Downsample(nn.Module):
    """Halve the resolution. With ``with_conv``: zero-pad one row at the bottom and one column at
    the right (the TF ``SAME`` padding of a stride-2 3×3 conv on an even input), then a 3×3 conv of
    stride 2 with no padding. Without: 2×2 average pooling."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_conv:
            return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class ResnetBlock(nn.Module):
    r"""``h = conv1(swish(norm1(x))) + temb_proj(swish(temb))``;
    ``h = conv2(dropout(swish(norm2(h))))``; output ``nin_shortcut(x) + h`` (1×1 shortcut only when
    the channel count changes)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, dropout: float):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = h + self.temb_proj(_swish(temb))[:, :, None, None]
        h = self.conv2(self.dropout(_swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    r"""Single-head self-attention over the ``H·W`` positions:
    ``x + proj_out(v · softmax(qᵀk / √C)ᵀ)`` with ``q, k, v`` 1×1 convs of ``norm(x)``.

    ``attn_probs_hook`` (``None``, or ``hook(P) -> P`` on the ``(B, HW, HW)`` probabilities after the
    softmax) is the attention-injection point of :mod:`invkit.injection`; ``None`` costs one
    attribute test and changes no bit."""

    attn_probs_hook = None

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(b, c, hh * ww)
        k = self.k(h).reshape(b, c, hh * ww)
        v = self.v(h).reshape(b, c, hh * ww)
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (c**-0.5), dim=2)  # w[b, i, j]: query i, key j
        if self.attn_probs_hook is not None:
            w = self.attn_probs_hook(w)
        h = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class _Level(nn.Module):
    """One resolution level: ``block`` and ``attn`` lists, plus ``downsample``/``upsample``."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class _Mid(nn.Module):
    def __init__(self, channels: int, temb_channels: int, dropout: float):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, temb_channels, dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, temb_channels, dropout)


class DDPMUNet(nn.Module):
    r"""The ddim-repo ``Model``: ``forward(x, t) -> out`` with ``out_ch`` channels (ε for every
    published checkpoint).

    Arguments are the ddim config's ``model:`` names. ``resolution`` is the training image size;
    it only decides at which levels attention sits (``attn_resolutions`` are feature-map sizes in
    pixels). ``grad_checkpoint`` recomputes each block in the backward pass (less memory for DPS);
    it changes no keys and no values.

    Presets (spec §2.1): CelebA-HQ / LSUN 256 = ``ch=128, ch_mult=(1,1,2,2,4,4),
    num_res_blocks=2, attn_resolutions=(16,)``; CIFAR-10 = ``ch=128, ch_mult=(1,2,2,2),
    num_res_blocks=2, attn_resolutions=(16,), dropout=0.1, resolution=32``.
    """

    def __init__(
        self,
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
        grad_checkpoint: bool = False,
    ):
        super().__init__()
        ch_mult = tuple(int(m) for m in ch_mult)
        attn_resolutions = tuple(int(r) for r in attn_resolutions)
        self.ch = ch
        self.temb_ch = 4 * ch
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.resolution = resolution
        self.in_channels = in_channels
        self.out_ch = out_ch
        self.grad_checkpoint = grad_checkpoint

        self.temb = _TimeEmbed(ch, self.temb_ch)
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)

        in_ch_mult = (1,) + ch_mult
        res = resolution
        self.down = nn.ModuleList()
        block_in = ch
        for i in range(self.num_resolutions):
            level = _Level()
            block_in = ch * in_ch_mult[i]
            block_out = ch * ch_mult[i]
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock(block_in, block_out, self.temb_ch, dropout))
                block_in = block_out
                if res in attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i != self.num_resolutions - 1:
                level.downsample = Downsample(block_in, resamp_with_conv)
                res //= 2
            self.down.append(level)

        self.mid = _Mid(block_in, self.temb_ch, dropout)

        # Built from the lowest resolution up, but stored so that up[i] is level i.
        up: list[_Level] = []
        for i in reversed(range(self.num_resolutions)):
            level = _Level()
            block_out = ch * ch_mult[i]
            for j in range(num_res_blocks + 1):
                # The last block of a level takes the skip saved before this level's down blocks.
                skip_in = ch * in_ch_mult[i] if j == num_res_blocks else ch * ch_mult[i]
                level.block.append(ResnetBlock(block_in + skip_in, block_out, self.temb_ch, dropout))
                block_in = block_out
                if res in attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i != 0:
                level.upsample = Upsample(block_in, resamp_with_conv)
                res *= 2
            up.insert(0, level)
        self.up = nn.ModuleList(up)

        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, kernel_size=3, stride=1, padding=1)

    def attention_layers(self) -> dict[str, AttnBlock]:
        """Every attention block by name, in execution order: ``input_<n>_attn`` (encoder),
        ``middle_attn``, ``output_<n>_attn`` (decoder), ``n`` counting that part's attention blocks
        from 0 (SSD's CelebA config calls the three 16×16 decoder blocks ``output_0..2_attn``;
        fashion32 has two, at 8×8). Used by :mod:`invkit.injection`."""
        enc = [a for level in self.down for a in level.attn]
        dec = [a for i in reversed(range(self.num_resolutions)) for a in self.up[i].attn]
        out: dict[str, AttnBlock] = {f"input_{n}_attn": a for n, a in enumerate(enc)}
        out["middle_attn"] = self.mid.attn_1
        out.update({f"output_{n}_attn": a for n, a in enumerate(dec)})
        return out

    def _run(self, fn, *args: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpoint and torch.is_grad_enabled():
            return _grad_checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x``: (B, in_channels, H, W) with H, W divisible by ``2^(len(ch_mult)−1)``; ``t``:
        int64 timesteps of shape (B,)."""
        dense = self.temb.dense
        wdtype = dense[0].weight.dtype
        # The ddim code embeds in float32; a float64 net embeds in float64 so exact checks hold.
        temb = timestep_embedding(t, self.ch, torch.float64 if wdtype == torch.float64 else torch.float32)
        temb = dense[1](_swish(dense[0](temb.to(wdtype))))

        hs = [self.conv_in(x)]
        for i, level in enumerate(self.down):
            for j, block in enumerate(level.block):
                h = self._run(block, hs[-1], temb)
                if len(level.attn) > 0:
                    h = self._run(level.attn[j], h)
                hs.append(h)
            if i != self.num_resolutions - 1:
                hs.append(level.downsample(hs[-1]))

        h = hs[-1]
        h = self._run(self.mid.block_1, h, temb)
        h = self._run(self.mid.attn_1, h)
        h = self._run(self.mid.block_2, h, temb)

        for i in reversed(range(self.num_resolutions)):
            level = self.up[i]
            for j, block in enumerate(level.block):
                h = self._run(block, torch.cat([h, hs.pop()], dim=1), temb)
                if len(level.attn) > 0:
                    h = self._run(level.attn[j], h)
            if i != 0:
                h = level.upsample(h)

        return self.conv_out(_swish(self.norm_out(h)))
