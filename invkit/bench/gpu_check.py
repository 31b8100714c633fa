r"""A ready GPU benchmark for a session that has one: full-size 256-px backbones end to end.

Runs :func:`invkit.bench.speed.measure` over

- backbones ``ddpm-celebahq256`` (113.7 M params) and ``adm-imagenet256-uncond`` (552.8 M),
  random weights from seed 0 unless ``--checkpoint-dir`` holds the real files
  (``celeba_hq.ckpt``, ``256x256_diffusion_uncond.pt``) — speed does not depend on the weights;
- dtype fp32 and bf16 (autocast), batch 1 and 8;
- recipes ``ssd-30`` and ``ddnm-30`` on 4× bicubic SR;

and prints one Markdown table (forward median, recipe seconds per image, NFE, overhead ratio,
in-run ratio, peak CUDA memory), also written to ``--output`` (default ``$OUT/gpu_check.md`` when
``$OUT`` is set). It also checks that bf16 ε stays close to fp32 ε for each backbone.

Usage (about 3–5 minutes on one H100; ``--quick`` does batch 1 and ssd-30 only)::

    python -m invkit.bench.gpu_check --device cuda
    python -m invkit.bench.gpu_check --device cuda --quick --compile
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from .speed import HEADER, RULE, format_row, machine, measure

#: backbone name -> (checkpoint file name looked up in --checkpoint-dir, extra build parameters)
BACKBONES: dict[str, tuple[str, dict]] = {
    "ddpm-celebahq256": ("celeba_hq.ckpt", {}),
    "adm-imagenet256-uncond": ("256x256_diffusion_uncond.pt", {}),
}


def _bf16_agreement(name: str, params: dict, checkpoint: str | None, device: str) -> str:
    import invkit

    kw = {"checkpoint": checkpoint} if checkpoint else {"seed": 0}
    f32 = invkit.backbone(name, device=device, **params, **kw)
    g = torch.Generator(device).manual_seed(0)
    size = f32.image_size
    x = torch.randn((2, f32.channels, size, size), generator=g, device=device)
    with torch.inference_mode():
        ref = f32(x, 500)
        f32.autocast = torch.bfloat16
        low = f32(x, 500)
    rel = ((low - ref).norm() / ref.norm()).item()
    return f"{name}: relative L2 difference bf16 vs fp32 eps at t=500 = {rel:.2e}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m invkit.bench.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--checkpoint-dir", default=None, help="folder holding the real checkpoint files (optional)")
    p.add_argument("--quick", action="store_true", help="batch 1 and ssd-30 only")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd networks (slow first call)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)

    out = args.output or (str(Path(os.environ["OUT"]) / "gpu_check.md") if os.environ.get("OUT") else None)
    lines = [f"machine: {machine()}", "", HEADER, RULE]
    print("\n".join(lines), flush=True)
    batches = (1,) if args.quick else (1, 8)
    recipes = ("ssd-30",) if args.quick else ("ssd-30", "ddnm-30")
    compiles = (False, True) if args.compile else (False,)
    notes = []
    for name, (fname, params) in BACKBONES.items():
        ckpt = None
        if args.checkpoint_dir and (Path(args.checkpoint_dir) / fname).is_file():
            ckpt = str(Path(args.checkpoint_dir) / fname)
        notes.append(_bf16_agreement(name, params, ckpt, args.device))
        for compiled in compiles:
            for dtype in ("fp32", "bf16"):
                for batch in batches:
                    for recipe in recipes:
                        row = measure(
                            backbone=name, params=params, checkpoint=ckpt, seed=0, recipe=recipe, task="sr",
                            batch=batch, dtype=dtype, device=args.device, repeats=args.repeats, warmup=3,
                            compile=compiled,
                        )
                        if compiled:
                            row["backbone"] += " (compiled)"
                        line = format_row(row)
                        lines.append(line)
                        print(line, flush=True)
                        if torch.cuda.is_available():
                            torch.cuda.empty_cache()
    weights = "real checkpoints" if args.checkpoint_dir else "random weights (seed 0)"
    lines += ["", f"weights: {weights}", *notes]
    print("\n".join(lines[-len(notes) - 2:]))
    if out:
        Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
