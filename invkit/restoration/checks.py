"""Everything :func:`~invkit.restoration.files.restore_files` checks before the first network
call, in order: the inputs and paths (:func:`check_inputs`), the backbone with the task, recipe,
mask and kernel tried together on a blank image (:func:`check_model`), and the resolved settings
with the earlier runs in the output folder (:func:`resolve`). Nothing is written here.

Part of the files layer (:mod:`invkit.restoration.files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import attrs
import torch

from ..errors import CheckpointError, ConfigError, InvkitError, MissingFileError
from ..evaluation import load_backbone
from ..io import sha256_file
from .core import build_recipe, plan_job
from .inputs import Source, check_masks, check_writable, discover, header_size, mask_for
from .jobs import prepare, read_kernel, read_mask
from .journal import read_journal, read_manifest, refuse_other_settings
from .outputs import jsonable
from .settings import RestoreSettings, output_names, settings_key

__all__ = ["CheckedRun", "check_inputs", "check_model", "resolve"]


@attrs.define
class CheckedRun:
    """What the checks resolved, shared by the steps of
    :func:`~invkit.restoration.files.restore_files`."""

    out: Path
    settings: RestoreSettings
    mode: str
    sources: list[Source]
    #: per input key: (H, W) from the header (None if unreadable), the mask file (or None)
    sizes: dict[str, Any]
    masks: dict[str, Path | None]
    kernel: Any
    #: output name -> the input writing it
    names: dict[str, Path]
    model: Any = None
    resolved: dict[str, Any] = attrs.field(factory=dict)
    #: :func:`settings_key` of ``resolved``; the journal records of earlier runs that may be resumed
    key: str = ""
    previous: dict[str, Any] = attrs.field(factory=dict)


def check_inputs(inputs: Any, out: Path, settings: RestoreSettings) -> CheckedRun:
    """The inputs, the output folder, the checkpoint, masks, kernel and output names."""
    # the output folder and a mask folder may sit inside an input folder: never take them as inputs
    sources = discover(inputs, exclude=[out, *([settings.mask] if settings.mask and Path(settings.mask).is_dir() else [])])
    check_writable(out)
    if settings.checkpoint is not None and not Path(settings.checkpoint).is_file():
        raise MissingFileError(f"checkpoint {settings.checkpoint!r} not found")
    if settings.mask is not None and not Path(settings.mask).exists():
        raise MissingFileError(f"mask {settings.mask!r} not found (a mask file, or a folder with one mask per input)")
    kernel_t = read_kernel(settings.kernel) if settings.kernel is not None else None
    sizes = {s.key: header_size(s.path) for s in sources}
    masks = {s.key: mask_for(settings.mask, s) for s in sources}
    check_masks(settings.mask, sources, sizes, masks, read_mask)
    if kernel_t is not None:
        shapes = [hw for hw in sizes.values() if hw is not None]
        if shapes and all(kernel_t.shape[0] > hw[0] or kernel_t.shape[1] > hw[1] for hw in shapes):
            raise ConfigError(f"the kernel ({kernel_t.shape[0]}×{kernel_t.shape[1]}) is larger than every input image")
    names: dict[str, Path] = {}
    for s in sources:
        for kind, name in output_names(s.key, settings).items():
            if name in names:
                raise ConfigError(f"two outputs would share the name {name}: of {str(names[name])!r} and {str(s.path)!r}; rename one input")
            names[name] = s.path
    mode = "degrade" if settings.degrade else "measured"
    return CheckedRun(out, settings, mode, sources, sizes, masks, kernel_t, names)


def check_model(run: CheckedRun, model: Any, device: str, dtype: str) -> tuple[Any, dict[str, Any]]:
    """Load the backbone (unless given) into ``run.model`` and try the task, operator, recipe,
    mask and kernel together on a blank image; the recipe object and the resolved task."""
    settings, sizes, masks = run.settings, run.sizes, run.masks
    run.model = model = _load_backbone(settings, device, dtype, load_backbone) if model is None else model
    channels = int(getattr(model, "channels", 0) or 0)
    if settings.bit_depth == 16 and channels != 1:
        raise ConfigError("--bit-depth 16 is for gray outputs (a 1-channel backbone); PNG colour is written at 8 bits")
    # the blank image has the size of the first input whose size is known (and fits the mask
    # file: check_masks made sure one does)
    fits = {s.key: masks[s.key] is None or Path(settings.mask).is_dir() or header_size(masks[s.key]) == sizes[s.key] for s in run.sources}
    first = next((s for s in run.sources if sizes[s.key] is not None and fits[s.key]), None)
    if first is None:
        return None, {}
    probe = prepare(
        torch.zeros((channels, *sizes[first.key])), settings.task or "sr4", backbone=model, mode=run.mode,
        mask=None if masks[first.key] is None else read_mask(masks[first.key]),
        kernel=run.kernel, noise_sigma=settings.noise_sigma, operator=settings.operator,
        params=settings.operator_params or None, seed=settings.seed, index=0,
    )  # fmt: skip
    recipe_obj = build_recipe(settings.recipe, probe)
    if recipe_obj is not None:
        plan_job(probe, model, tile=settings.tile)  # padding and tiles fit this backbone
    task_info = {"name": probe.task.name, "operator": probe.task.operator, "params": jsonable(probe.task.params),
                 "engine_task": probe.task.engine_task, "noise": repr(probe.noise)}  # fmt: skip
    return recipe_obj, task_info


def resolve(run: CheckedRun, recipe_obj: Any, task_info: dict[str, Any], overwrite: bool) -> None:
    """The resolved settings and their key; the resumable records of earlier runs in ``out``
    (refusing the outputs of other settings unless ``overwrite``)."""
    settings, out = run.settings, run.out
    run.resolved = {
        **settings.as_dict(),
        "operator_params": jsonable(settings.operator_params),
        "mode": run.mode,
        "task_resolved": task_info,
        "recipe_resolved": repr(recipe_obj) if recipe_obj is not None else settings.recipe,
        "checkpoint_sha256": sha256_file(settings.checkpoint) if settings.checkpoint else None,
        "kernel_sha256": sha256_file(settings.kernel) if settings.kernel else None,
        "mask_sha256": sha256_file(settings.mask) if settings.mask and Path(settings.mask).is_file() else None,
    }
    # the key compares contents, not paths: the same command from another folder still resumes
    run.key = settings_key({
        **{k: v for k, v in run.resolved.items() if k not in ("checkpoint", "mask", "kernel")},
        "mask": None if settings.mask is None else "folder" if Path(settings.mask).is_dir() else "file",
    })  # fmt: skip
    previous = read_journal(out) if out.is_dir() else {}
    old_manifest = read_manifest(out) if out.is_dir() else None
    if not overwrite:
        refuse_other_settings(out, run.key, previous, old_manifest, run.names)
    run.previous = {} if overwrite else previous


def _load_backbone(s: RestoreSettings, device: str, dtype: str, load: Callable) -> Any:
    """The backbone, with any failure to build or load it as a typed error (a bad option or a
    checkpoint that does not fit is the user's to fix, not a traceback)."""
    try:
        return load(s.backbone, checkpoint=s.checkpoint, device=device, dtype=dtype, options=s.backbone_options)
    except InvkitError:
        raise
    except (TypeError, ValueError, RuntimeError, OSError, KeyError) as exc:
        what = f"checkpoint {s.checkpoint!r}" if s.checkpoint else f"backbone {s.backbone!r} with options {dict(s.backbone_options)}"
        raise CheckpointError(f"could not load the {what}: {type(exc).__name__}: {exc}") from exc
