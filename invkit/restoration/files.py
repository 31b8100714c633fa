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

:func:`restore_files` runs in named steps: the checks (:mod:`~invkit.restoration.checks`, on
:mod:`~invkit.restoration.inputs` and :mod:`~invkit.restoration.settings`), the folder and the
plan, then the batches, each file's outputs (:mod:`~invkit.restoration.outputs`) recorded in the
journal and merged into the manifest (:mod:`~invkit.restoration.journal`).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .. import __version__
from ..checks import check_device
from ..errors import ConfigError, InvkitError
from ..evaluation import image_seed
from ..io import environment, sha256_file
from .checks import CheckedRun, check_inputs, check_model, resolve
from .core import DTYPES, data_dtype, restore_batch, sample_seed
from .images import IMAGE_SUFFIXES
from .inputs import CONFIG_KEYS, Source, discover, load_config, parse_tile
from .jobs import batch_key, prepare
from .journal import (
    FORMAT,
    MANIFEST,
    MANIFEST_EVERY,
    MANIFEST_SECONDS,
    Journal,
    RestoreReport,
    journal_path,
    journals,
    read_journal,
    remove_stale_temporaries,
    write_manifest,
)
from .outputs import jsonable, maybe_sha, outputs_intact, seeds, write_outputs
from .settings import RestoreSettings, settings_key

# the first version kept all of the files layer here: its public names stay importable from here
__all__ = [
    "CONFIG_KEYS",
    "FORMAT",
    "IMAGE_SUFFIXES",
    "MANIFEST",
    "MANIFEST_EVERY",
    "MANIFEST_SECONDS",
    "Journal",
    "RestoreReport",
    "RestoreSettings",
    "Source",
    "discover",
    "journal_path",
    "load_config",
    "parse_tile",
    "read_journal",
    "restore_files",
    "settings_key",
]


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
    started = time.time()
    rank, world = shard if shard is not None else (0, 1)
    if not (isinstance(rank, int) and isinstance(world, int) and 0 <= rank < world):
        raise ConfigError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    settings = _settings(dtype, task=task, operator=operator, operator_params=operator_params, degrade=degrade, recipe=recipe,
                         backbone=backbone, checkpoint=checkpoint, backbone_options=backbone_options, mask=mask, kernel=kernel,
                         noise_sigma=noise_sigma, samples=samples, save_samples=save_samples, seed=seed, tile=tile, bit_depth=bit_depth)  # fmt: skip
    out = Path(out)
    check_device(str(device))

    # 1. everything checkable before the first network call; nothing is written if it fails
    run = check_inputs(inputs, out, settings)
    recipe_obj, task_info = check_model(run, model, device, dtype)
    resolve(run, recipe_obj, task_info, overwrite)
    # 2. the folder (rank 0), then every process; 3. this process's batches, less what is done
    dist, run_id = _open_folder(run, rank, world, started, overwrite)
    header = _header(run, inputs, run_id, started, command, device, batch_size, world)
    mine, skipped, input_sha = _plan(run, batch_size, rank, world)
    # 4. restore them, recording each file as it completes; rank 0 merges the journals at the end
    done, failed, manifest = _restore_all(run, mine, input_sha, header, run_id, rank, dist, device, progress, task_info, manifest_every)
    if rank == 0 and world > 1:
        records = {r["key"]: r for r in manifest["files"]}
        done = [k for k, r in records.items() if r.get("status") == "ok" and r.get("run") == run_id]
        skipped = [k for k, r in records.items() if r.get("status") == "ok" and r.get("run") != run_id]
        failed = [k for k, r in records.items() if r.get("status") == "error"]
    return RestoreReport(out, manifest, done, skipped, failed)


