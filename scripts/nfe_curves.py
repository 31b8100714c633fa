"""PSNR-vs-NFE and FID-vs-NFE curves (and paired differences) from one or more `invkit eval` runs.

Issue 13 publishes curves of several recipe families measured in separate runs (the main ×4 SR
run on 1000 test images, the secondary families on the first 200), and runs that split one task's
images in two (``--offset``) to use both cores. This script reads each run's
per-image rows (``rows.jsonl``) and its restorations, re-scores every method on the first ``--n``
images that all the runs share (PSNR/SSIM from the rows, fid_fashion recomputed from the
restorations against the same ground truth, so FIDs from different runs are comparable), and
writes a markdown table, paired differences and two plots.

The restorations come from ``--keep DIR/<run name>/batch-*.npz``: `invkit eval` removes its
``cache/`` when a run ends, so hard-link its batches elsewhere while it runs, e.g.
``while sleep 20; do cp -ln out/run/cache/*.npz keep/run/; done``.

Example (the commands of docs/benchmarks.md, "Fewer network calls"):

    python scripts/nfe_curves.py --runs out/i13/sr4 out/i13/sr4-curves --keep out/i13/keep --n 200 \
        --plot-prefix docs/img/nfe_sr4_n200 --pair ssd-30:ddnm-100
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from invkit import metrics
from invkit.data import to_unit_range
from invkit.evaluation import ground_truth_uint8, load_images, paired_difference

#: named presets -> (family, nominal NFE) on the curves; other presets are points of their own
PRESET_POINTS = {
    "ssd-30": ("ssd", 30), "ssd-100": ("ssd", 100), "ddnm-30": ("ddnm", 30), "ddnm-100": ("ddnm", 100),
    "ddrm-30": ("ddrm", 30), "ddrm-100": ("ddrm", 100), "ddrm-20": ("ddrm", 20),
    "ssd-inject-30": ("ssd-inject", 30), "ssd-inject-100": ("ssd-inject", 100), "ssd-2m-30": ("ssd-2m", 30),
}  # fmt: skip


def family_of(label: str) -> tuple[str, int | None]:
    """``(family, nominal NFE)`` of a method label (``None`` NFE: not on a family curve)."""
    if label in PRESET_POINTS:
        return PRESET_POINTS[label]
    name, _, opts = label.partition(":")
    steps = dict(re.findall(r"(inversion_steps|generation_steps)=(\d+)", opts))
    if opts and set(opts.replace(" ", "").split(",")) == {f"{k}={v}" for k, v in steps.items()}:
        return name, sum(int(v) for v in steps.values())
    return label, None


def read_run(run: Path) -> tuple[list[str], list[dict]]:
    """The method labels (in order) and per-image rows of a finished or running eval folder."""
    lines = (run / "rows.jsonl").read_text("utf-8").splitlines()
    header = json.loads(lines[0])
    rows = []
    for line in lines[1:]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    return list(header["settings"]["config"]["methods"]), rows


def read_outputs(keep: Path, methods: list[str], n: int) -> dict[int, dict[str, np.ndarray]]:
    """uint8 restorations of the images below n, by image index and method, from kept batches."""
    got: dict[int, dict[str, np.ndarray]] = {}
    for f in sorted(keep.glob("batch-*.npz")):
        z = np.load(f)
        for j, idx in enumerate(z["index"]):
            if idx < n:
                got[int(idx)] = {m: z[f"out_{k}"][j] for k, m in enumerate(methods)}
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True)
    ap.add_argument("--keep", type=Path, required=True, help="folder of <run name>/batch-*.npz")
    ap.add_argument("--n", type=int, required=True, help="score the first N test images")
    ap.add_argument("--pair", nargs="*", default=[], help="A:B paired differences (labels; A's last ':' splits)")
    ap.add_argument("--plot-prefix", help="write PREFIX_psnr.png and PREFIX_fid.png")
    ap.add_argument("--title", default="×4 SR, fashion32")
    args = ap.parse_args()
    torch.set_num_threads(1)

    x, _ = load_images("fashion-test", n=args.n)
    net = metrics.load_fashion_classifier()
    ref = metrics.fashion_features(to_unit_range(ground_truth_uint8(x)), net)
    # runs may split the images (``--offset``): a method's rows and restorations are their union
    rows_of: dict[str, dict[int, dict]] = {}
    outs_of: dict[str, dict[int, np.ndarray]] = {}
    for run in args.runs:
        methods, rows = read_run(run)
        for r in rows:
            if r["index"] < args.n:
                rows_of.setdefault(r["method"], {})[int(r["index"])] = r
        for idx, per in read_outputs(args.keep / run.name, methods, args.n).items():
            for m, u8 in per.items():
                outs_of.setdefault(m, {})[idx] = u8
    table: dict[str, dict] = {}
    all_rows: list[dict] = []
    for m, by_index in rows_of.items():
        missing = sorted(set(range(args.n)) - (set(by_index) & set(outs_of.get(m, {}))))
        if missing:
            raise SystemExit(f"{m}: no rows or kept restorations for {len(missing)} of the first {args.n} images "
                             f"(first {missing[0]}); lower --n")  # fmt: skip
        mine = [by_index[i] for i in range(args.n)]
        u8 = np.stack([outs_of[m][i] for i in range(args.n)])
        fid = metrics.fid_from_features(metrics.fashion_features(to_unit_range(u8), net), ref)
        table[m] = {"psnr": float(np.mean([r["psnr"] for r in mine])), "ssim": float(np.mean([r["ssim"] for r in mine])),
                    "nfe": int(round(np.mean([r["nfe"] for r in mine]))), "fid": float(fid)}  # fmt: skip
        all_rows += mine

    print(f"| method | family | nominal NFE | NFE | PSNR↑ | SSIM↑ | fid_fashion↓ (n = {args.n}) |")
    print("|---|---|---|---|---|---|---|")
    order = sorted(table, key=lambda m: (family_of(m)[0], family_of(m)[1] or 10**6, m))
    for m in order:
        fam, nom = family_of(m)
        t = table[m]
        print(f"| `{m}` | {fam} | {nom if nom is not None else '—'} | {t['nfe']} | {t['psnr']:.2f} | {t['ssim']:.4f} | {t['fid']:.2f} |")
    if args.pair:
        print(f"\n| a − b (paired, first {args.n} test images) | metric | mean difference | 95% CI | a better on |")
        print("|---|---|---|---|---|")
        for pair in args.pair:
            a, b = pair.rsplit(":", 1) if pair.count(":") == 1 or pair.split(":")[-1] in table else pair.split(":", 1)
            if a not in table:  # labels with ':' inside: try every split
                splits = [(pair[:i], pair[i + 1 :]) for i, c in enumerate(pair) if c == ":"]
                a, b = next((s for s in splits if s[0] in table and s[1] in table), (a, b))
            for metric in ("psnr", "ssim"):
                d = paired_difference(all_rows, a, b, metric)
                digits = 2 if metric == "psnr" else 4
                print(f"| {a} − {b} | {metric} | {d['mean']:+.{digits}f} | ±{d['ci95']:.{digits}f} | {d['a_better']:.0%} |")
    if args.plot_prefix:
        plot(table, order, args)


def plot(table: dict[str, dict], order: list[str], args: argparse.Namespace) -> None:
    """PREFIX_psnr.png and PREFIX_fid.png: a line per family, a marker per lone preset (log x;
    log y for FID, which spans two decades)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[str]] = {}
    for m in order:
        fam, nom = family_of(m)
        if table[m]["nfe"] > 0:
            series.setdefault(fam if nom is not None else m, []).append(m)
    colours = plt.get_cmap("tab10").colors
    markers = "osD^v<>Ph*"
    for metric, ylabel, logy in (("psnr", "PSNR (dB)", False), ("fid", "fid_fashion (log)", True)):
        fig, ax = plt.subplots(figsize=(7.6, 5.0), dpi=100)
        for k, (label, ms) in enumerate(series.items()):
            pts = sorted((table[m]["nfe"], table[m][metric]) for m in ms)
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker=markers[k % len(markers)], color=colours[k % len(colours)], label=label,
                    linestyle="-" if len(pts) > 1 else "none", markersize=7)  # fmt: skip
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ticks = (5, 10, 15, 20, 30, 50, 100)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("network calls (NFE)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{'PSNR' if metric == 'psnr' else 'fid_fashion'} vs network calls ({args.title}, n = {args.n})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(f"{args.plot_prefix}_{metric}.png")
        plt.close(fig)
    print(f"\nwrote {args.plot_prefix}_psnr.png and {args.plot_prefix}_fid.png")


if __name__ == "__main__":
    main()
