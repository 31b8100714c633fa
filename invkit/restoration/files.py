"""Files and folders in, restorations out: the library behind ``invkit restore``.

:func:`restore_files` finds the images under its inputs, checks everything it can before the
first network call (names, sizes, masks, kernels, the checkpoint, the output folder), then
restores the files in batches of equal size with the core (:mod:`invkit.restoration.core`) and
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
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence

import attrs

from ..errors import ConfigError, InvkitError, MissingFileError
from ..evaluation import check_device
from .images import IMAGE_SUFFIXES  # what a folder is searched for (case-insensitive), recursively

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

MANIFEST = "manifest.json"
FORMAT = "invkit-restore/1"
#: manifest.json is rewritten from the journal after this many completed files (and at the end)
MANIFEST_EVERY = 16
#: ... but at most once in this many seconds (each rewrite is O(number of files))
MANIFEST_SECONDS = 10.0


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
    #: None: the input's (16 for 16-bit gray files, else 8)
    bit_depth: int | None = None

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
        if self.bit_depth not in (None, 8, 16):
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


# ---------------------------------------------------------------------------------------------
# checks before any work


def _check_writable(out: Path) -> None:
    """``out`` is a folder we may write in, or can be created (nothing is created here)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a folder")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to --out {str(out)!r}: {str(probe)!r} is not a writable folder")


def _header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) as displayed (EXIF orientation applied) from the file's header, or None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - an unreadable file is reported when its turn comes
        return None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _mask_for(mask: str | None, src: Source) -> Path | None:
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


def _output_names(key: str, s: RestoreSettings) -> dict[str, str]:
    """The outputs of one file, relative to ``out`` (posix)."""
    names = {"restoration": f"{key}.png"}
    if s.degrade:
        names.update(y=f"{key}.y.png", pinv=f"{key}.pinv.png")
    if s.samples > 1:
        names["std"] = f"{key}.std.png"
        if s.save_samples:
            names.update({f"sample{k}": f"{key}.sample{k}.png" for k in range(s.samples)})
    return names


# ---------------------------------------------------------------------------------------------
# the run