def _settings(dtype: str, **kw: Any) -> RestoreSettings:
    """The settings from :func:`restore_files`'s arguments (paths as strings, mappings as dicts)."""
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    path = lambda p: None if p is None else str(p)  # noqa: E731
    return RestoreSettings(
        task=kw["task"], operator=kw["operator"], operator_params=dict(kw["operator_params"] or {}), degrade=bool(kw["degrade"]),
        recipe=kw["recipe"], backbone=kw["backbone"], checkpoint=path(kw["checkpoint"]), backbone_options=dict(kw["backbone_options"] or {}),
        mask=path(kw["mask"]), kernel=path(kw["kernel"]), noise_sigma=kw["noise_sigma"], samples=kw["samples"],
        save_samples=bool(kw["save_samples"]), seed=kw["seed"], dtype=dtype, tile=parse_tile(kw["tile"]), bit_depth=kw["bit_depth"],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 2. the folder and the manifest's header; 3. the plan


def _dist() -> Any:
    return dist if dist.is_available() and dist.is_initialized() else None


def _open_folder(run: CheckedRun, rank: int, world: int, started: float, overwrite: bool) -> tuple[Any, str]:
    """Create ``out`` and clear what a killed or replaced run left (rank 0), then agree on the
    run id (every process); the process group (None in one process) and the run id."""
    dist = _dist() if world > 1 else None
    if world > 1 and dist is None:
        raise ConfigError("shard=(rank, world) needs an initialised torch.distributed process group (run under torchrun)")
    run_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}-{uuid.uuid4().hex[:8]}"
    if rank == 0:
        run.out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for j in journals(run.out):
                j.unlink()
        remove_stale_temporaries(run.out)
    if dist is not None:
        box = [run_id]
        dist.broadcast_object_list(box, src=0)
        run_id = box[0]
        dist.barrier()
    return dist, run_id


def _header(run: CheckedRun, inputs: Any, run_id: str, started: float, command: Any, device: str, batch_size: int, world: int) -> dict[str, Any]:
    """The manifest's fields other than the files and their summary."""
    return {
        "format": FORMAT,
        "invkit": __version__,
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "run": run_id,
        "command": command,
        "settings": run.resolved,
        "settings_sha256": run.key,
        "run_options": {"device": str(device), "batch_size": batch_size, "world_size": world, "torch_threads": torch.get_num_threads()},
        "environment": environment(device, run.model),
        "inputs": [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)],
    }


def _plan(run: CheckedRun, batch_size: int, rank: int, world: int) -> tuple[list[list[Source]], list[str], dict[str, str]]:
    """This process's batches of the one plan less the files already done (whose record, input,
    mask and outputs all match); the files skipped; the input SHA-256 computed on the way."""
    input_sha: dict[str, str] = {}
    skipped: list[str] = []
    mine: list[list[Source]] = []
    for batch in [b for k, b in enumerate(_batch_plan(run.sources, run.sizes, batch_size)) if k % world == rank]:
        left = []
        for s in batch:
            rec = run.previous.get(s.key)
            if rec is not None and rec.get("status") == "ok" and rec.get("settings_sha256") == run.key and rec.get("index") == s.index:
                try:
                    input_sha[s.key] = sha256_file(s.path)
                except OSError:
                    input_sha[s.key] = ""
                if (
                    rec.get("input_sha256") == input_sha[s.key]
                    and rec.get("mask_sha256") == maybe_sha(run.masks[s.key], sha256_file)
                    and outputs_intact(run.out, rec, sha256_file)
                ):
                    skipped.append(s.key)
                    continue
            left.append(s)
        if left:
            mine.append(left)
    return mine, skipped, input_sha


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


# ---------------------------------------------------------------------------------------------
# 4. the run: restore, record, merge


class _Progress:
    """The journal of this process and what it recorded, the progress bar, and rank 0's
    rewrites of the manifest every ``every`` files (and :data:`MANIFEST_SECONDS`)."""

    def __init__(self, run: CheckedRun, header: Mapping[str, Any], rank: int, journal: Journal, bar: Any, every: int):
        self.run, self.header, self.rank, self.journal, self.bar, self.every = run, header, rank, journal, bar, every
        self.done: list[str] = []
        self.failed: list[str] = []
        self.known = dict(run.previous)  # rank 0's view between rewrites: earlier runs plus its own files
        self.since_manifest, self.last_manifest = 0, time.monotonic()

    def fail(self, base: dict[str, Any], exc: BaseException) -> None:
        """Record a file that could not be restored (it is retried by the next run)."""
        msg = str(exc).replace("\n", " ") or type(exc).__name__
        rec = {**base, "status": "error", "error": f"{type(exc).__name__}: {msg}", "finished": time.time()}
        self.journal.append(rec)
        self.known[base["key"]] = rec
        self.failed.append(base["key"])
        self.bar.update(1)

    def ok(self, key: str, rec: dict[str, Any]) -> None:
        """Record a restored file (its outputs are complete on disk)."""
        self.journal.append(rec)
        self.done.append(key)
        self.bar.update(1)
        self.known[key] = rec
        self.since_manifest += 1
        if self.rank == 0 and self.since_manifest >= self.every and time.monotonic() - self.last_manifest >= MANIFEST_SECONDS:
            write_manifest(self.run.out, self.header, self.run.sources, self.known, complete=False)
            self.since_manifest, self.last_manifest = 0, time.monotonic()


