"""Numbers and figure for the fashion32 model card (``docs/fashion32.md``).

``python -m invkit_fashion32.card --samples 1000 --steps 100 --grid docs/img/fashion32_samples.png
--json card.json`` draws unconditional samples with the engine's from-noise loop
(``Recipe(inverter=None, guidance=NoGuidance(), eta=η)`` with the identity operator, ``leading``
spacing over T = 1000), whose step is ``x′ = √ᾱ′·x̂0 + √(1−η²)·√(1−ᾱ′)·ε̂ + η·√(1−ᾱ′)·z``
(η = 0: DDIM; the default η = 0.85 is DDNM's), saves the first 64 as an 8×8 grid, and measures

- the sample FID: :func:`invkit.metrics.fid_fashion` between the samples and as many test images;
- its floor: the same FID between as many training and test images (``--floor-sizes``);
- the classifier's predicted-class histogram of the samples (mode coverage at a glance), and the
  FID of real training images drawn with that class mix (the part of the FID due to imbalance).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import invkit
from invkit.data import FASHION_MNIST_CLASSES, fashion_mnist
from invkit.metrics import fashion_features, fid_from_features, load_fashion_classifier, to_uint8


def sample(model, n: int, *, steps: int, batch: int, seed: int, eta: float = 0.85, progress: bool = True) -> torch.Tensor:
    """``n`` unconditional samples ``(n, 1, 32, 32)``; batch ``k`` draws from seed ``seed + k``."""
    recipe = invkit.Recipe(inverter=None, guidance=invkit.NoGuidance(), generation_steps=steps, eta=eta, spacing="leading")
    op = invkit.operator("denoise")
    out = []
    for k, i in enumerate(range(0, n, batch)):
        b = min(batch, n - i)
        y = torch.zeros(b, 1, 32, 32)
        g = torch.Generator().manual_seed(seed + k)
        out.append(recipe.run(model, y, op, generator=g, progress=progress))
    return torch.cat(out)


def save_grid(x: torch.Tensor, path: Path, *, nrow: int = 8, pad: int = 2, scale: int = 2) -> None:
    """An ``nrow``-wide grid of uint8 images (as SSD saves them), white gaps, upscaled ×``scale``."""
    from PIL import Image

    u = to_uint8(x[:, 0]).numpy()
    n, h, w = u.shape
    rows = (n + nrow - 1) // nrow
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = u[i]
    im = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def eta_rows(model, etas: list[float], *, n: int = 8, steps: int = 100, seed: int = 0) -> torch.Tensor:
    """``n`` samples per η from the same seed, stacked row by row: how the noise mix changes them."""
    return torch.cat([sample(model, n, steps=steps, batch=n, seed=seed, eta=eta, progress=False) for eta in etas])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="weights to evaluate (default: the shipped fashion32.safetensors)")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--steps", type=int, default=100, help="sampling steps (default 100)")
    p.add_argument("--eta", type=float, default=0.85, help="generation noise mix (0 = DDIM; default 0.85)")
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", type=Path, help="write the first 64 samples as a PNG grid here")
    p.add_argument("--json", type=Path, help="write the numbers here")
    p.add_argument("--floor-sizes", default="", help="comma-separated N for the train-vs-test floor, e.g. 1000,10000")
    p.add_argument("--no-samples", action="store_true", help="only the floor")
    p.add_argument("--threads", type=int)
    p.add_argument("--samples-out", type=Path, help="only draw the samples and save them (torch .pt) here: shard the work")
    p.add_argument("--samples-in", type=Path, nargs="+", help="score samples saved with --samples-out instead of drawing")
    p.add_argument("--eta-grid", type=Path, help="only write 8 samples per η (rows: 0, 0.5, 0.85, 1; same seed) as a PNG grid here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eta_grid:
        model = invkit.backbone("fashion32", checkpoint=args.checkpoint)
        save_grid(eta_rows(model, [0.0, 0.5, 0.85, 1.0], steps=args.steps, seed=args.seed), args.eta_grid)
        return 0

    result: dict = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads", "torch": torch.__version__}
    if args.samples_out:
        model = invkit.backbone("fashion32", checkpoint=args.checkpoint)
        start = time.perf_counter()
        x = sample(model, args.samples, steps=args.steps, batch=args.batch, seed=args.seed, eta=args.eta)
        info = {"steps": args.steps, "eta": args.eta, "seed": args.seed, "seconds": time.perf_counter() - start}
        torch.save({"x": x, **info}, args.samples_out)
        return 0
    clf = load_fashion_classifier()
    x_test, _ = fashion_mnist("test")
    f_test = fashion_features(x_test, clf)
    floors = [int(s) for s in args.floor_sizes.split(",") if s]
    if floors:
        x_train, _ = fashion_mnist("train", limit=max(floors))
        f_train = fashion_features(x_train, clf)
        result["floor"] = {str(n): fid_from_features(f_train[:n], f_test[:n]) for n in floors}
        print("floor (train vs test):", result["floor"], flush=True)
    if args.samples_in:
        shards = [torch.load(f, weights_only=True) for f in args.samples_in]
        x = torch.cat([d["x"] for d in shards])
        seconds = sum(d["seconds"] for d in shards)
        args.steps, args.eta, args.samples = shards[0]["steps"], shards[0]["eta"], len(x)
        args.seed = [d["seed"] for d in shards]
    elif not args.no_samples:
        model = invkit.backbone("fashion32", checkpoint=args.checkpoint)
        start = time.perf_counter()
        x = sample(model, args.samples, steps=args.steps, batch=args.batch, seed=args.seed, eta=args.eta)
        seconds = time.perf_counter() - start
    if args.samples_in or not args.no_samples:
        if args.grid:
            save_grid(x[:64], args.grid)
        f_s = fashion_features(x, clf)
        with torch.no_grad():
            pred = torch.cat([clf(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
        hist = torch.bincount(pred, minlength=10).tolist()
        # real training images with the samples' class mix: how much of the FID is class imbalance
        x_train, y_train = fashion_mnist("train")
        idx = torch.cat([torch.nonzero(y_train == c)[:k, 0] for c, k in enumerate(hist)])
        f_mix = fashion_features(x_train[idx], clf)
        result["samples"] = {
            "n": args.samples,
            "sampler": f"Recipe(inverter=None, guidance=NoGuidance(), eta={args.eta}), {args.steps} steps, leading spacing",
            "seed": args.seed,
            "sampling_wall_seconds_summed_over_shards": round(seconds, 1),
            "fid_vs_test": fid_from_features(f_s, f_test[: args.samples]),
            "predicted_classes": dict(zip(FASHION_MNIST_CLASSES, hist)),
            "fid_real_same_class_mix_vs_test": fid_from_features(f_mix, f_test[: args.samples]),
        }
        print(json.dumps(result["samples"], indent=2), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
