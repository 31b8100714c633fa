r"""Sizes: the backbone's size multiple, reflect padding, and overlapping tiles with the tile
operator of mask-shift restoration (DDNM, Wang et al. ICLR 2023, §3.3). See
:mod:`invkit.restoration.core` for how they are used.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from ..errors import CapabilityError, ConfigError
from ..operator import Operator, check_tensor

__all__ = [
    "AUTO_TILE_FACTOR",
    "Tile",
    "TileOperator",
    "size_multiple",
    "reflect_pad",
    "padding",
    "tile_plan",
    "seam_stats",
]

def size_multiple(backbone: Any) -> int:
    """The multiple the backbone's input height and width must be.

    In order: an explicit ``size_multiple`` attribute on the backbone or its ``net``; a
    ddim-repo DDPM UNet (``num_resolutions``): ``2^(len(ch_mult) − 1)`` (8 for fashion32); a
    guided-diffusion ADM UNet: 2 to the number of its downsampling blocks; a backbone without
    an ``image_size`` (size-agnostic): 1; otherwise the backbone runs at its ``image_size`` only,
    which is then the multiple (and every larger output is tiled).
    """
    for obj in (backbone, getattr(backbone, "net", None)):
        m = getattr(obj, "size_multiple", None)
        if isinstance(m, int) and m >= 1:
            return m
    net = getattr(backbone, "net", None)
    if net is not None and isinstance(getattr(net, "num_resolutions", None), int):
        return 2 ** (net.num_resolutions - 1)
    if net is not None and hasattr(net, "input_blocks"):
        downs = sum(
            1 for mod in net.modules() if type(mod).__name__ == "Downsample" or (getattr(mod, "updown", False) and not getattr(getattr(mod, "h_upd", None), "up", True))
        )
        return 2**downs
    size = getattr(backbone, "image_size", None)
    return 1 if size is None else int(size)


def _reflect_index(n_out: int, n: int) -> torch.Tensor:
    """Indices ``0..n_out−1`` folded into ``[0, n)`` by mirror reflection without edge repeat
    (``n, n+1 → n−2, n−3``), repeated as often as needed; ``n = 1`` gives zeros."""
    j = torch.arange(n_out)
    if n == 1:
        return torch.zeros_like(j)
    period = 2 * (n - 1)
    j = j % period
    return torch.where(j >= n, period - j, j)


def reflect_pad(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``t`` ``(..., h, w)`` mirror-padded at the bottom and right to ``size = (h', w')``."""
    h, w = t.shape[-2:]
    if (h, w) == tuple(size):
        return t
    rows, cols = _reflect_index(size[0], h).to(t.device), _reflect_index(size[1], w).to(t.device)
    return t.index_select(-2, rows).index_select(-1, cols)


