"""Seams and quality of tiled restoration on fashion32 (the figures quoted for ``tile="auto"``).

A clean image is cut from a mosaic of Fashion-MNIST test images (32-px cells) at an offset of
(13, 11) px, so that no tile border falls on a cell edge; it is degraded with ``sr4`` (bicubic,
seeded per image) and restored with ``ssd-30`` whole and in tiles. ``seam_stats`` compares the
mean |jump| between adjacent pixels across tile borders with the jump elsewhere; the ground
truth's own ratio at the same borders is the reference (1 = no seam).

    PYTHONPATH=.:plugins python scripts/restore_seams.py --size 128 96 --n 4
"""

from __future__ import annotations

import argparse
import time

import torch

import invkit
from invkit.data import fashion_mnist
from invkit.restoration import prepare, restore_batch, seam_stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(128, 96), metavar=("H", "W"))
    ap.add_argument("--n", type=int, default=4, help="images")
    ap.add_argument("--tiles", default="off,32:8,64:16,128:32", help="comma list of off | TILE:OVERLAP")
    ap.add_argument("--recipe", default="ssd-30")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    H, W = args.size
    rows, cols = (H + 13) // 32 + 1, (W + 11) // 32 + 1
    model = invkit.backbone("fashion32")
    x_all, _ = fashion_mnist("test", limit=rows * cols * args.n)
    print(f"{H}×{W} restorations (sr4: y {H // 4}×{W // 4}), {args.n} images, {args.recipe}, fashion32, {args.threads} thread(s)")
    print("| tiles | overlap | border jump | inside jump | ratio | ground truth ratio | PSNR | SSIM | ‖Ax̂−y‖ | s/img |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.tiles.split(","):
        tile, overlap = ("off", None) if spec == "off" else tuple(int(v) for v in spec.split(":"))
        acc = []
        for n in range(args.n):
            cells = x_all[rows * cols * n : rows * cols * (n + 1)]
            mosaic = torch.cat([torch.cat(list(cells[cols * r : cols * (r + 1)]), dim=-1) for r in range(rows)], dim=-2)
            clean = mosaic[..., 13 : 13 + H, 11 : 11 + W]
            job = prepare(clean, "sr4", backbone=model, mode="degrade", index=n)
            t = time.perf_counter()
            (res,) = restore_batch([job], model, args.recipe, tile=tile, overlap=overlap)
            seconds = time.perf_counter() - t
            ts, ov = (tile, overlap) if tile != "off" else (32, 8)  # 'off': measured at the 32-px borders
            s, g = seam_stats(res.x, ts, ov), seam_stats(clean, ts, ov)
            acc.append([s["border"], s["inside"], s["ratio"], g["ratio"], res.psnr, res.ssim, res.consistency, seconds])
        m = torch.tensor(acc, dtype=torch.float64).mean(0).tolist()
        label = "off (whole image)" if tile == "off" else f"{tile} px"
        print(f"| {label} | {overlap if overlap is not None else '-'} | {m[0]:.4f} | {m[1]:.4f} | {m[2]:.2f} | {m[3]:.2f} | "
              f"{m[4]:.2f} | {m[5]:.4f} | {m[6]:.1e} | {m[7]:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
