"""Figures: the labelled grid of restorations (Pillow) and line plots (matplotlib, the ``[plot]``
extra)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from .. import metrics
from ..errors import InvalidInputError
from ..io import write_atomic
from . import extras

if TYPE_CHECKING:  # annotations only
    from .config import EvalResult

__all__ = ["SERIES_COLOURS", "display_measurement", "image_grid", "grid_columns", "plot_lines"]

#: RGB colours of the plotted series, in order (matplotlib's tab10)
SERIES_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]
_MARKERS = ("o", "s", "^")


def display_measurement(y: torch.Tensor, shape: Sequence[int]) -> torch.Tensor | None:
    """``y`` shown at its own resolution, upscaled with nearest neighbour to the image ``shape``.

    Greyscale measurements of RGB images are repeated over the channels; a measurement that is
    not an image of a size dividing the image's gives ``None`` (shown as a blank tile).
    """
    C, H, W = shape[-3:]
    if y.ndim != 4 or y.shape[1] not in (1, C) or H % y.shape[-2] or W % y.shape[-1]:
        return None
    y = y.repeat_interleave(H // y.shape[-2], dim=-2).repeat_interleave(W // y.shape[-1], dim=-1)
    return y.expand(-1, C, -1, -1) if y.shape[1] != C else y


def _to_pil_tile(x: torch.Tensor | None, h: int, w: int, scale: int) -> Image.Image:
    if x is None:
        return Image.new("RGB", (w * scale, h * scale), (200, 200, 200))
    u8 = x.numpy() if x.dtype == torch.uint8 else metrics.to_uint8(x.detach().cpu().float()).numpy()
    img = Image.fromarray(u8[0], "L").convert("RGB") if u8.shape[0] == 1 else Image.fromarray(u8.transpose(1, 2, 0), "RGB")
    return img.resize((w * scale, h * scale), Image.NEAREST)


def image_grid(columns: Sequence[tuple[str, torch.Tensor | None]], *, captions: Mapping[str, Sequence[str]] | None = None, min_tile: int = 96) -> Image.Image:
    """A labelled grid (PIL image): one column per ``(title, images (N, C, H, W))``.

    Float images in [-1, 1] are quantised like restorations (truncation), uint8 images are shown
    as they are; tiles are magnified by an integer factor with nearest neighbour so they are at
    least ``min_tile`` pixels; ``None`` gives blank tiles. ``captions[title][i]`` is written
    under the tile of image ``i``.

    Raises:
        InvalidInputError: no column has images.
    """
    ref = next((t for _, t in columns if t is not None), None)
    if ref is None:
        raise InvalidInputError("image_grid needs at least one column of images")
    N, (H, W) = ref.shape[0], ref.shape[-2:]
    scale = max(1, math.ceil(min_tile / max(H, W)))
    tw, th, pad = W * scale, H * scale, 4
    font = ImageFont.load_default(size=12)
    titles = [_wrap(title, font, tw) for title, _ in columns]
    head, cap = 6 + 14 * max(len(t) for t in titles), 16 if captions else 0
    grid = Image.new("RGB", (len(columns) * (tw + pad) + pad, head + N * (th + cap + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for c, (title, imgs) in enumerate(columns):
        x0 = pad + c * (tw + pad)
        for k, line in enumerate(titles[c]):
            draw.text((x0 + tw / 2, 3 + 14 * k), line, fill="black", font=font, anchor="mt")
        for i in range(N):
            y0 = head + i * (th + cap + pad)
            grid.paste(_to_pil_tile(None if imgs is None else imgs[i], H, W, scale), (x0, y0))
            text = (captions or {}).get(title)
            if text is not None and i < len(text) and text[i]:
                draw.text((x0 + tw / 2, y0 + th + cap / 2), text[i], fill="black", font=font, anchor="mm")
    return grid


def _wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels, broken after ``:,_=`` or spaces."""
    parts, word = [], ""
    for ch in text:
        word += ch
        if ch in ":,_= ":
            parts.append(word)
            word = ""
    parts.append(word)
    lines = [""]
    for part in filter(None, parts):
        if lines[-1] and font.getlength(lines[-1] + part) > width:
            lines.append("")
        lines[-1] += part
    return [line.strip() for line in lines]


