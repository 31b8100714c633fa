"""``invkit restore``: restore your own images — files and folders, any size, resumable.

A thin layer over :func:`invkit.restoration.files.restore_files`: it parses the options, merges a
``--config`` TOML file under them (the command line wins), joins the ``torchrun`` process group
when there is one, and prints the summary. See ``docs/restore.md``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch.distributed as dist

from .. import evaluation as ev
from ..errors import ConfigError
from ..checks import check_device
from ..restoration.files import load_config, restore_files
from .common import join_process_group, key_value, set_threads

EPILOG = """\
exit status:
  0    every file restored (or already restored by an earlier run)
  1    some input files failed (corrupt, unreadable, wrong size); the others are restored and
       the failures are listed in the summary and in OUT/manifest.json
  2    bad options or inputs, found before any work: one line on stderr, nothing written
  130  interrupted (Ctrl-C); rerun the same command to resume

examples:
  invkit restore examples/data/lowres --task sr4 --out restored/
  invkit restore photos/ --task inpaint-box --mask masks/ --out restored/ --samples 8
  invkit restore clean/ --task deblur --degrade --out check/      # synthesise y, report PSNR/SSIM
  torchrun --nproc_per_node=2 -m invkit.cli restore photos/ --task sr4 --out restored/
"""

#: what an option is when neither the command line nor the config file sets it
DEFAULTS: dict[str, Any] = {
    "inputs": [],
    "out": None,
    "task": None,
    "operator": None,
    "set": {},
    "degrade": False,
    "recipe": "ssd-30",
    "backbone": "fashion32",
    "checkpoint": None,
    "backbone_opt": {},
    "mask": None,
    "kernel": None,
    "noise_sigma": None,
    "samples": 1,
    "save_samples": False,
    "seed": 0,
    "batch_size": 16,
    "device": "cpu",
    "dtype": "float32",
    "tile": "auto",
    "bit_depth": None,
    "threads": 1,
    "overwrite": False,
    "quiet": False,
}


def add_arguments(parser: argparse.ArgumentParser, name: str = "restore") -> None:

    TASKS = ev.EVAL_TASKS
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.usage = (
        f"invkit {name} INPUT [INPUT ...] (--task TASK | --operator NAME [--set KEY=VALUE ...]) --out DIR [options]"
    )
    # every default is None so that a --config file can fill what the command line leaves out
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files and/or folders (searched recursively: PNG, JPEG, TIFF, WebP, BMP)")
    parser.add_argument("--out", help="output folder; outputs mirror the input tree as OUT/<relative stem>.png")
    parser.add_argument("--task", help=f"one of: {', '.join(TASKS)}")
    parser.add_argument("--operator", help="any registered operator instead of --task (see `invkit operators`)")
    parser.add_argument("--set", action="append", type=key_value, metavar="KEY=VALUE",
                        help="an --operator parameter, repeatable (e.g. --set scale=4)")
    parser.add_argument("--degrade", action="store_true", default=None,
                        help="inputs are clean images: synthesise y (seeded per file), save y, A+y and the restoration, report PSNR/SSIM")
    parser.add_argument("--recipe", help="recipe preset, or NAME:key=value,... overrides (default: ssd-30 with the task's numbers)")
    parser.add_argument("--backbone", help="registered backbone (default: fashion32, embedded, no download)")
    parser.add_argument("--checkpoint", help="weights file for the backbone")
    parser.add_argument("--backbone-opt", action="append", type=key_value, metavar="KEY=VALUE", help="extra backbone option, repeatable")
    parser.add_argument("--mask", help="inpainting mask (1/white = observed): one file, or a folder with one mask per input, matched by name")
    parser.add_argument("--kernel", help="blur kernel: .npy or grayscale PNG (normalised to sum 1)")
    parser.add_argument("--noise-sigma", type=float, help="Gaussian measurement noise sigma in [-1, 1] units (the task's default otherwise)")
    parser.add_argument("--samples", type=int, help="restore K times: OUT/<stem>.png is the mean, <stem>.std.png the per-pixel std (default: 1)")
    parser.add_argument("--save-samples", action="store_true", default=None, help="also write every sample as <stem>.sample<k>.png")
    parser.add_argument("--seed", type=int, help="base seed; file i's seeds derive from (seed, i) as in invkit eval (default: 0)")
    parser.add_argument("--batch-size", type=int, help="files of equal size restored together (default: 16)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--dtype", choices=["float32", "float64", "bfloat16", "float16"], help="default: float32")
    parser.add_argument("--tile", help="auto (tile inputs larger than the model), off, or a tile size in pixels (default: auto)")
    parser.add_argument("--bit-depth", type=int, choices=[8, 16], help="PNG bit depth of the outputs (default: the input's: 16 for 16-bit gray files, else 8)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: 1)")
    parser.add_argument("--overwrite", action="store_true", default=None, help="replace the outputs of a run with other settings in --out")
    parser.add_argument("--quiet", action="store_true", default=None, help="no progress bar")
    parser.add_argument("--config", help="a TOML file with the same options (the command line wins)")


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a run: the defaults, under the ``--config`` file, under the command line."""

    values = dict(DEFAULTS)
    if getattr(args, "config", None):
        values.update(load_config(args.config))
    given = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("config", "command") and k in DEFAULTS}
    for key, value in given.items():
        if value is None or (key == "inputs" and not value):
            continue
        values[key] = dict(value) if key in ("set", "backbone_opt") else value
    if not values["inputs"]:
        raise ConfigError("give at least one INPUT (an image file or folder), on the command line or as inputs = [...] in --config")
    if not values["out"]:
        raise ConfigError("give --out DIR (the output folder)")
    for key in ("batch_size", "threads"):
        if not isinstance(values[key], int) or isinstance(values[key], bool) or values[key] < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be an integer >= 1, got {values[key]!r}")
    return values


def run(args: argparse.Namespace) -> int:

    values = resolve(args)
    set_threads(values["threads"])
    check_device(values["device"])  # before torchrun's process group picks a GPU
    group = join_process_group(values["device"])
    try:
        report = restore_files(
            values["inputs"],
            values["out"],
            task=values["task"],
            operator=values["operator"],
            operator_params=values["set"],
            degrade=values["degrade"],
            recipe=values["recipe"],
            backbone=values["backbone"],
            checkpoint=values["checkpoint"],
            backbone_options=values["backbone_opt"],
            mask=values["mask"],
            kernel=values["kernel"],
            noise_sigma=values["noise_sigma"],
            samples=values["samples"],
            save_samples=values["save_samples"],
            seed=values["seed"],
            batch_size=values["batch_size"],
            device=group[2] if group else values["device"],
            dtype=values["dtype"],
            tile=values["tile"],
            bit_depth=values["bit_depth"],
            overwrite=values["overwrite"],
            progress=not values["quiet"],
            shard=group[:2] if group else None,
            command={"invkit restore": {**values, "threads": values["threads"]}},
        )
    finally:
        if group is not None:
            dist.destroy_process_group()
    if group is not None and group[0] != 0:  # rank 0 reports for every process
        return report.exit_status
    if not values["quiet"] or report.failed:
        print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return report.exit_status
