"""Files and folders in, restorations out: the library behind ``invkit restore``.

:func:`restore_files` finds the images under its inputs, checks everything it can before the
first network call (names, sizes, masks, kernels, the checkpoint, the output folder), then
restores the files in batches of equal size with the core (:mod:`invkit.restore.core`) and
writes each output atomically (:mod:`invkit.io`) into a tree under ``out`` that mirrors the
input tree.

Nothing lost, nothing half-written. As each file completes, one JSON line describing it is
appended to a journal beside the manifest (``manifest.journal*.jsonl``, flushed and fsynced);
``manifest.json`` is rewritten atomically from the journal every few files and at the end. A
rerun of the same command reads the journal (a torn last line, from a kill mid-write, is
ignored) and skips every file whose outputs exist and whose record matches the input's SHA-256
and the settings; different settings on an existing output folder are refused unless
``overwrite``. Under ``torchrun`` each process restores whole batches of the one batch plan
(batch ``k`` on rank ``k mod world``), so every file sees the same batch as in a single process
and the outputs are identical; each process keeps its own journal and rank 0 merges them into
the one manifest after a barrier.

Seeds: file ``i`` (its position in the sorted list of inputs) draws from the generators of
:func:`invkit.evaluation.image_seed` ``(seed, i, stream)``, as in ``invkit eval``.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Mapping, Sequence

import attrs

from ..errors import ConfigError, InvkitError, MissingFileError

__all__ = [
    "IMAGE_SUFFIXES",
    "Source",
    "RestoreSettings",
    "RestoreReport",
    "discover",
    "load_config",
    "read_journal",
    "restore_files",
]

#: what a folder is searched for (case-insensitive), recursively
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
MANIFEST = "manifest.json"
FORMAT = "invkit-restore/1"
#: manifest.json is rewritten from the journal after this many completed files (and at the end)
MANIFEST_EVERY = 16


# ---------------------------------------------------------------------------------------------
# finding the inputs


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


def discover(inputs: Sequence[str | os.PathLike]) -> list[Source]:
    """The image files under ``inputs`` (files, and folders searched recursively), in order.

    A file given directly is named by its file name; a file found in a folder by its path
    relative to that folder (the outputs mirror that tree). Inputs keep their order; a folder's
    files are sorted by relative path, so the list (and every file's seeds) is reproducible.

    Raises:
        MissingFileError: an input does not exist, or nothing was found.
        ConfigError: an input file is not an image, or two inputs share a relative stem (they
            would be written to the same output).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[tuple[Path, PurePosixPath]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted((f for f in p.rglob("*") if f.is_file() and _is_image(f)), key=lambda f: f.relative_to(p).as_posix())
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


# ---------------------------------------------------------------------------------------------
# the settings of a run


@attrs.frozen
class RestoreSettings:
    """Every knob that decides the outputs, resolved (what the manifest records and resume compares).

    ``operator``/``operator_params`` replace ``task`` for any registered operator; ``mask`` and
    ``kernel`` are paths (a mask folder holds one mask per input, matched by relative stem).
    """

    task: str | None = None
    operator: str | None = None
    operator_params: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    degrade: bool = False
    recipe: str = "ssd-30"
    backbone: str = "fashion32"
    checkpoint: str | None = None
    backbone_options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    mask: str | None = None
    kernel: str | None = None
    noise_sigma: float | None = None
    samples: int = 1
    save_samples: bool = False
    seed: int = 0
    dtype: str = "float32"
    tile: str | int = "auto"
    bit_depth: int = 8

    def __attrs_post_init__(self) -> None:
        if (self.task is None) == (self.operator is None):
            raise ConfigError("give exactly one of a task (--task) or an operator (--operator NAME --set key=value)")
        if self.operator is None and self.operator_params:
            raise ConfigError("--set key=value goes with --operator; a task has fixed parameters")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError(f"--samples must be an integer >= 1, got {self.samples!r}")
        if self.save_samples and self.samples < 2:
            raise ConfigError("--save-samples needs --samples K with K >= 2")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"--seed must be an integer >= 0, got {self.seed!r}")
        if self.bit_depth not in (8, 16):
            raise ConfigError(f"--bit-depth must be 8 or 16, got {self.bit_depth!r}")
        if self.noise_sigma is not None and not (isinstance(self.noise_sigma, (int, float)) and math.isfinite(self.noise_sigma) and self.noise_sigma >= 0):
            raise ConfigError(f"--noise-sigma must be a finite number >= 0 ([-1, 1] units), got {self.noise_sigma!r}")
        parse_tile(self.tile)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, every field (paths as given)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in attrs.asdict(self, recurse=False).items()}


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


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def settings_key(resolved: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the resolved settings (what a journal record must match)."""
    from ..io import sha256_bytes

    return sha256_bytes(_canonical(resolved).encode())


# ---------------------------------------------------------------------------------------------
# configuration files


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


# ---------------------------------------------------------------------------------------------
# journal and manifest


def journal_path(out: Path, rank: int = 0) -> Path:
    """Rank 0's journal is ``manifest.journal.jsonl``; rank r's ``manifest.journal.r<r>.jsonl``."""
    return out / ("manifest.journal.jsonl" if rank == 0 else f"manifest.journal.r{rank}.jsonl")


def _journals(out: Path) -> list[Path]:
    return sorted(out.glob("manifest.journal*.jsonl"))


class Journal:
    """An append-only JSON-lines file: each record is flushed and fsynced before :meth:`append`
    returns, so a record that is there describes outputs that are complete on disk."""

    def __init__(self, path: Path):
        self.path = path
        self._f = open(path, "ab")
        # a kill mid-line leaves a torn last line: start on a fresh line so the next record parses
        if self._f.tell() and not _ends_with_newline(path):
            self._write(b"\n")

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._f.flush()
        os.fsync(self._f.fileno())

    def append(self, record: Mapping[str, Any]) -> None:
        self._write((json.dumps(record, default=str, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        self._f.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_journal(out: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The latest record per file key from every journal in ``out`` (lines that do not parse,
    such as a line torn by a kill, are ignored)."""
    records: dict[str, tuple[float, dict[str, Any]]] = {}
    for path in _journals(Path(out)):
        with open(path, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(rec, dict) or "key" not in rec:
                    continue
                stamp = float(rec.get("finished", 0.0))
                if rec["key"] not in records or stamp >= records[rec["key"]][0]:
                    records[rec["key"]] = (stamp, rec)
    return {k: v for k, (_, v) in records.items()}


def _read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


_TMP = re.compile(r"^\..+\.\d+\.tmp$")


def _remove_stale_temporaries(out: Path) -> None:
    """Temporaries of :func:`invkit.io.write_atomic` left by a killed run (never complete files)."""
    for p in out.rglob(".*.tmp"):
        if p.is_file() and _TMP.match(p.name):
            p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# the report


@attrs.define
class RestoreReport:
    """What :func:`restore_files` did: the manifest it wrote and the per-file records."""

    out: Path
    manifest: dict[str, Any]
    #: keys restored by this call, keys skipped (already done), keys that failed
    done: list[str]
    skipped: list[str]
    failed: list[str]

    @property
    def exit_status(self) -> int:
        """0 if every file is restored, 1 if some failed (the CLI's exit status)."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        """One paragraph for the terminal: counts, then one line per failed file."""
        lines = [f"restored {len(self.done)}, skipped {len(self.skipped)} (already done), failed {len(self.failed)}; manifest: {self.out / MANIFEST}"]
        files = {r["key"]: r for r in self.manifest.get("files", [])}
        for key in self.failed:
            lines.append(f"  failed: {files.get(key, {}).get('input', key)}: {files.get(key, {}).get('error', '?')}")
        return "\n".join(lines)