def padding(x_size: tuple[int, int], scale: int, multiple: int) -> tuple[int, int]:
    """The padded ``(H', W')``: the smallest sizes ``>= x_size`` that are multiples of
    ``lcm(multiple, scale)`` (so the ``y`` grid, ``scale`` times coarser, stays whole)."""
    q = math.lcm(int(multiple), int(scale))
    return tuple(-(-n // q) * q for n in x_size)  # type: ignore[return-value]


@attrs.frozen
class Tile:
    """One tile of a plan: its box in the padded ``x`` grid and its overlap with earlier tiles.

    ``(top, left)`` is its corner, ``(height, width)`` its size; the first ``overlap_h`` rows and
    ``overlap_w`` columns were restored by earlier tiles (the top and left strips); the rest,
    the bottom-right *free* rectangle, is new.
    """

    top: int
    left: int
    height: int
    width: int
    overlap_h: int
    overlap_w: int


def _axis(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """(position, overlap with the previous tile) along one axis of length ``n``."""
    if n <= size:
        return [(0, 0)]
    stride = size - overlap
    pos = list(range(0, n - size, stride)) + [n - size]
    return [(p, 0 if k == 0 else pos[k - 1] + size - p) for k, p in enumerate(pos)]


def tile_plan(size: tuple[int, int], tile: int, overlap: int) -> list[Tile]:
    """Overlapping tiles covering a ``size = (H, W)`` grid in raster order.

    Tiles are ``tile × tile`` (clipped to the grid when it is smaller); along each axis they
    start at ``0, tile − overlap, 2(tile − overlap), …`` and the last one ends at the grid's edge
    (so its overlap may be larger). With ``tile`` and ``overlap`` multiples of the SR scale (and
    ``H, W`` too) every border is block-aligned.
    """
    if not (isinstance(tile, int) and tile >= 1 and isinstance(overlap, int) and 0 <= overlap < tile):
        raise ConfigError(f"a tile plan needs tile >= 1 and 0 <= overlap < tile, got tile={tile!r}, overlap={overlap!r}")
    rows, cols = _axis(size[0], tile, overlap), _axis(size[1], tile, overlap)
    th, tw = min(tile, size[0]), min(tile, size[1])
    return [Tile(r, c, th, tw, oh, ow) for r, oh in rows for c, ow in cols]


#: ``tile="auto"`` runs a fully convolutional backbone on the whole image up to this many times
#: its training size per side, and tiles beyond (in tiles of that size); see :func:`plan_job`
AUTO_TILE_FACTOR = 4


def tile_size(tile: Any, model: Any, scale: int, multiple: int, x_size: tuple[int, int], op_name: str, tileable: bool) -> tuple[int | None, str | None]:
    """The tile size for ``tile`` (``"auto"``, ``"off"`` or pixels) on an ``x_size`` restoration:
    (the size, or None for no tiling; a note, or None). Used by :func:`~invkit.restoration.core.plan_job`.

    Raises:
        ConfigError: ``tile`` is not auto/off/a positive size, or not a multiple of the backbone's
            multiple and the SR scale.
        CapabilityError: the operator cannot be tiled where tiling is needed or asked for.
    """
    q = math.lcm(multiple, scale)
    if tile == "off" or tile is None or tile is False:
        return None, None
    image_size = getattr(model, "image_size", None)
    if tile == "auto":
        if image_size is None:
            return None, None
        fixed = multiple >= image_size  # runs at its training size only
        limit = int(image_size) * (1 if fixed else AUTO_TILE_FACTOR)
        if max(x_size) <= limit:
            return None, None
        if not tileable:
            if fixed:
                raise CapabilityError(
                    f"the backbone runs at {image_size}×{image_size} only and operator {op_name!r} cannot be tiled; "
                    f"give images whose restoration is {image_size}×{image_size}"
                )
            return None, f"not tiled: operator {op_name!r} cannot be tiled; the fully convolutional backbone ran on the whole {x_size[0]}×{x_size[1]} image"
        size = (limit // q) * q
        if size < q:
            raise CapabilityError(f"cannot tile: the backbone's {image_size} px is below the SR scale's alignment {q}")
        return size, None
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ConfigError(f"tile must be 'auto', 'off' or a tile size in pixels, got {tile!r}")
    if tile % q:
        raise ConfigError(f"tile = {tile} must be a multiple of {q} (the backbone's multiple {multiple} and the scale {scale})")
    if not tileable:
        raise CapabilityError(
            f"operator {op_name!r} cannot be tiled (its measurements are not local: e.g. a blur mixes the whole image); "
            f"use tile='off' (the backbone is fully convolutional)"
        )
    return tile, None


class TileOperator(Operator):
    r"""One tile's operator: the identity on the pixels already restored, the task elsewhere.

    The tile ``x`` ``(B, C, h, w)`` splits into the overlap ``O`` (the first ``overlap_h`` rows
    and ``overlap_w`` columns: pixels earlier tiles restored) and the free rectangle ``F`` (the
    rest). ``A x = (A_F x_F, x_O)`` flattened into one vector per sample, where ``A_F`` is the task
    operator on ``F`` (its mask cropped to ``F``). The two parts act on disjoint pixels, so
    ``A⁺ = A_F⁺ ⊕ I`` and ``Aᵀ = A_Fᵀ ⊕ I`` are exact, and back projection pins the overlap to the
    restored pixels while fitting ``F`` to its measurements (DDNM's mask-shift restoration).
    """

    def __init__(self, free_op: Operator, tile_shape: tuple[int, int, int], overlap: tuple[int, int], y_free_shape: tuple[int, ...]):
        super().__init__()
        self.free_op = free_op
        self.tile_shape = tuple(tile_shape)
        self.oh, self.ow = overlap
        C, h, w = self.tile_shape
        known = torch.zeros(h, w, dtype=torch.bool)
        known[: self.oh] = True
        known[:, : self.ow] = True
        self.register_buffer("known", known, persistent=False)
        self.n_known = int(known.sum()) * C
        self.y_free_shape = tuple(y_free_shape)
        self.n_free = math.prod(self.y_free_shape)

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y_F (B, *y_free_shape), x_O (B, C, n_O))`` of a tile measurement."""
        B = y.shape[0]
        return y[:, : self.n_free].reshape((B,) + self.y_free_shape), y[:, self.n_free :].reshape(B, self.tile_shape[0], -1)

    def join(self, y_free: torch.Tensor, x_known: torch.Tensor) -> torch.Tensor:
        """The flat tile measurement from the free part's ``y`` and the known pixels ``(B, C, n_O)``."""
        return torch.cat([y_free.flatten(1), x_known.flatten(1)], dim=1)

    def _free(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.oh :, self.ow :]

    def _place(self, free: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        B = free.shape[0]
        out = torch.zeros((B,) + self.tile_shape, dtype=free.dtype, device=free.device)
        out[..., self.oh :, self.ow :] = free
        out[..., self.known.to(free.device)] = known.to(free.dtype)
        return out

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=4)
        return self.join(self.free_op.A(self._free(x)), x[..., self.known.to(x.device)])

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        yf, k = self.split(y)
        return self._place(self.free_op.AT(yf), k)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        yf, k = self.split(y)
        return self._place(self.free_op.pinv(yf), k)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (y_shape[0],) + self.tile_shape

    @property
    def exact_pinv(self) -> bool:
        return self.free_op.exact_pinv


def seam_stats(x: torch.Tensor, tile: int, overlap: int) -> dict[str, float]:
    """How visible tile borders are in a tiled restoration ``x`` ``(…, H, W)``.

    The borders are where one tile's new pixels meet an earlier tile's: the column (row) at the
    end of each tile's predecessor along the axis (:func:`tile_plan` with ``tile`` and
    ``overlap``). Returns the mean absolute jump ``|x[j] − x[j−1]|`` between horizontally and
    vertically adjacent pixels across those borders (``border``) and everywhere else
    (``inside``), and their ratio (about 1 when no seam shows).
    """
    H, W = x.shape[-2:]

    def borders(n: int) -> list[int]:
        return [p + o for k, (p, o) in enumerate(_axis(n, tile, overlap)) if k > 0]

    dx = (x[..., :, 1:] - x[..., :, :-1]).abs()  # jump between columns j-1 and j at index j-1
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs()
    col_b = torch.zeros(W - 1, dtype=torch.bool)
    for b in borders(W):
        col_b[b - 1] = True
    row_b = torch.zeros(H - 1, dtype=torch.bool)
    for b in borders(H):
        row_b[b - 1] = True
    border = torch.cat([dx[..., :, col_b].flatten(), dy[..., row_b, :].flatten()])
    inside = torch.cat([dx[..., :, ~col_b].flatten(), dy[..., ~row_b, :].flatten()])
    b = float(border.double().mean()) if border.numel() else float("nan")
    i = float(inside.double().mean()) if inside.numel() else float("nan")
    return {"border": b, "inside": i, "ratio": b / i if i > 0 else float("nan"), "n_border": int(border.numel())}