def _dist() -> Any:
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def restore_files(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    task: str | None = None,
    operator: str | None = None,
    operator_params: Mapping[str, Any] | None = None,
    degrade: bool = False,
    recipe: str = "ssd-30",
    backbone: str = "fashion32",
    checkpoint: str | None = None,
    backbone_options: Mapping[str, Any] | None = None,
    mask: str | os.PathLike | None = None,
    kernel: str | os.PathLike | None = None,
    noise_sigma: float | None = None,
    samples: int = 1,
    save_samples: bool = False,
    seed: int = 0,
    batch_size: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
    tile: str | int = "auto",
    bit_depth: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    model: Any = None,
    shard: tuple[int, int] | None = None,
    command: Any = None,
    manifest_every: int = MANIFEST_EVERY,
) -> RestoreReport:
    """Restore every image under ``inputs`` into ``out`` (see the module doc); resumable.

    Args:
        inputs: image files and/or folders (searched recursively).
        out: the output folder; ``out/<relative stem>.png`` per input, plus ``manifest.json``.
        task: a task of the evaluation tasks (`invkit eval --task`) or ``inpainting``/``blur``
            (:func:`invkit.restoration.prepare`); or give ``operator``.
        operator: any registered operator instead of a task, with ``operator_params``.
        operator_params: the operator's parameters.
        degrade: the inputs are clean: ``y`` is synthesised (seeded per file), and ``y``, ``A⁺y``
            and PSNR/SSIM against the input are saved too.
        recipe: a preset with optional overrides (``"ssd-30"``, ``"ddnm:generation_steps=20"``)
            or ``"input"`` (``A⁺y``, no network).
        backbone: a registered backbone name (``fashion32`` is embedded).
        checkpoint: the backbone's weights file.
        backbone_options: extra keyword arguments of the backbone.
        mask: an inpainting mask file, or a folder with one mask per input (same relative stem).
        kernel: a blur kernel (``.npy`` or gray PNG).
        noise_sigma: Gaussian noise σ in ``[-1, 1]`` units.
        samples: K restorations per file: the mean is the output, ``<stem>.std.png`` the spread.
        save_samples: also write the K samples.
        seed: the base seed (file ``i``'s seeds derive from ``(seed, i)``).
        batch_size: files of equal size restored together.
        device: ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``float32``/``float64``, or ``bfloat16``/``float16`` autocast of the backbone.
        tile: ``auto``, ``off`` or a tile size in pixels.
        bit_depth: 8 or 16 (gray only); None: the input's.
        overwrite: replace the outputs of a run with other settings.
        progress: a progress bar over files (with ETA).
        model: a backbone object to use instead of loading ``backbone``.
        shard: ``(rank, world)`` under ``torchrun`` (a process group must be initialised).
        command: what to record as the command in the manifest.
        manifest_every: rewrite ``manifest.json`` after this many completed files (at most once
            every :data:`MANIFEST_SECONDS`; the journal is the record in between).

    Returns:
        The :class:`RestoreReport` (rank 0's holds the merged manifest).

    Raises:
        InvkitError: anything wrong that can be found before the first network call (names,
            paths, the output folder, the checkpoint, masks and kernels, other settings in
            ``out``); nothing has been written then. A bad *input file* is not raised: it is
            reported in the manifest and :attr:`RestoreReport.failed`.
    """
    import torch

    from .. import __version__
    from ..evaluation import image_seed, load_backbone
    from ..io import environment, sha256_file
    from .core import DTYPES, build_recipe, plan_job, prepare, read_kernel, read_mask, restore_batch, sample_seed

    started = time.time()
    rank, world = shard if shard is not None else (0, 1)
    if not (isinstance(rank, int) and isinstance(world, int) and 0 <= rank < world):
        raise ConfigError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    settings = RestoreSettings(
        task=task, operator=operator, operator_params=dict(operator_params or {}), degrade=bool(degrade), recipe=recipe,
        backbone=backbone, checkpoint=None if checkpoint is None else str(checkpoint), backbone_options=dict(backbone_options or {}),
        mask=None if mask is None else str(mask), kernel=None if kernel is None else str(kernel), noise_sigma=noise_sigma,
        samples=samples, save_samples=bool(save_samples), seed=seed, dtype=dtype, tile=parse_tile(tile), bit_depth=bit_depth,
    )  # fmt: skip
    out = Path(out)
    mode = "degrade" if settings.degrade else "measured"
    check_device(str(device))

    # -- everything checkable before the first network call ----------------------------------
    # the output folder and a mask folder may sit inside an input folder: never take them as inputs
    sources = discover(inputs, exclude=[out, *([settings.mask] if settings.mask and Path(settings.mask).is_dir() else [])])
    _check_writable(out)
    if settings.checkpoint is not None and not Path(settings.checkpoint).is_file():
        raise MissingFileError(f"checkpoint {settings.checkpoint!r} not found")
    if settings.mask is not None and not Path(settings.mask).exists():
        raise MissingFileError(f"mask {settings.mask!r} not found (a mask file, or a folder with one mask per input)")
    kernel_t = read_kernel(settings.kernel) if settings.kernel is not None else None
    sizes = {s.key: _header_size(s.path) for s in sources}
    masks = {s.key: _mask_for(settings.mask, s) for s in sources}
    _check_masks(settings, sources, sizes, masks, read_mask)
    if kernel_t is not None:
        shapes = [hw for hw in sizes.values() if hw is not None]
        if shapes and all(kernel_t.shape[0] > hw[0] or kernel_t.shape[1] > hw[1] for hw in shapes):
            raise ConfigError(f"the kernel ({kernel_t.shape[0]}×{kernel_t.shape[1]}) is larger than every input image")
    names = {}
    for s in sources:
        for kind, name in _output_names(s.key, settings).items():
            if name in names:
                raise ConfigError(f"two outputs would share the name {name}: of {str(names[name])!r} and {str(s.path)!r}; rename one input")
            names[name] = s.path
    if model is None:
        model = _load_backbone(settings, device, dtype, load_backbone)
    channels = int(getattr(model, "channels", 0) or 0)
    if settings.bit_depth == 16 and channels != 1:
        raise ConfigError("--bit-depth 16 is for gray outputs (a 1-channel backbone); PNG colour is written at 8 bits")
    # the task, operator, recipe, mask and kernel together, on a blank image of the first input
    # whose size is known (and fits the mask file: _check_masks made sure one does)
    fits = {s.key: masks[s.key] is None or Path(settings.mask).is_dir() or _header_size(masks[s.key]) == sizes[s.key] for s in sources}
    first = next((s for s in sources if sizes[s.key] is not None and fits[s.key]), None)
    if first is not None:
        probe = prepare(
            torch.zeros((channels, *sizes[first.key])), settings.task or "sr4", backbone=model, mode=mode,
            mask=None if masks[first.key] is None else read_mask(masks[first.key]),
            kernel=kernel_t, noise_sigma=settings.noise_sigma, operator=settings.operator,
            params=settings.operator_params or None, seed=settings.seed, index=0,
        )  # fmt: skip
        recipe_obj = build_recipe(settings.recipe, probe)
        if recipe_obj is not None:
            plan_job(probe, model, tile=settings.tile)  # padding and tiles fit this backbone
        task_info = {"name": probe.task.name, "operator": probe.task.operator, "params": _jsonable(probe.task.params),
                     "engine_task": probe.task.engine_task, "noise": repr(probe.noise)}  # fmt: skip
    else:
        recipe_obj, task_info = None, {}
    checkpoint_sha = sha256_file(settings.checkpoint) if settings.checkpoint else None
    resolved = {
        **settings.as_dict(),
        "operator_params": _jsonable(settings.operator_params),
        "mode": mode,
        "task_resolved": task_info,
        "recipe_resolved": repr(recipe_obj) if recipe_obj is not None else settings.recipe,
        "checkpoint_sha256": checkpoint_sha,
        "kernel_sha256": sha256_file(settings.kernel) if settings.kernel else None,
        "mask_sha256": sha256_file(settings.mask) if settings.mask and Path(settings.mask).is_file() else None,
    }
    # the key compares contents, not paths: the same command from another folder still resumes
    key = settings_key({
        **{k: v for k, v in resolved.items() if k not in ("checkpoint", "mask", "kernel")},
        "mask": None if settings.mask is None else "folder" if Path(settings.mask).is_dir() else "file",
    })  # fmt: skip
    previous = read_journal(out) if out.is_dir() else {}
    old_manifest = _read_manifest(out) if out.is_dir() else None
    if not overwrite:
        _refuse_other_settings(out, key, previous, old_manifest, names)
    else:
        previous = {}

    # -- the folder (rank 0), then every process --------------------------------------------
    dist = _dist() if world > 1 else None
    if world > 1 and dist is None:
        raise ConfigError("shard=(rank, world) needs an initialised torch.distributed process group (run under torchrun)")
    run_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}-{uuid.uuid4().hex[:8]}"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for j in _journals(out):
                j.unlink()
        _remove_stale_temporaries(out)
    if dist is not None:
        box = [run_id]
        dist.broadcast_object_list(box, src=0)
        run_id = box[0]
        dist.barrier()
    env = environment(device, model)
    header = {
        "format": FORMAT,
        "invkit": __version__,
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "run": run_id,
        "command": command,
        "settings": resolved,
        "settings_sha256": key,
        "run_options": {"device": str(device), "batch_size": batch_size, "world_size": world, "torch_threads": torch.get_num_threads()},
        "environment": env,
        "inputs": [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)],
    }

    # -- what is left to do: this process's batches of the one plan, less what is done --------
    batches = [b for k, b in enumerate(_batch_plan(sources, sizes, batch_size)) if k % world == rank]
    input_sha: dict[str, str] = {}
    skipped: list[str] = []
    mine: list[list[Source]] = []
    for batch in batches:
        left = []
        for s in batch:
            rec = previous.get(s.key)
            if rec is not None and rec.get("status") == "ok" and rec.get("settings_sha256") == key and rec.get("index") == s.index:
                try:
                    input_sha[s.key] = sha256_file(s.path)
                except OSError:
                    input_sha[s.key] = ""
                if (
                    rec.get("input_sha256") == input_sha[s.key]
                    and rec.get("mask_sha256") == _maybe_sha(masks[s.key], sha256_file)
                    and _outputs_intact(out, rec, sha256_file)
                ):
                    skipped.append(s.key)
                    continue
            left.append(s)
        if left:
            mine.append(left)

    if rank == 0:
        _write_manifest(out, header, sources, previous, complete=False)
    journal = Journal(journal_path(out, rank))
    done: list[str] = []
    failed: list[str] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(b) for b in mine), unit="file", desc=f"restore {task_info.get('name', '')}".strip(),
               disable=not progress or rank != 0, dynamic_ncols=True)  # fmt: skip
    since_manifest, last_manifest = 0, time.monotonic()
    known = dict(previous)  # rank 0's view between rewrites: earlier runs plus its own files
    finished = False
    try:
        for batch in mine:
            jobs, meta = [], []
            for s in batch:
                t0 = time.perf_counter()
                base = {"key": s.key, "input": str(s.path), "relative": str(s.relative), "index": s.index, "run": run_id,
                        "settings_sha256": key, "mask": None if masks[s.key] is None else str(masks[s.key])}  # fmt: skip
                try:
                    base["input_sha256"] = input_sha.get(s.key) or sha256_file(s.path)
                    base["mask_sha256"] = _maybe_sha(masks[s.key], sha256_file)
                    job = prepare(
                        s.path, settings.task or "sr4", backbone=model, mode=mode,
                        mask=None if masks[s.key] is None else masks[s.key], kernel=kernel_t,
                        noise_sigma=settings.noise_sigma, operator=settings.operator, params=settings.operator_params or None,
                        seed=settings.seed, index=s.index, name=s.key, dtype=_data_dtype(dtype),
                    )  # fmt: skip
                except (InvkitError, OSError) as exc:
                    _fail(journal, base, exc, failed, bar, known)
                    continue
                jobs.append(job)
                meta.append((s, base, time.perf_counter() - t0))
            for group in _groups(jobs, meta):
                gjobs = [j for j, _ in group]
                try:
                    results = restore_batch(gjobs, model, settings.recipe, samples=settings.samples,
                                               keep_samples=settings.save_samples, tile=settings.tile, device=device)  # fmt: skip
                except InvkitError as exc:
                    for _, (s, base, _) in group:
                        _fail(journal, base, exc, failed, bar, known)
                    continue
                for res, (_, (s, base, t_read)) in zip(results, group):
                    try:
                        outputs = _write_outputs(out, s.key, res, settings)
                    except (InvkitError, OSError) as exc:
                        _fail(journal, base, exc, failed, bar, known)
                        continue
                    rec = {
                        **base,
                        "status": "ok",
                        "outputs": outputs,
                        "output": outputs["restoration"]["path"],
                        "output_sha256": outputs["restoration"]["sha256"],
                        "shape": list(res.x.shape),
                        "nfe": int(res.nfe) * settings.samples,
                        "nfe_per_sample": int(res.nfe),
                        "seconds": float(res.seconds) + t_read,
                        "consistency": float(res.consistency),
                        "seeds": _seeds(settings, s.index, mode, image_seed, sample_seed),
                        "notes": list(res.notes),
                        "info": _jsonable(res.info),
                        "finished": time.time(),
                    }
                    if res.psnr is not None:
                        rec.update(psnr=float(res.psnr), ssim=float(res.ssim))
                    if res.std is not None:
                        rec["std_scale"] = outputs["std"].pop("scale")
                    journal.append(rec)
                    done.append(s.key)
                    bar.update(1)
                    known[s.key] = rec
                    since_manifest += 1
                    if rank == 0 and since_manifest >= manifest_every and time.monotonic() - last_manifest >= MANIFEST_SECONDS:
                        _write_manifest(out, header, sources, known, complete=False)
                        since_manifest, last_manifest = 0, time.monotonic()
        if dist is not None:
            dist.barrier()  # every journal is complete before rank 0 merges them
        finished = True
    finally:
        bar.close()
        journal.close()
        # after an interrupt too: the manifest then lists what is done (complete: false)
        manifest = _write_manifest(out, header, sources, read_journal(out), complete=finished, finished=time.time()) if rank == 0 else {}
    if rank == 0 and world > 1:
        records = {r["key"]: r for r in manifest["files"]}
        done = [k for k, r in records.items() if r.get("status") == "ok" and r.get("run") == run_id]
        skipped = [k for k, r in records.items() if r.get("status") == "ok" and r.get("run") != run_id]
        failed = [k for k, r in records.items() if r.get("status") == "error"]
    return RestoreReport(out, manifest, done, skipped, failed)


