r"""Reading a user's images into ``[-1, 1]`` tensors, and writing restorations back.

:func:`read_image` takes a path, a :class:`PIL.Image.Image`, a NumPy array or a tensor and returns
a :class:`Picture`: the pixels as a float tensor ``(C, H, W)`` in ``[-1, 1]`` (``x = 2u/u_max − 1``
with ``u_max`` = 255 or 65535), plus what a writer needs to give the user back a file of the same
kind (mode, bit depth, alpha) and notes on every conversion made.

Decisions (each one is recorded in :attr:`Picture.notes` when it applies):

- **EXIF orientation** is honoured (:func:`PIL.ImageOps.exif_transpose`): a phone photo taken
  sideways is restored the way it is displayed.
- **Alpha** (``RGBA``, ``LA``, ``PA``, palette transparency) is kept aside in
  :attr:`Picture.alpha` and *not* restored: the colour channels are restored as they are stored
  (no compositing over a background, which would bake the background into ``y``), and the writer
  re-attaches the alpha, resized to the output's size for super-resolution
  (:func:`resize_alpha`).
- **Palette** images (``P``) become ``RGB`` (or ``L`` when every palette entry is gray).
- **16-bit gray** (``I;16``, ``I``) is read at full precision and remembered as
  ``bit_depth = 16``; 32-bit integer ``I`` images are assumed to hold 16-bit values (PIL's
  reading of 16-bit PNGs) and clipped to ``[0, 65535]`` with a note otherwise.
- Other modes (``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``1``, ``F``) are converted to ``RGB`` /
  ``L`` with a note.
- Unreadable or corrupt files raise :class:`~invkit.errors.InvalidInputError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import attrs
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import CapabilityError, ConfigError, InvalidDTypeError, InvalidInputError, MissingFileError
from ..io import save_png, write_atomic

__all__ = ["Picture", "read_image", "write_image", "match_channels", "resize_alpha", "to_uint", "ImageLike", "IMAGE_SUFFIXES"]

#: what :func:`read_image` accepts
ImageLike = Union[str, os.PathLike, "PIL.Image.Image", np.ndarray, torch.Tensor]  # noqa: F821

#: file suffixes treated as images when a folder is listed
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


@attrs.frozen
class Picture:
    """One image in invkit's convention, with what is needed to write it back.

    Attributes:
        x: pixels ``(C, H, W)`` in ``[-1, 1]`` (float32, or float64 when given float64), C = 1 or 3.
        mode: the PIL mode of the source (``"L"``, ``"RGB"``, ``"RGBA"``, ``"I;16"``, ``"P"``,
            ...; ``"array"`` / ``"tensor"`` for in-memory inputs).
        bit_depth: 8 or 16 — the precision to write the output with by default.
        alpha: the transparency ``(1, H, W)`` in ``[0, 1]`` kept aside, or None.
        exif_transposed: True when an EXIF orientation tag rotated or flipped the pixels.
        notes: every conversion made, one sentence each.
        source: the file's path, or None for in-memory inputs.
    """

    x: torch.Tensor
    mode: str
    bit_depth: int = 8
    alpha: torch.Tensor | None = None
    exif_transposed: bool = False
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    source: str | None = None

    @property
    def channels(self) -> int:
        """The number of channels of ``x`` (1 gray, 3 RGB)."""
        return int(self.x.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.x.shape[-2]), int(self.x.shape[-1])


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def _from_pil(img: Any, source: str | None) -> Picture:
    notes: list[str] = []
    try:
        img.load()
        orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
        transposed = orientation not in (None, 1)
        if transposed:
            img = ImageOps.exif_transpose(img)
            notes.append(f"EXIF orientation {orientation} applied (the image is restored as it is displayed)")
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(f"{_where(source)}cannot read the image ({exc}); is the file complete and an image?") from exc
    mode = img.mode
    alpha = None
    bit_depth = 8
    if mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        rgb = np.asarray(img)[..., :3]
        gray = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
        notes.append(f"palette image converted to {'gray' if gray else 'RGB'}")
        if gray:
            img = img.convert("LA" if has_alpha else "L")
    elif mode == "PA":
        img = img.convert("RGBA")
        notes.append("palette image with alpha converted to RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        if img.mode in ("La", "RGBa"):  # premultiplied: undo it first
            img = img.convert(img.mode.upper().replace("A", "") + "A")
        a = np.asarray(img)[..., -1].astype(np.float32) / 255.0
        alpha = torch.from_numpy(a.copy())[None]
        img = img.convert("L" if img.mode == "LA" else "RGB")
        notes.append("alpha channel kept aside: the colour is restored and the alpha re-attached to the output")
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        u = np.asarray(img).astype(np.float64)
        if img.mode == "I" and (u.min() < 0 or u.max() > 65535):
            notes.append("32-bit integer image clipped to the 16-bit range [0, 65535]")
            u = np.clip(u, 0, 65535)
        x = torch.from_numpy(u / 65535.0)[None]
        bit_depth = 16
    elif img.mode == "L":
        x = torch.from_numpy(np.asarray(img).astype(np.float64) / 255.0)[None]
    elif img.mode == "RGB":
        x = torch.from_numpy(np.asarray(img).astype(np.float64).transpose(2, 0, 1) / 255.0)
    elif img.mode == "F":
        f = np.asarray(img).astype(np.float64)
        notes.append("32-bit float image read as values in [0, 1] (clipped)")
        x = torch.from_numpy(np.clip(f, 0, 1))[None]
        bit_depth = 16
    else:
        target = "L" if img.mode == "1" else "RGB"
        notes.append(f"{img.mode} image converted to {target}")
        img = img.convert(target)
        u = np.asarray(img).astype(np.float64) / 255.0
        x = torch.from_numpy(u[None] if target == "L" else u.transpose(2, 0, 1))
    x = (2.0 * x - 1.0).to(torch.float32).contiguous()
    return Picture(x=x, mode=mode, bit_depth=bit_depth, alpha=alpha, exif_transposed=transposed, notes=notes, source=source)


def _from_array(a: np.ndarray) -> Picture:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidInputError(f"a NumPy image must be (H, W) or (H, W, C) with C in 1..4, got shape {a.shape}")
    notes: list[str] = []
    if a.dtype == np.uint8:
        u, bit_depth = a.astype(np.float64) / 255.0, 8
    elif a.dtype == np.uint16:
        u, bit_depth = a.astype(np.float64) / 65535.0, 16
    elif np.issubdtype(a.dtype, np.floating):
        u, bit_depth = a.astype(np.float64), 8
        if not np.isfinite(u).all():
            raise InvalidInputError("the float image contains NaN or Inf values")
        if u.min() < 0 or u.max() > 1:
            raise InvalidInputError(
                f"a float NumPy image must hold values in [0, 1] (got {u.min():.3g}..{u.max():.3g}); "
                f"divide by 255 for 8-bit data, or pass a tensor in [-1, 1]"
            )
    else:
        raise InvalidDTypeError(f"a NumPy image must be uint8, uint16 or float in [0, 1], got {a.dtype}")
    alpha = None
    if a.shape[2] in (2, 4):
        alpha = torch.from_numpy(u[:, :, -1].astype(np.float32).copy())[None]
        u = u[:, :, :-1]
        notes.append("alpha channel kept aside: the colour is restored and the alpha re-attached to the output")
    x = torch.from_numpy((2.0 * u - 1.0).transpose(2, 0, 1).copy()).to(torch.float32)
    return Picture(x=x, mode="array", bit_depth=bit_depth, alpha=alpha, notes=notes)


def _from_tensor(t: torch.Tensor) -> Picture:
    if not t.is_floating_point():
        raise InvalidDTypeError(
            f"an image tensor must be floating point in [-1, 1], got {t.dtype}; use x.float() / 127.5 - 1 for uint8"
        )
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] not in (1, 3) or t.shape[1] == 0 or t.shape[2] == 0:
        raise InvalidInputError(f"an image tensor must be (C, H, W) or (1, C, H, W) with C = 1 or 3, got {tuple(t.shape)}")
    t = t.detach()
    if not bool(torch.isfinite(t).all()):
        raise InvalidInputError("the image tensor contains NaN or Inf values")
    if float(t.min()) < -1 - 1e-6 or float(t.max()) > 1 + 1e-6:
        raise InvalidInputError(
            f"an image tensor must hold values in [-1, 1], got {float(t.min()):.3g}..{float(t.max()):.3g}"
        )
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    return Picture(x=t.to(device="cpu", dtype=dtype).clone(), mode="tensor", bit_depth=8)


def read_image(image: ImageLike | Picture) -> Picture:
    """Read an image from a file, a PIL image, a NumPy array or a tensor.

    Args:
        image: a path (PNG, JPEG, TIFF, BMP, WebP, ...), a :class:`PIL.Image.Image`, a NumPy
            array ``(H, W)`` / ``(H, W, C)`` (uint8, uint16, or float in ``[0, 1]``; C = 2 or 4
            carries alpha last), a tensor ``(C, H, W)`` / ``(1, C, H, W)`` in ``[-1, 1]``, or a
            :class:`Picture` (returned as it is).

    Returns:
        The :class:`Picture`; see the module doc for every conversion.

    Raises:
        MissingFileError: the path does not exist.
        InvalidInputError: the file is not a readable image, or the array/tensor has the wrong
            shape or range.
        InvalidDTypeError: an integer tensor, or an array of an unsupported dtype.
    """
    if isinstance(image, Picture):
        return image
    if isinstance(image, torch.Tensor):
        return _from_tensor(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)

    if isinstance(image, Image.Image):
        return _from_pil(image, None)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if path.is_dir():
            raise InvalidInputError(f"{path} is a folder; read_image takes one image (restore folders with `invkit restore DIR`)")
        if not path.is_file():
            raise MissingFileError(f"{path}: no such image file")
        try:
            with Image.open(path) as img:
                return _from_pil(img, str(path))
        except UnidentifiedImageError as exc:
            raise InvalidInputError(f"{path}: not an image PIL can read ({exc}); give a PNG, JPEG, TIFF, BMP or WebP file") from exc
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read the image ({exc}); the file may be truncated or corrupt") from exc
    raise InvalidInputError(
        f"cannot read an image from a {type(image).__name__}; give a path, a PIL image, a NumPy array or a tensor"
    )


def match_channels(x: torch.Tensor, channels: int, *, colorization: bool = False) -> tuple[torch.Tensor, str | None]:
    """Convert ``x`` ``(C, H, W)`` to the backbone's channel count, never silently.

    - RGB to a 1-channel backbone: ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (PIL's
      ``L``), with a note.
    - gray to a 3-channel backbone: for colorization the gray image *is* the measurement (no
      conversion, no note: the operator maps 3 channels to 1); otherwise it is replicated into
      3 channels, with a note.

    Args:
        x: the image ``(C, H, W)`` (or ``(B, C, H, W)``).
        channels: the backbone's channel count.
        colorization: the task's measurement is a 1-channel image of a ``channels``-channel one.

    Returns:
        ``(x, note)`` with ``note`` None when nothing was converted.

    Raises:
        CapabilityError: a channel count that neither rule covers.
    """
    C = int(x.shape[-3])
    if C == channels or (colorization and C == 1):
        return x, None
    if C == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).reshape(3, 1, 1)
        return (x * w).sum(dim=-3, keepdim=True), "RGB image converted to gray (BT.601 luma) for the 1-channel backbone"
    if C == 1 and channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).clone(), "gray image replicated into 3 channels for the RGB backbone"
    raise CapabilityError(f"cannot convert a {C}-channel image for a {channels}-channel backbone")


def resize_alpha(alpha: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The alpha ``(1, h, w)`` resized (bicubic, antialiased, clipped to [0, 1]) to ``size = (H, W)``."""
    if tuple(alpha.shape[-2:]) == tuple(size):
        return alpha
    a = torch.nn.functional.interpolate(alpha[None].float(), size=tuple(size), mode="bicubic", antialias=True, align_corners=False)
    return a[0].clamp(0, 1)


