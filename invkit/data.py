r"""Datasets: Fashion-MNIST from its idx files, and a folder of images.

Images come out as float tensors ``(N, C, H, W)`` in ``[-1, 1]`` (``x = 2·u8/255 − 1``), the
range every backbone here is trained on.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) is read from the four idx files of Debian's
``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``); nothing is downloaded.
The 28×28 images are zero-padded by 2 pixels on each side to 32×32 (so the border is the
background, −1 after mapping), the size a 3-level UNet halves cleanly.

The idx format (LeCun's MNIST page): a big-endian header ``0x00 0x00 <dtype> <ndim>``, then
``ndim`` big-endian uint32 dimensions, then the row-major data. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .errors import ConfigError, InvalidInputError, MissingFileError

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "read_idx",
    "fashion_mnist_dir",
    "fashion_mnist",
    "fashion_mnist_labels",
    "to_unit_range",
    "load_image_folder",
    "IMAGE_SUFFIXES",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "INVKIT_FASHION_MNIST_DIR"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_PREFIX = {"train": "train", "test": "t10k"}

Split = Literal["train", "test"]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (optionally ``.gz``) into a numpy array of its declared shape and dtype."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"idx file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise InvalidInputError(f"{path} is not an idx file (bad magic number {data[:4].hex()!r})")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    count = int(np.prod(shape)) if shape else 1
    if len(data) - header != count * dtype.itemsize:
        raise InvalidInputError(
            f"{path}: header declares shape {shape} ({count * dtype.itemsize} bytes) but the file holds "
            f"{len(data) - header} bytes of data; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """The Fashion-MNIST folder: ``root``, else ``$INVKIT_FASHION_MNIST_DIR``, else Debian's path."""
    if root is not None:
        return Path(root)
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env) if env else FASHION_MNIST_DIR


def _idx_path(root: Path, split: Split, kind: str) -> Path:
    if split not in _PREFIX:
        raise ConfigError(f"unknown Fashion-MNIST split {split!r}; use 'train' or 'test'")
    stem = f"{_PREFIX[split]}-{kind}-ubyte"
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise MissingFileError(
        f"Fashion-MNIST file {stem}[.gz] not found in {root}; install the Debian package "
        f"'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist), or point "
        f"${FASHION_MNIST_ENV} (or the root argument) at a folder holding the idx files"
    )


def to_unit_range(u8: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 pixels → ``[-1, 1]``: ``x = 2·u/255 − 1``."""
    u = torch.as_tensor(np.asarray(u8)) if not isinstance(u8, torch.Tensor) else u8
    return u.to(dtype) * (2.0 / 255.0) - 1.0


def fashion_mnist(
    split: Split = "train",
    *,
    root: str | os.PathLike | None = None,
    pad: int = 2,
    dtype: torch.dtype = torch.float32,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images ``(N, 1, 28 + 2·pad, 28 + 2·pad)`` in ``[-1, 1]`` and labels ``(N,)`` int64.

    ``split`` is ``"train"`` (60 000) or ``"test"`` (10 000); ``limit`` keeps the first ``limit``
    images (file order). Padding is with background (0 → −1).
    """
    if pad < 0:
        raise ConfigError(f"pad must be >= 0, got {pad}")
    root = fashion_mnist_dir(root)
    images = read_idx(_idx_path(root, split, "images-idx3"))
    labels = read_idx(_idx_path(root, split, "labels-idx1"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise InvalidInputError(
            f"Fashion-MNIST {split} files in {root} disagree: images {images.shape}, labels {labels.shape}"
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if pad:
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    x = to_unit_range(images, dtype).unsqueeze(1)
    return x, torch.as_tensor(labels.astype(np.int64))


def fashion_mnist_labels(split: Split = "train", *, root: str | os.PathLike | None = None) -> torch.Tensor:
    """Only the labels ``(N,)`` int64 of a split."""
    labels = read_idx(_idx_path(fashion_mnist_dir(root), split, "labels-idx1"))
    return torch.as_tensor(labels.astype(np.int64))


def load_image_folder(
    folder: str | os.PathLike,
    *,
    size: int | tuple[int, int] | None = None,
    channels: int = 3,
    dtype: torch.dtype = torch.float32,
    limit: int | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Every PNG/JPEG in ``folder`` (sorted by file name) as ``(N, channels, H, W)`` in ``[-1, 1]``.

    Images are converted to RGB (``channels=3``) or luminance (``channels=1``, PIL's ``L``). With
    ``size`` (an int for square, or ``(H, W)``) each image is centre-cropped to the short side's
    aspect and resized bilinearly, as SSD's loader does (square crop → resize); without it all
    images must already share one size. Returns the tensor and the file names in order.
    """
    from PIL import Image

    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if limit is not None:
        files = files[:limit]
    if not files:
        raise MissingFileError(f"no PNG/JPEG images in {folder}")
    hw = (size, size) if isinstance(size, int) else size
    arrays = []
    for p in files:
        with Image.open(p) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if hw is not None:
                im = _crop_resize(im, hw)
            arrays.append(np.asarray(im, dtype=np.uint8))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InvalidInputError(
            f"images in {folder} have different sizes {sorted(shapes)[:3]}...; pass size= to resize them"
        )
    u8 = np.stack(arrays)
    u8 = u8[:, None] if channels == 1 else u8.transpose(0, 3, 1, 2)
    return to_unit_range(np.ascontiguousarray(u8), dtype), [p.name for p in files]


def _crop_resize(im, hw: tuple[int, int]):
    from PIL import Image

    H, W = hw
    w, h = im.size
    # crop to the target aspect ratio around the centre, then resize
    if w * H > h * W:
        cw = round(h * W / H)
        left = (w - cw) // 2
        im = im.crop((left, 0, left + cw, h))
    elif w * H < h * W:
        ch = round(w * H / W)
        top = (h - ch) // 2
        im = im.crop((0, top, w, top + ch))
    if im.size != (W, H):
        im = im.resize((W, H), Image.BILINEAR)
    return im