# ---------------------------------------------------------------------------------------------
# helpers of the run


def _check_masks(settings: RestoreSettings, sources: Sequence[Source], sizes: Mapping[str, Any], masks: Mapping[str, Path | None], read_mask: Callable) -> None:
    """A mask file must fit some input (inputs it does not fit fail one by one); a mask folder
    must hold a readable mask of its input's size for every input."""
    if settings.mask is None:
        return
    if Path(settings.mask).is_file():
        hw = tuple(read_mask(settings.mask).shape[-2:])
        known = {v for v in sizes.values() if v is not None}
        if known and hw not in known:
            raise ConfigError(
                f"the mask {settings.mask!r} is {hw[0]}×{hw[1]} (H×W) but no input has that size "
                f"(e.g. {sorted(known)[0][0]}×{sorted(known)[0][1]}); masks are never resized"
            )
        return
    for s in sources:
        m = masks[s.key]
        hw = _header_size(m)
        if hw is None:
            raise ConfigError(f"the mask {str(m)!r} (of {str(s.path)!r}) is not a readable image")
        if sizes[s.key] is not None and hw != sizes[s.key]:
            raise ConfigError(
                f"the mask {str(m)!r} is {hw[0]}×{hw[1]} but its input {str(s.path)!r} is {sizes[s.key][0]}×{sizes[s.key][1]}; "
                "masks are never resized"
            )


