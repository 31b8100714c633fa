r"""``invkit bench restore``: what ``invkit restore`` costs on a folder, and what tiling costs.

Two measurements, both through :func:`invkit.restoration.files.restore_files` (the command's own
path: reading, hashing, the journal, atomic PNG writes and the manifest included; the backbone is
loaded once beforehand):

- **files/s, batch 1 vs batched**: ``--n`` measured inputs of ``--size`` px (Fashion-MNIST test
  images put through the task's operator, or smooth random images when the data are missing) in
  one folder, restored with ``--batch-size`` 1 and each larger size into a fresh output folder;
- **tiled restoration**: one large clean image (a ``--mosaic`` × ``--mosaic`` mosaic of test
  images) degraded with the task (``--degrade``) and restored with each ``--tiles`` setting
  (default ``auto``: on fashion32, 128-px tiles beyond 128 px, a quarter overlap, mask-shift; and
  ``off``: one pass of the fully convolutional net) — wall time, PSNR against the clean mosaic,
  and the seam figures of :func:`invkit.restoration.seam_stats`: the mean jump between neighbouring
  pixels across tile borders, inside tiles, and their ratio (about 1: no visible seam). An
  untiled restoration is measured at the borders of the first tiled setting, as the reference.

Example::

    invkit bench restore --threads 1                  # 64 inputs 8×8, sr4, ssd-30, fashion32
    invkit bench restore --mosaic 4 --tiles 32 off    # 32-px tiles on a 128-px image
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def add_arguments(parser: argparse.ArgumentParser, name: str = "restore") -> None:
    parser.add_argument("--backbone", default="fashion32", help="registered backbone (default: fashion32)")
    parser.add_argument("--task", default="sr4", help="restore task (default: sr4)")
    parser.add_argument("--recipe", default="ssd-30", help="recipe (default: ssd-30)")
    parser.add_argument("--n", type=int, default=64, help="files in the folder (default: 64; 0 skips the files/s part)")
    parser.add_argument("--size", type=int, default=8, help="side of each measured input in px (default: 8: sr4 → 32)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64], help="batch sizes to compare (default: 1 64)")
    parser.add_argument("--mosaic", type=int, default=8, help="the large image is a MOSAIC×MOSAIC grid of 32-px images (default: 8: 256 px)")
    parser.add_argument("--tiles", nargs="+", default=["auto", "off"], metavar="TILE",
                        help="--tile settings to compare on the large image: auto, off or a size in px (default: auto off)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--device", default="cpu", help="device (default: cpu)")
    parser.add_argument("--output", default=None, help="also append the Markdown tables to this file")
    parser.add_argument("--json", default=None, help="also write the figures as JSON to this file")


def _clean_images(n: int) -> torch.Tensor:
    """``n`` 32×32 clean images in [-1, 1]: Fashion-MNIST test images, or smooth random ones."""
    from ..errors import InvkitError

    try:
        from ..data import fashion_mnist

        x, _ = fashion_mnist("test", limit=n)
        return x
    except (InvkitError, OSError):
        g = torch.Generator().manual_seed(0)
        base = torch.rand((n, 1, 8, 8), generator=g)
        return torch.nn.functional.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False) * 2 - 1


def _save(x: torch.Tensor, path: Path) -> None:
    from ..restoration import write_image

    write_image(x, path, bit_depth=8)


def files_per_second(model: Any, args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Restore one folder of ``args.n`` measured inputs at each batch size; files/s per size."""
    from ..evaluation import get_task
    from ..restoration.files import restore_files

    task = get_task(args.task)
    x = _clean_images(args.n)
    op = task.build(tuple(x.shape[1:]))
    with torch.no_grad():
        y = op.A(x)
    if y.shape[-1] != args.size:
        y = torch.nn.functional.interpolate(y, size=(args.size, args.size), mode="bilinear", align_corners=False)
    folder = root / "inputs"
    folder.mkdir()
    for i in range(args.n):
        _save(y[i].clamp(-1, 1), folder / f"in{i:04d}.png")
    rows = []
    for b in args.batch_sizes:
        out = root / f"out-b{b}"
        start = time.perf_counter()
        rep = restore_files([folder], out, task=args.task, recipe=args.recipe, backbone=args.backbone, model=model,
                            batch_size=b, seed=args.seed, device=args.device)  # fmt: skip
        wall = time.perf_counter() - start
        files = rep.manifest["files"]
        rows.append({
            "batch_size": b, "files": len(files), "ok": sum(f["status"] == "ok" for f in files), "seconds": wall,
            "files_per_second": len(files) / wall, "nfe_per_file": files[0].get("nfe"),
            "output_shape": files[0].get("shape"),
        })  # fmt: skip
    base = rows[0]["files_per_second"] if rows else 1.0
    for r in rows:
        r["speedup"] = r["files_per_second"] / base
    return rows