def to_uint(x: torch.Tensor, bit_depth: int = 8) -> np.ndarray:
    """``(C, H, W)`` in ``[-1, 1]`` → uint8 / uint16 pixels, rounded to nearest and clipped."""
    if bit_depth not in (8, 16):
        raise ConfigError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    top = 255 if bit_depth == 8 else 65535
    u = ((x.detach().cpu().double().clamp(-1, 1) + 1) * (top / 2)).round()
    return u.numpy().astype(np.uint8 if bit_depth == 8 else np.uint16)


def write_image(x: torch.Tensor, path: str | os.PathLike, *, bit_depth: int = 8, alpha: torch.Tensor | None = None) -> Path:
    """Write ``x`` ``(C, H, W)`` in ``[-1, 1]`` as a PNG, atomically (via :mod:`invkit.io`).

    Args:
        x: the image, C = 1 or 3 (a leading batch dim of 1 is accepted).
        path: the target file (``.png``).
        bit_depth: 8, or 16 for gray images (PIL cannot write 16-bit colour PNGs).
        alpha: ``(1, H', W')`` in ``[0, 1]`` to attach (resized to ``(H, W)`` if needed); written
            as ``LA`` / ``RGBA`` at 8 bits.

    Returns:
        ``path``.

    Raises:
        ConfigError: 16-bit colour or 16-bit with alpha asked for.
    """
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise InvalidInputError(f"write_image expects (C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    if bit_depth == 16 and (x.shape[0] == 3 or alpha is not None):
        raise ConfigError("16-bit PNGs are written for gray images without alpha only; use bit_depth=8")
    u = to_uint(x, bit_depth)
    if alpha is None:
        return save_png(u, path)
    a = to_uint(resize_alpha(alpha, tuple(x.shape[-2:])) * 2 - 1, 8)[0]
    rgb = u[0] if u.shape[0] == 1 else u.transpose(1, 2, 0)
    arr = np.dstack([rgb, a]) if rgb.ndim == 3 else np.stack([rgb, a], axis=-1)
    img = Image.fromarray(np.ascontiguousarray(arr), "LA" if u.shape[0] == 1 else "RGBA")
    return write_atomic(path, lambda tmp: img.save(tmp, format="PNG"))
