r"""Inpainting: multiplication by a binary mask fixed when the operator is built, and mask helpers."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from invkit import rng
from invkit.errors import ConfigError, InvalidDTypeError, InvalidInputError
from invkit.operator import Operator, SVDView, check_tensor

from ._kron import float_param, int_param

__all__ = ["Inpainting", "random_pixel_mask", "box_mask"]


def _mask_shape(shape: Sequence[int], fn: str) -> tuple[int, ...]:
    shape = tuple(shape)
    if len(shape) not in (2, 3):
        raise ConfigError(f"{fn}: shape must be (H, W) or (B, H, W), got {shape!r}")
    for n in shape:
        int_param(fn, "every entry of shape", n, 1)
    return tuple(int(n) for n in shape)


def _generator(generator: torch.Generator | None) -> torch.Generator:
    return rng.resolve(generator, generator.device if isinstance(generator, torch.Generator) else "cpu")


def random_pixel_mask(
    shape: Sequence[int], ratio: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""A mask (1 = keep) that drops exactly ``round(ratio · H · W)`` pixels chosen uniformly.

    As DDRM's ``inp`` (``randperm(HW)[:HW//2]`` for ``ratio = 0.5``) and SSD's ``random_point``.
    ``shape`` is ``(H, W)`` or ``(B, H, W)`` (one independent mask per sample); the draw uses
    ``generator`` only (a fixed seed when ``None``). Returns float32 on the generator's device.
    """
    shape = _mask_shape(shape, "random_pixel_mask")
    ratio = float_param("random_pixel_mask", "ratio", ratio, low=0.0, high=1.0, open_low=False, open_high=False)
    g = _generator(generator)
    H, W = shape[-2:]
    drop = round(ratio * H * W)
    masks = []
    for _ in range(shape[0] if len(shape) == 3 else 1):
        m = torch.ones(H * W, device=g.device)
        m[torch.randperm(H * W, generator=g, device=g.device)[:drop]] = 0
        masks.append(m.reshape(H, W))
    return torch.stack(masks) if len(shape) == 3 else masks[0]


def box_mask(
    shape: Sequence[int],
    size: int | Sequence[int],
    top_left: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""A mask (1 = keep) with a ``size`` box of missing pixels (SSD ``random_block``, DPS ``box``).

    ``size`` is ``h`` or ``(h, w)``. The box sits at ``top_left = (row, col)`` when given,
    otherwise at a position drawn uniformly from ``generator`` (per sample for ``(B, H, W)``).
    """
    shape = _mask_shape(shape, "box_mask")
    H, W = shape[-2:]
    bh, bw = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else tuple(size)
    bh, bw = int_param("box_mask", "box height", bh, 1), int_param("box_mask", "box width", bw, 1)
    if bh > H or bw > W:
        raise ConfigError(f"box_mask: a {bh}×{bw} box does not fit in a {H}×{W} image")
    B = shape[0] if len(shape) == 3 else 1
    if top_left is not None:
        r0, c0 = (int_param("box_mask", "top_left entry", v, 0) for v in top_left)
        if r0 + bh > H or c0 + bw > W:
            raise ConfigError(f"box_mask: a {bh}×{bw} box at {(r0, c0)} leaves the {H}×{W} image")
        corners = [(r0, c0)] * B
        device = torch.device("cpu") if generator is None else generator.device
    else:
        g = _generator(generator)
        device = g.device
        rows = torch.randint(0, H - bh + 1, (B,), generator=g, device=device).tolist()
        cols = torch.randint(0, W - bw + 1, (B,), generator=g, device=device).tolist()
        corners = list(zip(rows, cols))
    m = torch.ones(B, H, W, device=device)
    for b, (r0, c0) in enumerate(corners):
        m[b, r0 : r0 + bh, c0 : c0 + bw] = 0
    return m if len(shape) == 3 else m[0]


class Inpainting(Operator):
    r"""Keep the pixels where ``mask == 1``: ``A x = A⁺ x = Aᵀ x = mask ⊙ x`` (all channels).

    ``y`` has ``x``'s shape with zeros at missing pixels (DDNM's simplified form; DDRM's ``H``
    returns the kept entries as a vector, which is the same operator up to that packing).
    ``A`` is an orthogonal projection, so it is its own pseudo-inverse and adjoint. ``mask``:
    ``(H, W)`` or ``(1, H, W)`` shared by the batch, or ``(B, H, W)`` / ``(B, 1, H, W)`` one per
    sample; values must be 0/1 (bool, integer or float). It is fixed here, once (the SSD
    reference redraws its random masks on every call, so ``y`` and each projection disagree).
    SVD view: ``U = V = I``, ``s = mask``.
    """

    def __init__(self, mask: torch.Tensor | np.ndarray):
        super().__init__()
        if isinstance(mask, np.ndarray):
            mask = torch.from_numpy(mask)
        if not isinstance(mask, torch.Tensor):
            raise InvalidDTypeError(f"inpainting: mask must be a tensor or numpy array, got {type(mask).__name__}")
        if mask.is_complex():
            raise InvalidDTypeError("inpainting: mask must be real (0/1 values), got a complex tensor")
        if mask.ndim == 4 and mask.shape[1] == 1:
            mask = mask[:, 0]
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3 or mask.numel() == 0:
            raise InvalidInputError(
                f"inpainting: mask must have shape (H, W), (1, H, W), (B, H, W) or (B, 1, H, W); "
                f"got {tuple(mask.shape)}"
            )
        mask = mask.to(torch.float64)
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise InvalidInputError(
                "inpainting: mask must be binary (1 = keep, 0 = missing); threshold it first, e.g. (mask > 0.5)"
            )
        self.register_buffer("mask", mask[:, None])  # (B or 1, 1, H, W)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.mask.shape[-2:])

    def _check(self, t: torch.Tensor, name: str) -> torch.Tensor:
        check_tensor(t, name, ndim=4)
        if tuple(t.shape[-2:]) != self.size:
            raise InvalidInputError(
                f"inpainting: {name} is {tuple(t.shape[-2:])} pixels but the mask is {self.size}; "
                f"build the operator with a mask of the image size"
            )
        nb = self.mask.shape[0]
        if nb not in (1, t.shape[0]):
            raise InvalidInputError(
                f"inpainting: {name} has batch size {t.shape[0]} but the operator holds {nb} per-sample masks; "
                f"pass a batch of {nb} or build the operator with one shared mask"
            )
        return t

    def _mask(self, like: torch.Tensor) -> torch.Tensor:
        return self.mask.to(device=like.device, dtype=like.real.dtype if like.is_complex() else like.dtype)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self._check(x, "x") * self._mask(x)

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        return self._check(y, "y") * self._mask(y)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return self._check(y, "y") * self._mask(y)

    def _view(self, s: torch.Tensor) -> SVDView:
        def mul(t: torch.Tensor) -> torch.Tensor:
            return t * s.to(device=t.device, dtype=t.dtype)

        def ident(t: torch.Tensor) -> torch.Tensor:
            return t.clone()

        return SVDView(V=ident, Vt=ident, U=mul, Ut=mul, s=s)

    def svd(self) -> SVDView:
        return self._view(self.mask)

    def svd_for(self, y: torch.Tensor) -> SVDView:
        return self._view(self._mask(self._check(y, "y")))

    def extra_repr(self) -> str:
        return f"size={self.size}, masks={self.mask.shape[0]}, kept={float(self.mask.mean()):.3f}"
