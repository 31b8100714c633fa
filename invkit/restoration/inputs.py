"""The inputs of ``invkit restore``: finding the image files, reading a run file (TOML), and the
checks on paths that need no network (the output folder, image sizes from file headers, masks).

Part of the files layer (:mod:`invkit.restoration.files`); nothing here writes anything.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence

import attrs
from PIL import Image

from ..errors import ConfigError, MissingFileError
from ..io import check_output_dir
from .images import IMAGE_SUFFIXES  # what a folder is searched for (case-insensitive), recursively

__all__ = [
    "CONFIG_KEYS",
    "Source",
    "check_masks",
    "check_writable",
    "discover",
    "header_size",
    "load_config",
    "mask_for",
    "parse_tile",
]


@attrs.frozen
class Source:
    """One input file: where it is, its path relative to the input it was found under, and its
    position in the sorted list (the ``index`` of its seeds and of sharding)."""

    path: Path
    relative: PurePosixPath
    index: int

    @property
    def key(self) -> str:
        """The relative stem (``sub/photo`` for ``sub/photo.jpg``): the file's name in the manifest."""
        return str(self.relative.with_suffix(""))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def discover(inputs: Sequence[str | os.PathLike], *, exclude: Sequence[str | os.PathLike] = ()) -> list[Source]:
    """The image files under ``inputs`` (files, and folders searched recursively), in order.

    A file given directly is named by its file name; a file found in a folder by its path
    relative to that folder (the outputs mirror that tree). Inputs keep their order; a folder's
    files are sorted by relative path, so the list (and every file's seeds) is reproducible.
    Files under an ``exclude`` folder (the output folder, a mask folder inside an input folder)
    are left out of folder searches; hidden files are always left out.

    Raises:
        MissingFileError: an input does not exist, or nothing was found.
        ConfigError: an input file is not an image, or two inputs share a relative stem (they
            would be written to the same output).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[tuple[Path, PurePosixPath]] = []
    skip = [Path(e).resolve() for e in exclude]

    def wanted(f: Path) -> bool:
        if not (f.is_file() and _is_image(f)):
            return False
        r = f.resolve()
        return not any(r.is_relative_to(e) for e in skip)

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted((f for f in p.rglob("*") if wanted(f)), key=lambda f: f.relative_to(p).as_posix())
            found += [(f, PurePosixPath(f.relative_to(p).as_posix())) for f in files]
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise ConfigError(f"input {str(p)!r} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
            found.append((p, PurePosixPath(p.name)))
        else:
            raise MissingFileError(f"input {str(p)!r} does not exist; give image files and/or folders")
    if not found:
        raise MissingFileError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {', '.join(map(str, inputs)) or '(no inputs)'}")
    seen: dict[str, Path] = {}
    for path, rel in found:
        key = str(rel.with_suffix(""))
        if key in seen:
            raise ConfigError(
                f"two inputs would be written to the same output {key}.png: {str(seen[key])!r} and {str(path)!r}; "
                "rename one or restore them in separate runs"
            )
        seen[key] = path
    return [Source(path, rel, i) for i, (path, rel) in enumerate(found)]


def parse_tile(tile: str | int) -> str | int:
    """``auto``, ``off`` or a tile size in pixels (>= 8)."""
    if tile in ("auto", "off"):
        return tile
    try:
        size = int(tile)
    except (TypeError, ValueError):
        size = 0
    if str(size) != str(tile).strip() or size < 8:
        raise ConfigError(f"--tile must be auto, off or a size in pixels >= 8, got {tile!r}")
    return size


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML file of ``invkit restore`` options (the long option names, ``-`` or ``_``).

    Relative paths in it (``inputs``, ``out``, ``mask``, ``kernel``, ``checkpoint``) are taken
    relative to the file's folder, so a run file works from any directory. ``backbone-opt`` and
    ``set`` are tables (``[set]`` ``scale = 4``). Unknown keys are an error.

    Raises:
        MissingFileError: the file does not exist.
        ConfigError: it is not valid TOML, has unknown keys, or Python 3.10 has no TOML reader.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config file {str(path)!r} not found")
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading --config needs Python >= 3.11 or the 'tomli' package (pip install tomli)") from None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    cfg = {k.replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"config file {str(path)!r}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(CONFIG_KEYS))}")
    for key, value in cfg.items():
        kinds = CONFIG_KEYS[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = "/".join(k.__name__ for k in kinds)
            raise ConfigError(f"config file {str(path)!r}: {key} must be {names}, got {value!r}")
    base = path.parent
    if isinstance(cfg.get("inputs"), str):
        cfg["inputs"] = [cfg["inputs"]]
    for key in ("out", "mask", "kernel", "checkpoint"):
        if key in cfg:
            cfg[key] = str(_relative_to(base, cfg[key]))
    if "inputs" in cfg:
        cfg["inputs"] = [str(_relative_to(base, p)) for p in cfg["inputs"]]
    return cfg


def _relative_to(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


_num = (int, float)
#: config key -> accepted TOML types
CONFIG_KEYS: dict[str, tuple[type, ...]] = {
    "inputs": (list, str),
    "out": (str,),
    "task": (str,),
    "operator": (str,),
    "set": (dict,),
    "degrade": (bool,),
    "recipe": (str,),
    "backbone": (str,),
    "checkpoint": (str,),
    "backbone_opt": (dict,),
    "mask": (str,),
    "kernel": (str,),
    "noise_sigma": _num,
    "samples": (int,),
    "save_samples": (bool,),
    "seed": (int,),
    "batch_size": (int,),
    "device": (str,),
    "dtype": (str,),
    "tile": (str, int),
    "bit_depth": (int,),
    "threads": (int,),
    "overwrite": (bool,),
    "quiet": (bool,),
}


def check_writable(out: Path) -> None:
    """``out`` is a folder we may write in, or can be created (nothing is created here;
    :func:`invkit.io.check_output_dir`)."""
    check_output_dir(out, "--out")


def header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) as displayed (EXIF orientation applied) from the file's header, or None if unreadable."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - an unreadable file is reported when its turn comes
        return None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def mask_for(mask: str | None, src: Source) -> Path | None:
    """The mask of ``src``: the one file, or the file of the same relative stem in the mask folder."""
    if mask is None:
        return None
    m = Path(mask)
    if m.is_file():
        return m
    stem = src.relative.with_suffix("")
    for cand in sorted(m.joinpath(*stem.parent.parts).glob(f"{stem.name}.*")):
        if cand.suffix.lower() in IMAGE_SUFFIXES and cand.is_file():
            return cand
    raise MissingFileError(f"no mask for input {str(src.path)!r} in the mask folder {str(m)!r} (expected {stem}.png or another image type)")


def check_masks(mask: str | None, sources: Sequence[Source], sizes: Mapping[str, Any], masks: Mapping[str, Path | None], read_mask: Callable) -> None:
    """A mask file must fit some input (inputs it does not fit fail one by one); a mask folder
    must hold a readable mask of its input's size for every input.

    Args:
        mask: the ``mask`` setting (a file, a folder, or None).
        sources: the inputs.
        sizes: (H, W) per input key from :func:`header_size` (None if unreadable).
        masks: each input's mask file (:func:`mask_for`).
        read_mask: :func:`invkit.restoration.read_mask`.

    Raises:
        ConfigError: a mask file fits no input, or a folder's mask is unreadable or of another size.
    """
    if mask is None:
        return
    if Path(mask).is_file():
        hw = tuple(read_mask(mask).shape[-2:])
        known = {v for v in sizes.values() if v is not None}
        if known and hw not in known:
            raise ConfigError(
                f"the mask {mask!r} is {hw[0]}×{hw[1]} (H×W) but no input has that size "
                f"(e.g. {sorted(known)[0][0]}×{sorted(known)[0][1]}); masks are never resized"
            )
        return
    for s in sources:
        m = masks[s.key]
        hw = header_size(m)
        if hw is None:
            raise ConfigError(f"the mask {str(m)!r} (of {str(s.path)!r}) is not a readable image")
        if sizes[s.key] is not None and hw != sizes[s.key]:
            raise ConfigError(
                f"the mask {str(m)!r} is {hw[0]}×{hw[1]} but its input {str(s.path)!r} is {sizes[s.key][0]}×{sizes[s.key][1]}; "
                "masks are never resized"
            )
