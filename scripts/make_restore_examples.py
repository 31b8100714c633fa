"""Make the small measured inputs under ``examples/data/`` (run once; the output is committed).

Every input comes from a few Fashion-MNIST *test* images (padded 28 → 32 as the fashion32 model
saw them in training; the test split was never trained on), degraded with invkit's own operators
and quantised to 8-bit PNG, so ``invkit restore examples/data/<folder> ...`` runs offline on the
embedded model. Deterministic: the same files (bytes) on every run.

    PYTHONPATH=.:plugins python scripts/make_restore_examples.py [--out examples/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import invkit
from invkit.data import fashion_mnist
from invkit.restoration import write_image

CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
#: Fashion-MNIST test indices used (one per garment shown)
PICKS = (0, 1, 2, 4, 8, 12, 17, 18)
SEED = 20260101


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="examples/data", type=Path)
    out = ap.parse_args().out
    x_all, labels = fashion_mnist("test", limit=max(PICKS) + 1, dtype=torch.float64)
    x = {f"{CLASSES[int(labels[i])]}{i}": x_all[i : i + 1] for i in PICKS}
    names = list(x)
    g = torch.Generator().manual_seed(SEED)
    for sub in ("lowres", "holes/masks", "blurry", "noisy", "clean"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    # lowres: ×4 MATLAB-style bicubic downsampling (the sr4 task), 32×32 → 8×8 and a non-square
    # 32×24 centre crop → 8×6
    sr4 = invkit.operator("sr_bicubic", scale=4)
    for n in names[:2]:
        write_image(sr4.A(x[n])[0], out / "lowres" / f"{n}_8x8.png")
    n = names[2]
    write_image(sr4.A(x[n][..., :, 4:28])[0], out / "lowres" / f"{n}_8x6.png")

    # holes: the photo with a box and scattered pixels missing (set to black: y = mask · x is 0,
    # mid-gray, inside invkit, but a user's photo shows holes as any colour); masks white = known
    for k, n in enumerate(names[3:5]):
        m = torch.ones(1, 1, 32, 32, dtype=torch.float64)
        top, left = (6, 10) if k == 0 else (14, 4)
        m[..., top : top + 12, left : left + 14] = 0
        m = m * (torch.rand(1, 1, 32, 32, generator=g, dtype=torch.float64) > 0.15)
        write_image(torch.where(m > 0, x[n], -torch.ones_like(x[n]))[0], out / "holes" / f"{n}.png")
        write_image((m * 2 - 1)[0], out / "holes" / "masks" / f"{n}.png")

    # blurry: circular convolution with a small diagonal motion-blur kernel (saved as kernel.npy)
    kernel = np.eye(5) + 0.5 * np.eye(5, k=1) + 0.5 * np.eye(5, k=-1)
    kernel /= kernel.sum()
    np.save(out / "blurry" / "kernel.npy", kernel)
    blur = invkit.operator("blur_fft", kernel=torch.from_numpy(kernel), rcond=3e-2)
    for n in names[5:7]:
        write_image(blur.A(x[n])[0], out / "blurry" / f"{n}.png")

    # noisy: Gaussian noise of sigma 0.1 in [-1, 1] units (±13 grey levels)
    for n in names[6:8]:
        noisy = x[n] + 0.1 * torch.randn(x[n].shape, generator=g, dtype=torch.float64)
        write_image(noisy[0], out / "noisy" / f"{n}.png")

    # clean: ground truth for --degrade
    for n in names[:3]:
        write_image(x[n][0], out / "clean" / f"{n}.png")
    print(f"wrote {sum(1 for p in out.rglob('*') if p.is_file())} files, "
          f"{sum(p.stat().st_size for p in out.rglob('*') if p.is_file())} bytes under {out}")  # fmt: skip


if __name__ == "__main__":
    main()