def _load_backbone(s: RestoreSettings, device: str, dtype: str, load: Callable) -> Any:
    """The backbone, with any failure to build or load it as a typed error (a bad option or a
    checkpoint that does not fit is the user's to fix, not a traceback)."""
    from ..errors import CheckpointError

    try:
        return load(s.backbone, checkpoint=s.checkpoint, device=device, dtype=dtype, options=s.backbone_options)
    except InvkitError:
        raise
    except (TypeError, ValueError, RuntimeError, OSError, KeyError) as exc:
        what = f"checkpoint {s.checkpoint!r}" if s.checkpoint else f"backbone {s.backbone!r} with options {dict(s.backbone_options)}"
        raise CheckpointError(f"could not load the {what}: {type(exc).__name__}: {exc}") from exc


def _jsonable(obj: Any) -> Any:
    """``obj`` as JSON values; tensors and arrays become their shape and SHA-256."""
    import numpy as np
    import torch

    from ..io import sha256_bytes

    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return {"array": list(obj.shape), "dtype": str(obj.dtype), "sha256": sha256_bytes(np.ascontiguousarray(obj).tobytes())}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    return repr(obj)


def _maybe_sha(path: Path | None, sha: Callable[[Path], str]) -> str | None:
    return None if path is None else sha(path)