def _restore_all(
    run: CheckedRun, mine: list[list[Source]], input_sha: dict[str, str], header: dict[str, Any], run_id: str, rank: int,
    dist: Any, device: str, progress: bool, task_info: Mapping[str, Any], manifest_every: int,
) -> tuple[list[str], list[str], dict[str, Any]]:  # fmt: skip
    """Restore this process's batches; files done, files failed, and (rank 0) the manifest merged
    from every journal — written after an interrupt too, then marked incomplete."""
    if rank == 0:
        write_manifest(run.out, header, run.sources, run.previous, complete=False)
    journal = Journal(journal_path(run.out, rank))
    bar = tqdm(total=sum(len(b) for b in mine), unit="file", desc=f"restore {task_info.get('name', '')}".strip(),
               disable=not progress or rank != 0, dynamic_ncols=True)  # fmt: skip
    rec = _Progress(run, header, rank, journal, bar, manifest_every)
    finished = False
    try:
        for batch in mine:
            _restore_batch(run, batch, input_sha, run_id, device, rec)
        if dist is not None:
            dist.barrier()  # every journal is complete before rank 0 merges them
        finished = True
    finally:
        bar.close()
        journal.close()
        manifest = write_manifest(run.out, header, run.sources, read_journal(run.out), complete=finished, finished=time.time()) if rank == 0 else {}
    return rec.done, rec.failed, manifest


def _restore_batch(run: CheckedRun, batch: list[Source], input_sha: Mapping[str, str], run_id: str, device: str, rec: _Progress) -> None:
    """Read and restore one batch of the plan (in groups of equal :func:`~invkit.restoration.batch_key`),
    write each file's outputs and record it; a file that fails is recorded as failed."""
    settings, masks = run.settings, run.masks
    jobs, meta = [], []
    for s in batch:
        t0 = time.perf_counter()
        base = {"key": s.key, "input": str(s.path), "relative": str(s.relative), "index": s.index, "run": run_id,
                "settings_sha256": run.key, "mask": None if masks[s.key] is None else str(masks[s.key])}  # fmt: skip
        try:
            base["input_sha256"] = input_sha.get(s.key) or sha256_file(s.path)
            base["mask_sha256"] = maybe_sha(masks[s.key], sha256_file)
            job = prepare(
                s.path, settings.task or "sr4", backbone=run.model, mode=run.mode,
                mask=None if masks[s.key] is None else masks[s.key], kernel=run.kernel,
                noise_sigma=settings.noise_sigma, operator=settings.operator, params=settings.operator_params or None,
                seed=settings.seed, index=s.index, name=s.key, dtype=data_dtype(settings.dtype),
            )  # fmt: skip
        except (InvkitError, OSError) as exc:
            rec.fail(base, exc)
            continue
        jobs.append(job)
        meta.append((s, base, time.perf_counter() - t0))
    for group in _groups(jobs, meta):
        try:
            results = restore_batch([j for j, _ in group], run.model, settings.recipe, samples=settings.samples,
                                    keep_samples=settings.save_samples, tile=settings.tile, device=device)  # fmt: skip
        except InvkitError as exc:
            for _, (s, base, _) in group:
                rec.fail(base, exc)
            continue
        for res, (_, (s, base, t_read)) in zip(results, group):
            try:
                outputs = write_outputs(run.out, s.key, res, settings)
            except (InvkitError, OSError) as exc:
                rec.fail(base, exc)
                continue
            rec.ok(s.key, _record(run, s, base, res, outputs, t_read))


def _record(run: CheckedRun, s: Source, base: dict[str, Any], res: Any, outputs: dict[str, Any], t_read: float) -> dict[str, Any]:
    """The journal record of a restored file."""
    settings = run.settings
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
        "seeds": seeds(settings, s.index, run.mode, image_seed, sample_seed),
        "notes": list(res.notes),
        "info": jsonable(res.info),
        "finished": time.time(),
    }
    if res.psnr is not None:
        rec.update(psnr=float(res.psnr), ssim=float(res.ssim))
    if res.std is not None:
        rec["std_scale"] = outputs["std"].pop("scale")
    return rec


def _groups(jobs: Sequence[Any], meta: Sequence[Any]) -> list[list[tuple[Any, Any]]]:
    """Jobs split by :func:`~invkit.restoration.batch_key` (files of one size may still differ, e.g.
    after an EXIF rotation), in order of their first job."""
    groups: dict[Any, list[tuple[Any, Any]]] = {}
    for job, m in zip(jobs, meta):
        groups.setdefault(batch_key(job), []).append((job, m))
    return list(groups.values())
