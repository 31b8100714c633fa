"""``invkit tune``: choose a recipe's numbers for a task and NFE budget on training images.

Samples ``--configs`` configurations of SSD (inversion/generation split at exactly ``--nfe``
network calls, t0, DA inversion η, generation η, spacing), ranks them by successive halving on
the first ``--rungs`` Fashion-MNIST *training* images (``fashion-train`` only, or a folder given
as ``--train-folder``; test data are refused in code), journals every trial in
``OUT/trials.jsonl`` (rerun the same command to resume), writes ``OUT/tune.json`` and adds the
winner as a named preset (``ssd-10-tuned``) to ``--write-preset`` (default ``OUT/presets.json``).
``INVKIT_PRESETS=OUT/presets.json invkit eval --recipes ssd-10-tuned`` then runs it (see
``docs/recipes.md``, "Tuned presets"). ``--fid-cap RECIPE`` keeps perception in the bargain:
configurations whose fid_fashion on a rung is worse than RECIPE's rank after all others.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import ConfigError
from .common import DTYPE_NAMES, add_quiet, add_threads, check_at_least, key_value, set_threads

DEFAULT_OUT = "out/invkit-tune"


def add_arguments(parser: argparse.ArgumentParser, name: str = "tune") -> None:
    parser.add_argument("--nfe", type=int, required=True, help="network-call budget: (F − 1) + B of every configuration")
    parser.add_argument("--task", default="sr4", help="a named evaluation task (default: sr4; see invkit eval --help)")
    parser.add_argument("--family", default="ssd", choices=("ssd", "ssd-2m"), help="recipe family to tune (default: ssd)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--dataset", default="fashion-train",
                      help="training data: fashion-train only (test data are refused; default: fashion-train)")
    data.add_argument("--train-folder", metavar="DIR", help="a folder of your own TRAINING images instead of fashion-train")
    parser.add_argument("--configs", type=int, default=24, help="configurations sampled (the paper's numbers first; default: 24)")
    parser.add_argument("--rungs", type=int, nargs="+", default=[8, 24, 64], metavar="N",
                        help="training images of each successive-halving rung, increasing (default: 8 24 64)")
    parser.add_argument("--keep", type=int, default=3, help="1/KEEP of a rung survives to the next (default: 3)")
    parser.add_argument("--objective", default="psnr", choices=("psnr", "ssim"),
                        help="mean per-image PSNR or SSIM on the rung's images (default: psnr)")
    parser.add_argument("--fid-cap", metavar="RECIPE",
                        help="rank only configurations whose fid_fashion on each rung's images is no worse than RECIPE's "
                             "(e.g. ddnm-30) first; needs rungs of >= 32 images (e.g. --rungs 64 128 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled configurations and of every image's noise")
    parser.add_argument("--backbone", default="fashion32", help="registered backbone (default: fashion32)")
    parser.add_argument("--checkpoint", help="weights file for the backbone")
    parser.add_argument("--backbone-opt", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="extra backbone option, repeatable")
    parser.add_argument("--noise-sigma", type=float, help="Gaussian measurement noise, sigma in [-1, 1] units")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=DTYPE_NAMES, help="backbone dtype (default: float32)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder: trials.jsonl, tune.json (default: ./{DEFAULT_OUT})")
    parser.add_argument("--overwrite", action="store_true", help="replace a tuning run with other settings in --out")
    parser.add_argument("--name", help="the preset's name (default: FAMILY-NFE-tuned, e.g. ssd-10-tuned)")
    parser.add_argument("--write-preset", metavar="FILE", help="presets JSON to add the winner to (default: OUT/presets.json)")
    add_threads(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from .. import evaluation as ev
    from .. import tuning

    check_at_least(nfe=(args.nfe, 2), configs=(args.configs, 1), keep=(args.keep, 2), seed=(args.seed, 0),
                   batch_size=(args.batch_size, 1), threads=(args.threads, 0))  # fmt: skip
    if args.noise_sigma is not None and not (math.isfinite(args.noise_sigma) and args.noise_sigma >= 0):
        raise ConfigError(f"--noise-sigma must be a finite number >= 0 ([-1, 1] units), got {args.noise_sigma}")
    out = ev.check_output_folder(args.out)
    preset_file = Path(args.write_preset) if args.write_preset else out / "presets.json"
    ev.check_output_file(preset_file, "--write-preset", suffixes=(".json",))
    if args.name is not None and not args.name.strip():
        raise ConfigError("--name must not be empty")
    if args.task not in ev.EVAL_TASKS:
        raise ConfigError(f"unknown --task {args.task!r}; tune takes a named task: {', '.join(ev.EVAL_TASKS)}")
    dataset = args.train_folder if args.train_folder is not None else args.dataset
    ev.check_device(args.device)
    cfg = tuning.TuneConfig(
        nfe=args.nfe, task=args.task, family=args.family, dataset=dataset, declared_training=args.train_folder is not None,
        configs=args.configs, rungs=tuple(args.rungs), keep=args.keep, objective=args.objective, fid_cap=args.fid_cap, seed=args.seed,
        backbone=args.backbone, checkpoint=args.checkpoint, backbone_options=dict(args.backbone_opt),
        noise_sigma=args.noise_sigma, batch_size=args.batch_size, device=args.device, dtype=args.dtype,
    )  # fmt: skip
    set_threads(args.threads)
    command = {"invkit tune": {k: v for k, v in vars(args).items() if not k.startswith("_")}}
    doc = tuning.tune(cfg, out, overwrite=args.overwrite, progress=not args.quiet, command=command, preset_name=args.name)
    tuning.write_presets(preset_file, doc["preset"])
    (name, entry), = doc["preset"].items()
    w = doc["winner"]
    print(f"{name}: {w['method']}")
    value = w[cfg.objective]
    print(f"  training mean {cfg.objective} {value:.4f} on {w['score_images']} images; {len(doc['trials'])} configs; "
          f"{doc['wall_seconds']:.0f} s")  # fmt: skip
    if cfg.fid_cap:
        verdict = "under" if w["under_cap"] else "OVER (no configuration reached it; this is the closest)"
        print(f"  fid_fashion {w['fid_fashion']:.2f} against {cfg.fid_cap}'s {w['cap_fid_fashion']:.2f} on the same images: {verdict}")
    print(f"wrote {out / tuning.RESULT} and preset {name!r} to {preset_file}")
    print(f"run it: INVKIT_PRESETS={preset_file} invkit eval --task {cfg.task} --recipes {name}")
    return 0
