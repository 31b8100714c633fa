"""``invkit demo``: restore 8 Fashion-MNIST test images with SSD, DDNM and DDRM; write a grid.

The grid's columns are ground truth | y (at its own resolution, magnified with nearest
neighbour) | A⁺y | ssd-30 | ddnm-30 | ddrm-30, each restoration captioned with its PSNR. It
runs offline with the embedded fashion32 model in well under a minute on a CPU.

The default task is ×4 super-resolution (32 → 8 px): A⁺y is a blurred silhouette, so the
difference between the pseudo-inverse and a diffusion prior (texture, edges, collars, straps)
is plain to see, and it is the paper's headline task. The grid goes to ``out/invkit-demo.png``
by default: a folder git ignores in a checkout, so the demo leaves nothing untracked there.
"""

from __future__ import annotations

import argparse

from .. import evaluation as ev
from ..errors import MissingFileError
from ..io import write_atomic
from ..plugins import backbones_registry
from .common import add_quiet, add_threads, check_at_least, set_threads

DEMO_METHODS = ("input", "ssd-30", "ddnm-30", "ddrm-30")
DEFAULT_OUT = "out/invkit-demo.png"
#: a small random-weight DDPM of fashion32's shape, for development without the trained weights
RANDOM_BACKBONE = dict(ch=32, out_ch=1, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), in_channels=1, resolution=32, seed=0)


def add_arguments(parser: argparse.ArgumentParser, name: str = "demo") -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"where to write the grid PNG (default: ./{DEFAULT_OUT})")
    parser.add_argument("--task", default="sr4", help=f"one of: {', '.join(t for t, v in ev.EVAL_TASKS.items() if not v.rgb)} (default: sr4)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default: 8, all at once)")
    add_threads(parser)
    add_quiet(parser)
    # development only: a random-weight small DDPM instead of fashion32
    parser.add_argument("--random-backbone", action="store_true", help=argparse.SUPPRESS)


def demo_backbone(device: str, random: bool = False):
    """fashion32, or (``random``) a random-weight small DDPM of the same shape."""
    if random:
        return backbones_registry.build("ddpm", device=device, **RANDOM_BACKBONE).eval()
    if "fashion32" not in backbones_registry:
        raise MissingFileError(
            "the embedded fashion32 model is not installed (no plugin registers the backbone 'fashion32'); "
            "reinstall invkit with its built-in plugins (bash scripts/setup.sh) and check that "
            "INVKIT_DISABLE_PLUGINS does not name fashion32"
        )
    return ev.load_backbone("fashion32", device=device)


def run(args: argparse.Namespace) -> int:
    check_at_least(seed=(args.seed, 0), batch_size=(args.batch_size, 1), threads=(args.threads, 0))
    out = ev.check_output_file(args.out)
    ev.check_device(args.device)
    set_threads(args.threads)
    cfg = ev.EvalConfig(
        task=args.task, methods=DEMO_METHODS, backbone="fashion32", dataset="fashion-test",
        n=8, offset=0, seed=args.seed, batch_size=args.batch_size, device=args.device, grid=8,
    )  # fmt: skip
    if ev.get_task(cfg.task).rgb:
        ev.get_task(cfg.task).build((1, 32, 32))  # the RGB-only error, before loading anything
    model = demo_backbone(args.device, args.random_backbone)
    result = ev.evaluate(cfg, model=model, progress=not args.quiet)
    cols, captions = ev.grid_columns(result)
    grid = ev.image_grid(cols, captions=captions)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda tmp: grid.save(tmp, format="PNG"))
    print(f"task {cfg.task}: {result.task.description}; 8 Fashion-MNIST test images; backbone "
          f"{'random ddpm (development)' if args.random_backbone else 'fashion32'} on {args.device}")
    print(f"{'method':<10} {'PSNR':>7} {'SSIM':>7} {'NFE':>4} {'s/img':>7}")
    for label, a in result.aggregates.items():
        name = "A+y" if label == "input" else label
        print(f"{name:<10} {a['psnr']:7.2f} {a['ssim']:7.4f} {a['nfe']:>4} {a['seconds_per_image']:7.3f}")
    print(f"wrote {out} ({result.wall_seconds:.1f} s)")
    return 0
