"""``invkit eval``: evaluate recipes on a dataset and task (PSNR, SSIM, FID, consistency, NFE, time).

Writes ``results.json``, ``table.md``, ``grid.png`` and ``manifest.json`` to ``--out``; with
``--nfe-sweep`` also ``nfe_sweep.{json,md}`` and the plot ``fid_vs_nfe.png``. Under ``torchrun``
(``torchrun --nproc_per_node=G -m invkit.cli eval ...``) the images are sharded across the
processes (one GPU each with ``--device cuda``) and rank 0 writes the merged result, identical
to a single-process run. See ``docs/eval.md``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import ConfigError
from .. import evaluation as ev


def _key_value(text: str) -> tuple[str, Any]:
    key, eq, raw = text.partition("=")
    if not eq or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, ev._literal(raw)


def add_arguments(parser: argparse.ArgumentParser, name: str = "eval") -> None:
    tasks = ", ".join(ev.TASKS)
    parser.add_argument("--backbone", default="fashion32", help="registered backbone (default: fashion32)")
    parser.add_argument("--checkpoint", help="weights file for the backbone (a published preset needs one)")
    parser.add_argument("--backbone-opt", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="extra backbone option, repeatable (e.g. --backbone-opt seed=0 for a random family net)")
    parser.add_argument("--dataset", default="fashion-test",
                        help="fashion-test, fashion-train, or a folder of PNG/JPEG images (default: fashion-test)")
    parser.add_argument("--task", default="sr4", help=f"one of: {tasks} (default: sr4)")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("--noise-sigma", type=float, help="Gaussian measurement noise, sigma in [-1, 1] units")
    noise.add_argument("--noise-uniform", type=float, metavar="SMAX",
                       help="Gaussian noise with sigma ~ U[0, SMAX] per image (SSD+'s protocol, SMAX 0.2)")
    noise.add_argument("--noise-jpeg", type=int, metavar="Q", help="JPEG-compress the measurement at quality Q")
    parser.add_argument("--recipes", nargs="+", default=["input", "ssd-30", "ddnm-30", "ddrm-30"], metavar="METHOD",
                        help="recipe presets, 'name:key=value,...' overrides, 'input' (A+y, NFE 0) or 'y' "
                        "(y itself) (default: input ssd-30 ddnm-30 ddrm-30)")
    # --num-images: under torchrun, whose own parser rejects the abbreviation-like --n
    parser.add_argument("--n", "--num-images", dest="n", type=int, default=100,
                        help="number of images (default: 100; the paper used 1000)")
    parser.add_argument("--offset", type=int, default=0, help="index of the first image (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; image i's seeds derive from (seed, i)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=sorted(ev._DTYPES),
                        help="float32/float64, or bfloat16/float16 autocast of the backbone (default: float32)")
    parser.add_argument("--out", default="invkit-eval", help="output folder (default: ./invkit-eval)")
    parser.add_argument("--grid", type=int, default=8, help="images shown in grid.png (default: 8)")
    parser.add_argument("--save-images", action="store_true", help="also write every restoration as PNG under OUT/images")
    parser.add_argument("--nfe-sweep", action="store_true",
                        help="evaluate --families at each --nfe budget (instead of --recipes) and plot FID vs NFE")
    parser.add_argument("--families", nargs="+", default=list(ev.SWEEP_FAMILIES), help="families for --nfe-sweep (default: ssd ddnm ddrm)")
    parser.add_argument("--nfe", nargs="+", type=int, default=list(ev.SWEEP_NFES), help="NFE budgets for --nfe-sweep (default: 10 20 30 50 100)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice); 1 is fastest on a busy machine")
    parser.add_argument("--compare", nargs="+", default=[], metavar="A:B",
                        help="also report the paired per-image PSNR/SSIM difference A − B with its 95%% interval "
                        "(e.g. --compare ssd-30:ddnm-30); A and B must be among the evaluated methods")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` when asked (oversubscribed OpenMP threads spin and crawl)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _process_group(device: str) -> tuple[int, int, str] | None:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): join the process group; (rank, world, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        return None
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or args.batch_size < 1 or args.offset < 0 or args.seed < 0 or args.grid < 0:
        raise ConfigError("--n and --batch-size must be >= 1; --offset, --seed and --grid >= 0")
    set_threads(args.threads)
    methods = ["input", *ev.sweep_methods(args.families, args.nfe)] if args.nfe_sweep else args.recipes
    pairs = _pairs(args.compare, [ev.parse_method(m).label for m in methods])  # checked before an hour of restoring, not after
    group = _process_group(args.device)
    try:
        cfg = ev.EvalConfig(
            task=args.task,
            methods=tuple(methods),
            backbone=args.backbone,
            checkpoint=args.checkpoint,
            backbone_options=dict(args.backbone_opt),
            dataset=args.dataset,
            n=args.n,
            offset=args.offset,
            seed=args.seed,
            batch_size=args.batch_size,
            device=group[2] if group else args.device,
            dtype=args.dtype,
            noise_sigma=args.noise_sigma,
            noise_jpeg=args.noise_jpeg,
            noise_sigma_max=args.noise_uniform,
            grid=args.grid,
        )
        if group is None:
            result = ev.evaluate(cfg, progress=not args.quiet)
        else:
            # every process restores its shard of the images (their seeds do not depend on the
            # shard); rank 0 gathers the shards, computes the set-level metrics and writes
            import torch.distributed as dist

            rank, world, _ = group
            part = ev.evaluate(cfg, progress=not args.quiet and rank == 0, shard=(rank, world))
            parts: list | None = [None] * world if rank == 0 else None
            dist.gather_object(part, parts, dst=0)
            if rank != 0:
                return 0
            result = ev.merge_results(parts)
    finally:
        if group is not None:
            import torch.distributed as dist

            dist.destroy_process_group()
    arguments = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    sweep = (args.families, args.nfe) if args.nfe_sweep else None
    written = ev.write_outputs(result, args.out, save_images=args.save_images, sweep=sweep, compare=pairs, command={"invkit eval": arguments})
    print(ev.markdown_table(result, compare=pairs), end="")
    print(f"wrote {len(written)} files to {args.out}")
    return 0
