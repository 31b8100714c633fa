r"""Evaluating recipes on a dataset: the library behind ``invkit eval`` and ``invkit demo``.

An evaluation restores ``n`` images of a dataset under one :class:`Task` (a named task of
:data:`EVAL_TASKS` or any registered operator, :func:`task_from_operator`, plus measurement
noise) with a list of methods — registered recipe presets, or the baselines ``input`` (A⁺y) and
``y`` that make no network call — and reports

- per image and method: PSNR and SSIM (:mod:`invkit.metrics`) between the restoration quantised
  as SSD saved it (x·0.5 + 0.5, ×255, clip, **truncate**: ``tensor2img``) and the ground
  truth's own uint8 pixels (:func:`ground_truth_uint8`), the consistency ‖A x̂ − y‖₂ of the
  float output, the seconds per image (batch time / batch size) and the number of network calls
  the recipe really made;
- per method over the set: the means, and the Fréchet distance between the restorations' and the
  ground truth's features (``invkit.metrics.fid_fashion``), next to its floor (n training images
  vs the n ground-truth images). LPIPS and the Inception FID run only when their packages and
  weights are already on the machine. Nothing is downloaded.

One concern per module, imported in this order (none imports a later one):

- :mod:`.seeds` — per-image seeds (:func:`image_seed`, :func:`image_generators`);
- :mod:`.tasks` — tasks and noise; :mod:`.methods` — recipe presets and baselines;
- :mod:`.loading` — images, backbone, device and dtype names;
- :mod:`.extras` — the one place optional packages (matplotlib, lpips, pytorch-fid) are imported;
- :mod:`.figures` — the grid and line plots; :mod:`.sweep` — the FID-vs-NFE sweep;
- :mod:`.config` — :class:`EvalConfig`, :class:`EvalResult`, the settings hash;
- :mod:`.stats` — aggregates, Fréchet/optional metrics, paired differences;
- :mod:`.restore` — :func:`evaluate`, the restore loop, :func:`merge_results`;
- :mod:`.reports` — tables, ``results.json``, images, the manifest (:func:`write_outputs`);
- :mod:`.store` — the journalled, resumable results folder (:class:`RunFolder`).
"""

from __future__ import annotations

from .._compat import deprecated_names
from ..io import environment
from .config import EvalConfig, EvalResult, config_dict, run_settings, settings_hash
from .extras import MissingExtraError
from .figures import SERIES_COLOURS, display_measurement, grid_columns, image_grid, plot_lines
from .loading import DTYPES, FASHION_DATASETS, check_device, data_dtype, ground_truth_uint8, load_backbone, load_images
from .methods import BASELINES, Method, parse_literal, parse_method
from .reports import markdown_table, paired_table, results_dict, write_manifest, write_outputs
from .restore import Batch, evaluate, merge_results
from .seeds import STREAMS, image_generators, image_seed
from .stats import INCEPTION_FID_WEIGHTS, LPIPS_VGG_WEIGHTS, optional_metrics, paired_difference
from .store import RunFolder, check_output_file, check_output_folder, read_journal
from .sweep import SWEEP_FAMILIES, SWEEP_NFES, NFESweep, sweep_markdown, sweep_methods, sweep_steps, sweep_summary, write_sweep
from .tasks import EVAL_TASKS, Task, get_task, make_noise, noise_text, task_from_operator

__all__ = [
    "BASELINES",
    "STREAMS",
    "EVAL_TASKS",
    "DTYPES",
    "FASHION_DATASETS",
    "Task",
    "Method",
    "EvalConfig",
    "EvalResult",
    "NFESweep",
    "Batch",
    "RunFolder",
    "MissingExtraError",
    "image_seed",
    "image_generators",
    "get_task",
    "task_from_operator",
    "parse_method",
    "parse_literal",
    "make_noise",
    "noise_text",
    "check_device",
    "data_dtype",
    "load_images",
    "load_backbone",
    "evaluate",
    "ground_truth_uint8",
    "merge_results",
    "write_outputs",
    "write_manifest",
    "results_dict",
    "config_dict",
    "run_settings",
    "settings_hash",
    "markdown_table",
    "paired_difference",
    "paired_table",
    "optional_metrics",
    "LPIPS_VGG_WEIGHTS",
    "INCEPTION_FID_WEIGHTS",
    "environment",
    "image_grid",
    "grid_columns",
    "display_measurement",
    "plot_lines",
    "SERIES_COLOURS",
    "SWEEP_FAMILIES",
    "SWEEP_NFES",
    "sweep_steps",
    "sweep_methods",
    "sweep_summary",
    "sweep_markdown",
    "write_sweep",
    "check_output_folder",
    "check_output_file",
    "read_journal",
]

# renamed (TASKS: the recipe presets' task families are invkit_recipes.PRESET_TASKS), and the
# private names that other modules used to import, now public
__getattr__ = deprecated_names(
    __name__,
    {
        "TASKS": "invkit.evaluation:EVAL_TASKS",
        "_literal": "invkit.evaluation:parse_literal",
        "_DTYPES": "invkit.evaluation:DTYPES",
        "_COLOURS": "invkit.evaluation:SERIES_COLOURS",
        "_optional_metrics": "invkit.evaluation:optional_metrics",
    },
)