def tiled(model: Any, args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """A large clean mosaic, degraded and restored tiled and untiled: time, PSNR, seams."""
    from ..restoration import read_image, seam_stats
    from ..restoration.files import restore_files

    m = args.mosaic
    x = _clean_images(m * m)
    big = x.reshape(m, m, 1, 32, 32).permute(2, 0, 3, 1, 4).reshape(1, 32 * m, 32 * m)
    # shifted by half an image, so tile borders (multiples of 32 px) cut through garments rather
    # than run along the mosaic's black gaps, where no seam could show
    big = big.roll((16, 16), dims=(-2, -1))
    folder = root / "large"
    folder.mkdir()
    _save(big, folder / "mosaic.png")
    rows = []
    for tile in args.tiles:
        out = root / f"large-{tile}"
        start = time.perf_counter()
        rep = restore_files([folder], out, task=args.task, recipe=args.recipe, backbone=args.backbone, model=model,
                            degrade=True, seed=args.seed, tile=tile, device=args.device)  # fmt: skip
        wall = time.perf_counter() - start
        rec = rep.manifest["files"][0]
        if rec["status"] != "ok":
            raise RuntimeError(f"the tiled restoration failed: {rec.get('error')}")
        rows.append({"tile": tile, "rec": rec, "seconds": wall, "x": read_image(out / rec["output"]).x})
    tiled_info = next((r["rec"]["info"] for r in rows if r["rec"]["info"].get("tile")), {})
    size, overlap = tiled_info.get("tile"), tiled_info.get("overlap")
    result = []
    for r in rows:
        own = r["rec"]["info"]
        # an untiled image is measured at the borders of the tiled one: the reference
        t, o = (own["tile"], own["overlap"]) if own.get("tile") else (size, overlap)
        seams = seam_stats(r["x"], t, o) if t else {}
        result.append({
            "tile": r["tile"], "image": list(r["x"].shape), "tile_px": own.get("tile"),
            "overlap_px": own.get("overlap") if own.get("tile") else None,
            "tiles": _count_tiles(r["x"].shape[-2:], own.get("tile"), own.get("overlap")),
            "seconds": r["seconds"], "nfe": r["rec"]["nfe"], "psnr": r["rec"]["psnr"], "ssim": r["rec"]["ssim"],
            "consistency": r["rec"]["consistency"], "seam_border": seams.get("border"), "seam_inside": seams.get("inside"),
            "seam_ratio": seams.get("ratio"),
        })  # fmt: skip
    return result


def _count_tiles(hw: Any, size: int | None, overlap: int | None) -> int:
    from ..restoration import tile_plan

    return len(tile_plan(tuple(int(v) for v in hw), size, overlap)) if size else 1


def machine() -> str:
    return f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


def markdown(args: argparse.Namespace, fps: list[dict[str, Any]], tiles: list[dict[str, Any]]) -> str:
    lines = [] if not fps else [
        f"files/s: {args.n} inputs {args.size}×{args.size}, task {args.task}, {args.recipe}, {args.backbone} ({machine()})",
        "",
        "| batch size | files | seconds | files/s | speed-up | NFE/file | output |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in fps:
        shape = "×".join(map(str, r["output_shape"][-2:])) if r["output_shape"] else "-"
        lines.append(f"| {r['batch_size']} | {r['files']} | {r['seconds']:.1f} | {r['files_per_second']:.2f} | {r['speedup']:.2f}× | {r['nfe_per_file']} | {shape} |")
    lines += [
        "",
        f"tiled restoration: one {tiles[0]['image'][-2]}×{tiles[0]['image'][-1]} clean mosaic, --degrade, task {args.task}, {args.recipe}",
        "",
        "| tile | tiles | seconds | NFE | PSNR dB | SSIM | ‖Ax̂ − y‖ | border jump | inside jump | seam ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in tiles:
        tile = f"{r['tile']}: {r['tile_px']} px, overlap {r['overlap_px']}" if r["tile_px"] else f"{r['tile']}: whole image"
        lines.append(
            f"| {tile} | {r['tiles']} | {r['seconds']:.1f} | {r['nfe']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['consistency']:.2e} "
            f"| {_f(r['seam_border'])} | {_f(r['seam_inside'])} | {_f(r['seam_ratio'], 3)} |"
        )
    return "\n".join(lines) + "\n"


def _f(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    from ..commands.eval import set_threads
    from ..errors import ConfigError
    from ..evaluation import load_backbone

    if args.n < 0 or args.size < 1 or args.mosaic < 1 or any(b < 1 for b in args.batch_sizes):
        raise ConfigError("--size, --mosaic and every --batch-sizes value must be >= 1, --n >= 0")
    from ..restoration.files import parse_tile

    args.tiles = [parse_tile(t) for t in args.tiles]
    set_threads(args.threads)
    model = load_backbone(args.backbone, device=args.device)
    with tempfile.TemporaryDirectory(prefix="invkit-bench-restore-") as tmp:
        root = Path(tmp)
        fps = files_per_second(model, args, root) if args.n else []
        tiles = tiled(model, args, root)
    text = markdown(args, fps, tiles)
    print(text, end="")
    if args.output:
        with open(args.output, "a", encoding="utf-8") as fh:
            fh.write(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"files_per_second": fps, "tiled": tiles, "machine": machine()}, indent=1, default=str) + "\n")
    return 0