def grid_columns(result: EvalResult) -> tuple[list[tuple[str, torch.Tensor | None]], dict[str, list[str]]]:
    """Columns ground truth | y | A⁺y | each method (not ``input``), and per-tile PSNR captions.

    (Titles are plain ASCII: Pillow's default font has no superscript plus.)
    """
    ex = result.examples
    shown = ex["index"].tolist()
    at = {i: k for k, i in enumerate(result.indices)}
    rows = [at[i] for i in shown]
    cols: list[tuple[str, torch.Tensor | None]] = [
        ("ground truth", torch.from_numpy(result.gt_u8[rows])),
        ("y", display_measurement(ex["y"], ex["x"].shape)),
        ("A+y", ex["pinv"]),
    ]
    psnr = {(r["method"], r["index"]): r["psnr"] for r in result.rows}
    captions = {"A+y": [f"{psnr[('input', i)]:.1f} dB" if ("input", i) in psnr else "" for i in shown]}
    for m in result.methods:
        if m["name"] == "input":
            continue
        cols.append((m["label"], torch.from_numpy(result.outputs_u8[m["label"]][rows])))
        captions[m["label"]] = [f"{psnr[(m['label'], i)]:.1f} dB" for i in shown]
    return cols, captions


def plot_lines(
    path: str | Path,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    hline: tuple[float, str] | None = None,
    logx: bool = False,
    xticks: Sequence[float] | None = None,
    size: tuple[int, int] = (760, 500),
) -> Path:
    """A line plot with markers and a legend, drawn with matplotlib and written atomically as PNG.

    Args:
        path: the PNG to write.
        series: label -> ``(x, y)`` points.
        title, xlabel, ylabel: the texts.
        hline: ``(value, label)`` of a dashed reference line; when it lies more than the data's
            span away from them it would squash the data, so only its value goes in the legend.
        logx: logarithmic x axis.
        xticks: the x ticks (default: matplotlib's).
        size: ``(width, height)`` in pixels.

    Returns:
        ``path``.

    Raises:
        InvalidInputError: no points.
        MissingExtraError: matplotlib is not installed (``pip install 'invkit[plot]'``).
    """
    pts = [p for s in series.values() for p in s]
    if not pts:
        raise InvalidInputError("plot_lines needs at least one point")
    Figure = extras.require("matplotlib.figure", install=extras.PLOT_HINT).Figure
    ys = [y for _, y in pts]
    span = max(ys) - min(ys) or abs(max(ys)) or 1.0
    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    ax = fig.add_subplot()
    grey = (90 / 255, 90 / 255, 90 / 255)
    if hline is not None:
        if min(ys) - span <= hline[0] <= max(ys) + span:
            ax.axhline(hline[0], color=grey, linestyle="--", linewidth=1.5, label=hline[1])
        else:
            ax.plot([], [], color=grey, linestyle="--", label=f"{hline[1]}: {hline[0]:.4g} (off the axis)")
    for k, (name, s) in enumerate(series.items()):
        xs, vs = zip(*sorted(s))
        colour = tuple(c / 255 for c in SERIES_COLOURS[k % len(SERIES_COLOURS)])
        ax.plot(xs, vs, color=colour, marker=_MARKERS[k % len(_MARKERS)], markersize=7, linewidth=2, label=name)
    if logx:
        ax.set_xscale("log")
    if xticks is not None:
        ax.set_xticks(list(xticks), [f"{x:g}" for x in xticks])
        ax.minorticks_off()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, color=(0.9, 0.9, 0.9))
    ax.legend()
    fig.tight_layout()
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