def _outputs_intact(out: Path, rec: Mapping[str, Any], sha: Callable[[Path], str]) -> bool:
    try:
        return all(sha(out / o["path"]) == o["sha256"] for o in rec.get("outputs", {}).values()) and bool(rec.get("outputs"))
    except OSError:
        return False


def _batch_plan(sources: Sequence[Source], sizes: Mapping[str, Any], batch_size: int) -> list[list[Source]]:
    """Files of equal size in batches of up to ``batch_size``, ordered by their first file.

    The plan depends only on the inputs, so a resumed run and every ``torchrun`` process see the
    batches of an uninterrupted single-process run (a file unreadable from its header is alone).
    """
    groups: dict[Any, list[Source]] = {}
    for s in sources:
        groups.setdefault(sizes[s.key] if sizes[s.key] is not None else ("alone", s.key), []).append(s)
    batches = [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]
    return sorted(batches, key=lambda b: b[0].index)


def _groups(jobs: Sequence[Any], meta: Sequence[Any]) -> list[list[tuple[Any, Any]]]:
    """Jobs split by :func:`~invkit.restoration.batch_key` (files of one size may still differ, e.g.
    after an EXIF rotation), in order of their first job."""
    from .core import batch_key

    groups: dict[Any, list[tuple[Any, Any]]] = {}
    for job, m in zip(jobs, meta):
        groups.setdefault(batch_key(job), []).append((job, m))
    return list(groups.values())


def _fail(journal: Journal, base: dict[str, Any], exc: BaseException, failed: list[str], bar: Any, known: dict[str, Any]) -> None:
    """Record a file that could not be restored (it is retried by the next run)."""
    msg = str(exc).replace("\n", " ") or type(exc).__name__
    rec = {**base, "status": "error", "error": f"{type(exc).__name__}: {msg}", "finished": time.time()}
    journal.append(rec)
    known[base["key"]] = rec
    failed.append(base["key"])
    bar.update(1)


def _data_dtype(dtype: str) -> Any:
    from .core import data_dtype

    return data_dtype(dtype)


