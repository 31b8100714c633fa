"""What an evaluation reads: the images, the backbone, the device and the dtype names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from PIL import Image, UnidentifiedImageError

from .. import data
from ..checks import check_device
from ..errors import ConfigError, InvalidInputError, InvkitError, UnknownNameError
from ..plugins import backbones_registry

__all__ = ["DTYPES", "FASHION_DATASETS", "load_images", "load_backbone", "data_dtype", "check_device", "ground_truth_uint8"]

#: the dtype names every command takes: float32/float64 weights, or bfloat16/float16 autocast
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
FASHION_DATASETS = {"fashion-test": "test", "fashion-train": "train"}


def data_dtype(dtype: str) -> torch.dtype:
    """The dtype of images and recipes for a backbone ``dtype`` name: half-precision backbones run
    under autocast, so images and recipes stay float32."""
    return torch.float64 if dtype == "float64" else torch.float32


def load_images(dataset: str, *, n: int, offset: int = 0, channels: int | None = None, size: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Images ``offset .. offset + n − 1`` of ``dataset`` in [-1, 1] (float32) and their names.

    Args:
        dataset: ``fashion-test`` / ``fashion-train`` (Fashion-MNIST padded to 32×32) or a folder
            of PNG/JPEG files (sorted by name; converted to ``channels`` and resized to ``size``).
        n: how many images.
        offset: index of the first.
        channels: 1 or 3 for a folder (default 3).
        size: square size for a folder (default: as stored; all must then agree).

    Raises:
        UnknownNameError: neither a Fashion-MNIST split nor a folder.
        InvalidInputError: fewer than ``offset + n`` images, or a file that is not a readable
            image (an error naming it, not a skip: skipping would renumber the images and so
            change every later image's seeds).
    """
    if dataset in FASHION_DATASETS:
        x, _ = data.fashion_mnist(FASHION_DATASETS[dataset], limit=offset + n)
        names = [f"{dataset}-{i:05d}" for i in range(offset, min(offset + n, x.shape[0]))]
        total = x.shape[0]
    else:
        folder = Path(dataset)
        if not folder.is_dir():
            raise UnknownNameError(
                f"dataset {dataset!r} is neither {' nor '.join(FASHION_DATASETS)} nor an existing folder of images"
            )
        try:
            x, files = data.load_image_folder(folder, size=size, channels=channels or 3, limit=offset + n)
        except InvkitError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:  # what Pillow raises on a broken file
            raise InvalidInputError(f"dataset {dataset!r}: {_broken_file(folder, offset + n) or exc}") from None
        names, total = files[offset:], x.shape[0]
    if total < offset + n:
        raise InvalidInputError(f"dataset {dataset!r} has {total} images, fewer than offset + n = {offset + n}")
    return x[offset : offset + n], names


def _broken_file(folder: Path, limit: int) -> str | None:
    """The first of the ``limit`` files ``load_image_folder`` reads that Pillow cannot decode."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in data.IMAGE_SUFFIXES and p.is_file())[:limit]
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
        except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as exc:
            return f"cannot read image {p.name} ({type(exc).__name__}: {exc}); fix or remove it"
    return None


def load_backbone(name: str, *, checkpoint: str | None = None, device: str = "cpu", dtype: str = "float32", options: Mapping[str, Any] | None = None):
    """Build the registered backbone ``name`` on ``device`` in eval mode.

    Args:
        name: a name in ``invkit.backbones()``.
        checkpoint: its weights file, if it takes one.
        device: torch device.
        dtype: a :data:`DTYPES` name (its weights, or autocast for half types).
        options: more factory keyword arguments (``--backbone-opt``).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    params = dict(options or {})
    if checkpoint is not None:
        params["checkpoint"] = checkpoint
    params.setdefault("device", device)
    params.setdefault("dtype", DTYPES[dtype])
    return backbones_registry.build(name, **params).eval()


def ground_truth_uint8(x: torch.Tensor) -> torch.Tensor:
    """The ground truth's own uint8 pixels: ``round((x + 1)·127.5)``.

    Dataset images are ``2u/255 − 1`` of their file's pixels ``u``; rounding recovers ``u``
    exactly, whereas truncation (how SSD saves *restorations*) turns ``u`` into ``u − 1`` for
    about one value in five through float round-off. Metrics compare the truncated restoration
    with these pixels, as the paper compared saved PNGs with the dataset's files.
    """
    return ((x.detach().cpu().double() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
