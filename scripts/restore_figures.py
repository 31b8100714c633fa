"""Make the figures of docs/restore.md: every task on the shipped inputs (examples/data).

Each figure has one row per input: the input (y, magnified with nearest neighbour to the
output's size) | the restoration (the mean of 8 samples) | the per-pixel spread of the samples
(white = the largest std, its value under the tile). Run from the repository root:

    PYTHONPATH=.:plugins python scripts/restore_figures.py        # writes docs/img/restore_*.png

It uses exactly the command's library call (invkit.restoration.files.restore_files) with the
defaults (fashion32, ssd-30 unless said, seed 0), on 1 CPU thread; about a minute.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
IMG = ROOT / "docs" / "img"

#: figure name -> (input folder, options of restore_files)
FIGURES = {
    "sr4": ("lowres", dict(task="sr4")),
    "inpainting": ("holes", dict(task="inpainting", mask=str(DATA / "holes" / "masks"))),
    "deblur": ("blurry", dict(task="deblur", kernel=str(DATA / "blurry" / "kernel.npy"))),
    "denoise": ("noisy", dict(task="denoise", noise_sigma=0.1, recipe="ddrm-30")),
    "degrade": ("clean", dict(task="sr4", degrade=True)),
}
SAMPLES = 8


def _pad(x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """``x`` (C, h, w) padded with white at the bottom and right to (C, H, W)."""
    out = torch.ones((x.shape[0], H, W), dtype=x.dtype)
    out[:, : x.shape[1], : x.shape[2]] = x
    return out


def figure(name: str, folder: str, options: dict, work: Path) -> Path:
    from invkit.evaluation import display_measurement, image_grid
    from invkit.restoration import read_image
    from invkit.restoration.files import restore_files

    out = work / name
    rep = restore_files([DATA / folder], out, samples=SAMPLES, seed=0, **options)
    if rep.failed:
        raise SystemExit(rep.summary())
    rows = [f for f in rep.manifest["files"] if f["status"] == "ok"]
    xs = [read_image(out / f["output"]).x for f in rows]
    H, W = max(x.shape[-2] for x in xs), max(x.shape[-1] for x in xs)
    cols: dict[str, list[torch.Tensor]] = {}
    captions: dict[str, list[str]] = {}
    degrade = options.get("degrade", False)
    for f, x in zip(rows, xs):
        shown = []
        if degrade:
            shown.append(("clean input", read_image(f["input"]).x, ""))
            y = read_image(out / f["outputs"]["y"]["path"]).x
            shown.append(("y (synthesised)", display_measurement(y[None], x.shape)[0], ""))
            shown.append(("A+y", read_image(out / f["outputs"]["pinv"]["path"]).x, ""))
            note = f"{f['psnr']:.1f} dB"
        else:
            y = read_image(f["input"]).x
            shown.append(("input y", display_measurement(y[None], x.shape)[0], f"{y.shape[-2]}x{y.shape[-1]}"))
            note = f"{x.shape[-2]}x{x.shape[-1]}"
        shown.append((f"restoration (mean of {SAMPLES})", x, note))
        shown.append(("spread (std)", read_image(out / f["outputs"]["std"]["path"]).x, f"max {f['std_scale'] / 2:.3f}"))
        for title, t, cap in shown:
            cols.setdefault(title, []).append(_pad(t, H, W))
            captions.setdefault(title, []).append(cap)
    grid = image_grid([(t, torch.stack(v)) for t, v in cols.items()], captions=captions, min_tile=112)
    path = IMG / f"restore_{name}.png"
    grid.save(path)
    return path


def main() -> int:
    torch.set_num_threads(1)
    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (folder, options) in FIGURES.items():
            print(figure(name, folder, options, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