def _seeds(s: RestoreSettings, index: int, mode: str, image_seed: Callable, sample_seed: Callable) -> dict[str, Any]:
    seeds: dict[str, Any] = {"index": index, "recipe": [sample_seed(s.seed, index, k) for k in range(s.samples)]}
    if mode == "degrade":
        seeds.update(operator=image_seed(s.seed, index, "operator"), noise=image_seed(s.seed, index, "noise"))
    return seeds


def _write_outputs(out: Path, key: str, res: Any, s: RestoreSettings) -> dict[str, dict[str, Any]]:
    """Write one file's images atomically; their paths (relative to ``out``) and SHA-256."""
    import torch

    from ..io import sha256_file
    from .images import write_image

    names = _output_names(key, s)
    (out / names["restoration"]).parent.mkdir(parents=True, exist_ok=True)
    gray = res.x.shape[0] == 1
    depth = (s.bit_depth or res.bit_depth) if gray else 8
    alpha = res.alpha if depth == 8 else None
    written: dict[str, dict[str, Any]] = {}

    def put(kind: str, x: torch.Tensor, **kw: Any) -> None:
        path = out / names[kind]
        write_image(x, path, **kw)
        written[kind] = {"path": names[kind], "sha256": sha256_file(path)}

    put("restoration", res.x, bit_depth=depth, alpha=alpha)
    if s.degrade:
        if res.y.ndim == 3 and res.y.shape[0] in (1, 3):
            put("y", res.y, bit_depth=depth if res.y.shape[0] == 1 else 8)
        put("pinv", res.pinv, bit_depth=depth)
    if res.std is not None:
        # one gray map: the root mean variance over channels, white = the largest spread
        std = res.std.double().pow(2).mean(dim=0, keepdim=True).sqrt()
        scale = float(std.max())
        put("std", (std / scale * 2 - 1) if scale > 0 else std - 1, bit_depth=8)
        written["std"]["scale"] = scale
    if s.save_samples and res.samples is not None:
        for k, xk in enumerate(res.samples):
            put(f"sample{k}", xk, bit_depth=depth)
    return written


def _refuse_other_settings(out: Path, key: str, previous: Mapping[str, Any], manifest: Mapping[str, Any] | None, names: Mapping[str, Any]) -> None:
    """Refuse (without writing anything) to mix the outputs of different settings in ``out``."""
    keys = {r.get("settings_sha256") for r in previous.values()}
    if manifest is not None:
        keys.add(manifest.get("settings_sha256"))
    keys.discard(None)
    if keys - {key}:
        raise ConfigError(
            f"{str(out)!r} holds the outputs of a run with other settings (see its manifest.json); "
            "use another --out, or --overwrite to replace them"
        )
    if not keys and out.is_dir():
        clash = [n for n in names if (out / n).exists()]
        if clash:
            raise ConfigError(
                f"{str(out)!r} already holds {len(clash)} file(s) this run would write (e.g. {clash[0]}) and no invkit manifest; "
                "use another --out, or --overwrite to replace them"
            )


def _write_manifest(
    out: Path, header: Mapping[str, Any], sources: Sequence[Source], records: Mapping[str, Any], *, complete: bool, finished: float | None = None
) -> dict[str, Any]:
    """``manifest.json`` from the header and the journal ``records``: one entry per input, in order."""
    from ..io import write_json_atomic

    files = []
    for s in sources:
        rec = records.get(s.key)
        if rec is None or rec.get("settings_sha256") != header["settings_sha256"]:
            files.append({"key": s.key, "input": str(s.path), "relative": str(s.relative), "index": s.index, "status": "pending"})
        else:
            files.append(rec)
    counts = {st: sum(1 for f in files if f["status"] == st) for st in ("ok", "error", "pending")}
    ok = [f for f in files if f["status"] == "ok"]
    summary: dict[str, Any] = {"files": len(files), **counts, "complete": complete and counts["pending"] == 0}
    if ok:
        summary["seconds"] = sum(f["seconds"] for f in ok)
        summary["nfe_per_file"] = sum(f["nfe"] for f in ok) / len(ok)
        summary["max_consistency"] = max(f["consistency"] for f in ok)
        if all("psnr" in f for f in ok):
            summary["psnr"] = sum(f["psnr"] for f in ok) / len(ok)
            summary["ssim"] = sum(f["ssim"] for f in ok) / len(ok)
    manifest = {**header, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished or time.time())), "summary": summary, "files": files}
    write_json_atomic(out / MANIFEST, manifest)
    return manifest
