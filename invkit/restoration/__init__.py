"""``invkit restore``: restoring a user's own images (see :mod:`invkit.restoration.core`).

The package is ``invkit.restoration``; the functions are also ``invkit.restore`` and
``invkit.restore_files`` (a package named ``restore`` would clash with the function).

The core turns one image into a restoration: :mod:`~invkit.restoration.images` (reading and
writing files), :mod:`~invkit.restoration.jobs` (the operator and ``y`` of one image),
:mod:`~invkit.restoration.grid` (padding and tiles) and :mod:`~invkit.restoration.core` (running
recipes: batches, samples, consistency). The files layer builds on it:
:mod:`invkit.restoration.files` (``restore_files``: checks, the batch plan, resume, sharding) with
:mod:`~invkit.restoration.inputs` (finding inputs, run files, path checks),
:mod:`~invkit.restoration.settings` (the settings and their key),
:mod:`~invkit.restoration.outputs` (one file's outputs and record) and
:mod:`~invkit.restoration.journal` (journals, manifest, the report).
``invkit.restore(...)`` is :func:`restore`.
"""

from __future__ import annotations

import importlib
from typing import Any

from .core import (
    DTYPES,
    Plan,
    RestoreResult,
    build_recipe,
    data_dtype,
    plan_job,
    restore,
    restore_batch,
    sample_generators,
    sample_seed,
)
from .grid import AUTO_TILE_FACTOR, Tile, TileOperator, padding, reflect_pad, seam_stats, size_multiple, tile_plan
from .images import IMAGE_SUFFIXES, Picture, match_channels, read_image, resize_alpha, to_uint, write_image
from .jobs import LOCAL_OPERATORS, RESTORE_TASKS, TILEABLE_OPERATORS, Job, batch_key, prepare, read_kernel, read_mask

__all__ = [
    "AUTO_TILE_FACTOR",
    "DTYPES",
    "IMAGE_SUFFIXES",
    "LOCAL_OPERATORS",
    "RESTORE_TASKS",
    "TILEABLE_OPERATORS",
    "Job",
    "Plan",
    "Picture",
    "RestoreResult",
    "Tile",
    "TileOperator",
    "batch_key",
    "build_recipe",
    "data_dtype",
    "match_channels",
    "padding",
    "plan_job",
    "prepare",
    "read_image",
    "read_kernel",
    "read_mask",
    "reflect_pad",
    "resize_alpha",
    "restore",
    "restore_batch",
    "sample_generators",
    "sample_seed",
    "seam_stats",
    "size_multiple",
    "tile_plan",
    "to_uint",
    "write_image",
]

# the files layer (restore_files, ...) lives in .files, loaded on first use
_FILES = ("restore_files",)


def __getattr__(name: str) -> Any:
    if name in _FILES:
        value = getattr(importlib.import_module(".files", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'invkit.restoration' has no attribute {name!r}")
