"""``invkit eval``: evaluate recipes on a dataset and task (PSNR, SSIM, FID, consistency, NFE, time).

Writes ``rows.jsonl``, ``results.json``, ``table.md``, ``grid.png`` and last ``manifest.json``
to ``--out``; with ``--nfe-sweep`` also ``nfe_sweep.{json,md}`` and the plot ``fid_vs_nfe.png``.
Every finished batch is journalled, so ``--resume`` continues a killed run. Under ``torchrun``
(``torchrun --nproc_per_node=G -m invkit.cli eval ...``) the images are sharded across the
processes (one GPU each with ``--device cuda``) and rank 0 writes the merged result, identical
to a single-process run. See ``docs/eval.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import attrs
import torch.distributed as dist

from .. import evaluation as ev
from ..errors import ConfigError
from .common import DTYPE_NAMES, add_quiet, add_threads, check_at_least, join_process_group, key_value, set_threads

DEFAULT_METHODS = ["input", "ssd-30", "ddnm-30", "ddrm-30"]
DEFAULT_OUT = "out/invkit-eval"


def add_arguments(parser: argparse.ArgumentParser, name: str = "eval") -> None:
    tasks = ", ".join(ev.EVAL_TASKS)
    parser.add_argument("--backbone", default="fashion32", help="registered backbone (default: fashion32)")
    parser.add_argument("--checkpoint", help="weights file for the backbone (a published preset needs one)")
    parser.add_argument("--backbone-opt", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="extra backbone option, repeatable (e.g. --backbone-opt seed=0 for a random family net)")
    parser.add_argument("--dataset", default="fashion-test",
                        help="fashion-test, fashion-train, or a folder of PNG/JPEG images (default: fashion-test)")
    parser.add_argument("--task", default=None, help=f"one of: {tasks} (default: sr4)")
    parser.add_argument("--operator", metavar="NAME", help="any registered operator instead of --task (see invkit operators)")
    parser.add_argument("--set", action="append", type=key_value, default=[], metavar="KEY=VALUE", dest="set",
                        help="a parameter of --operator, repeatable (values are Python literals)")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("--noise-sigma", type=float, help="Gaussian measurement noise, sigma in [-1, 1] units")
    noise.add_argument("--noise-uniform", type=float, metavar="SMAX",
                       help="Gaussian noise with sigma ~ U[0, SMAX] per image (SSD+'s protocol, SMAX 0.2)")
    noise.add_argument("--noise-jpeg", type=int, metavar="Q", help="JPEG-compress the measurement at quality Q")
    parser.add_argument("--recipes", nargs="+", default=None, metavar="METHOD",
                        help="recipe presets, 'name:key=value,...' overrides, 'input' (A+y, NFE 0) or 'y' "
                        f"(y itself) (default: {' '.join(DEFAULT_METHODS)})")
    # --num-images: under torchrun, whose own parser rejects the abbreviation-like --n
    parser.add_argument("--n", "--num-images", dest="n", type=int, default=100,
                        help="number of images (default: 100; the paper used 1000)")
    parser.add_argument("--offset", type=int, default=0, help="index of the first image (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; image i's seeds derive from (seed, i)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=DTYPE_NAMES,
                        help="float32/float64, or bfloat16/float16 autocast of the backbone (default: float32)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in --out (same settings)")
    parser.add_argument("--overwrite", action="store_true", help="replace a run with other settings in --out")
    parser.add_argument("--grid", type=int, default=8, help="images shown in grid.png (default: 8)")
    parser.add_argument("--save-images", action="store_true", help="also write every restoration as PNG under OUT/images")
    parser.add_argument("--nfe-sweep", action="store_true",
                        help="evaluate --families at each --nfe budget (instead of --recipes) and plot FID vs NFE")
    parser.add_argument("--families", nargs="+", default=None, help="families for --nfe-sweep (default: ssd ddnm ddrm)")
    parser.add_argument("--nfe", nargs="+", type=int, default=None, help="NFE budgets for --nfe-sweep (default: 10 20 30 50 100)")
    add_threads(parser)
    parser.add_argument("--compare", nargs="+", default=[], metavar="A:B",
                        help="also report the paired per-image PSNR/SSIM difference A − B with its 95%% interval "
                        "(e.g. --compare ssd-30:ddnm-30); A and B must be among the evaluated methods")
    add_quiet(parser)


def _pairs(items: list[str], methods: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        # method labels may carry ':' overrides; take the colon that leaves two known labels
        splits = [(item[:i], item[i + 1 :]) for i, ch in enumerate(item) if ch == ":"]
        found = [(a, b) for a, b in splits if a in methods and b in methods]
        if not found:
            raise ConfigError(f"--compare {item!r}: expected A:B with A and B among the evaluated methods ({', '.join(methods)})")
        pairs.append(found[0])
    return pairs


def _check_flags(args: argparse.Namespace) -> None:
    """Numbers out of range and flags that would be silently ignored: one error each."""
    check_at_least(n=(args.n, 1), batch_size=(args.batch_size, 1), offset=(args.offset, 0), seed=(args.seed, 0),
                   grid=(args.grid, 0), threads=(args.threads, 0))  # fmt: skip
    for name in ("noise_sigma", "noise_uniform"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"--{name.replace('_', '-')} must be a finite number >= 0 ([-1, 1] units), got {value}")
    if args.noise_jpeg is not None and not 1 <= args.noise_jpeg <= 100:
        raise ConfigError(f"--noise-jpeg must be a quality in 1..100, got {args.noise_jpeg}")
    if not args.nfe_sweep:
        for flag, value in (("--families", args.families), ("--nfe", args.nfe)):
            if value is not None:
                raise ConfigError(f"{flag} only applies with --nfe-sweep; add --nfe-sweep or drop {flag}")
    elif args.recipes is not None:
        raise ConfigError("--nfe-sweep evaluates input and the --families at each --nfe budget: drop --recipes")
    if args.operator is None and args.set:
        raise ConfigError("--set gives parameters of --operator: add --operator NAME (named --task's are fixed)")
    if args.operator is not None and args.task is not None:
        raise ConfigError("give either --task or --operator, not both")
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: give one of them")


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    ev.check_output_folder(args.out)
    ev.check_device(args.device)
    set_threads(args.threads)
    sweep = ev.NFESweep(args.families or ev.SWEEP_FAMILIES, args.nfe or ev.SWEEP_NFES) if args.nfe_sweep else None
    methods = ["input", *sweep.methods()] if sweep else (args.recipes or DEFAULT_METHODS)
    pairs = _pairs(args.compare, [ev.parse_method(m).label for m in methods])  # checked before an hour of restoring, not after
    if args.resume and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--resume is not supported under torchrun; resume with a single process")
    cfg = ev.EvalConfig(
        operator=args.operator,
        operator_params=dict(args.set),
        task=None if args.operator is not None else (args.task or "sr4"),
        methods=tuple(methods),
        backbone=args.backbone,
        checkpoint=args.checkpoint,
        backbone_options=dict(args.backbone_opt),
        dataset=args.dataset,
        n=args.n,
        offset=args.offset,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        noise_sigma=args.noise_sigma,
        noise_jpeg=args.noise_jpeg,
        noise_sigma_max=args.noise_uniform,
        grid=args.grid,
        sweep=sweep,
    )
    folder = ev.RunFolder(args.out, ev.run_settings(cfg, save_images=args.save_images, compare=pairs))
    if args.resume and folder.is_complete():
        print((folder.out / "table.md").read_text("utf-8"), end="")
        print(f"{args.out} already holds this complete evaluation; nothing to do (--overwrite recomputes it)")
        return 0
    group = join_process_group(args.device)
    try:
        if group is None:
            done: dict = {}

            def start() -> dict:
                done.update(folder.open(resume=args.resume, overwrite=args.overwrite) or {})
                return done

            result = ev.evaluate(cfg, progress=not args.quiet, start=start, on_batch=folder.append)
        else:
            # every process restores its shard of the images (their seeds do not depend on the
            # shard); rank 0 gathers the shards, computes the set-level metrics and writes
            rank, world, device = group
            cfg = attrs.evolve(cfg, device=device)
            opener = (lambda: folder.open(overwrite=args.overwrite) or {}) if rank == 0 else None
            part = ev.evaluate(cfg, progress=not args.quiet and rank == 0, shard=(rank, world), start=opener)
            parts: list | None = [None] * world if rank == 0 else None
            dist.gather_object(part, parts, dst=0)
            if rank != 0:
                return 0
            result = ev.merge_results(parts)
    finally:
        if group is not None:
            dist.destroy_process_group()
    arguments = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    journal = folder.finish(result)
    written = ev.write_outputs(result, args.out, save_images=args.save_images, compare=pairs, command={"invkit eval": arguments},
                               extra_files=[journal], settings=folder.settings)
    folder.close()
    print(ev.markdown_table(result, compare=pairs), end="")
    plotted = any(a.get("fid_fashion") is not None for a in result.aggregates.values())
    if sweep is not None and plotted and not ev.extras.available("matplotlib"):
        print(f"note: fid_vs_nfe.png not drawn: matplotlib is not installed; {ev.extras.PLOT_HINT}", file=sys.stderr)
    print(f"wrote {len(written)} files to {args.out}")
    return 0
