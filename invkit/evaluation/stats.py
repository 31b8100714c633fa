"""Statistics of an evaluation: per-method means, the Fréchet distances, the optional LPIPS and
Inception FID, and paired per-image differences."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import metrics
from ..data import fashion_mnist, to_unit_range
from ..errors import ConfigError, InvkitError
from . import extras
from .config import EvalResult
from .loading import FASHION_DATASETS

__all__ = [
    "LPIPS_VGG_WEIGHTS",
    "INCEPTION_FID_WEIGHTS",
    "aggregate",
    "summarise",
    "fid_columns",
    "optional_metrics",
    "paired_difference",
]

#: weights that LPIPS-VGG and the pytorch-fid Inception load from the torch hub cache
LPIPS_VGG_WEIGHTS = "vgg16-397923af.pth"
INCEPTION_FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means of one method's per-image rows (NFE: the common count, else the mean)."""

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    nfes = {r["nfe"] for r in rows}
    return {
        "n": len(rows),
        "psnr": mean("psnr"),
        "ssim": mean("ssim"),
        "consistency": mean("consistency"),
        "seconds_per_image": mean("seconds"),
        "nfe": nfes.pop() if len(nfes) == 1 else mean("nfe"),
    }


def summarise(result: EvalResult, *, set_level: bool) -> None:
    """Fill ``result``'s aggregates and notes: per-method means of the rows; with ``set_level``
    (all images present), FID and the optional LPIPS / Inception FID too."""
    result.aggregates = {m["label"]: aggregate([r for r in result.rows if r["method"] == m["label"]]) for m in result.methods}
    result.notes = []
    if set_level:
        result.fid_floor = fid_columns(result.config.dataset, result.gt_u8, result.outputs_u8, result.aggregates, result.notes)
        optional_metrics(result.gt_u8, result.outputs_u8, result.aggregates, result.notes)
    else:
        result.notes.append("a shard: set-level metrics (FID) are computed by merge_results over all shards")


def fid_columns(dataset: str, gt_u8: np.ndarray, outputs: Mapping[str, np.ndarray], aggregates: dict, notes: list[str]) -> float | None:
    """Set ``fid_fashion`` of every method against the ground truth; return its train-vs-test floor.

    Args:
        dataset: the dataset's name (the floor is measured for the Fashion-MNIST splits only).
        gt_u8: uint8 ``(n, 1, 32, 32)`` ground truth.
        outputs: method label -> uint8 restorations.
        aggregates: method label -> dict to receive ``fid_fashion``.
        notes: receives why anything was skipped.

    Returns:
        The FID between the first n images of the other split and the ground truth, or ``None``.
    """
    if tuple(gt_u8.shape[1:]) != (1, 32, 32):
        notes.append(f"fid_fashion skipped: it needs 1×32×32 images (Fashion-MNIST-like), these are {'×'.join(map(str, gt_u8.shape[1:]))}")
        return None
    if gt_u8.shape[0] < 2:
        notes.append("fid_fashion skipped: it needs at least 2 images")
        return None
    try:
        # the classifier loaded and the ground truth's features taken once for every method
        net = metrics.load_fashion_classifier()
        ref = metrics.fashion_features(to_unit_range(gt_u8), net)
        for label, u8 in outputs.items():
            aggregates[label]["fid_fashion"] = metrics.fid_from_features(metrics.fashion_features(to_unit_range(u8), net), ref)
        floor = None
        if dataset in FASHION_DATASETS:
            other, _ = fashion_mnist("train" if dataset == "fashion-test" else "test", limit=gt_u8.shape[0])
            floor = metrics.fid_from_features(metrics.fashion_features(other, net), ref)
        else:
            notes.append("fid_fashion floor skipped: it is measured on Fashion-MNIST (train vs test) only")
    except InvkitError as exc:  # e.g. the classifier weights are not installed
        notes.append(f"fid_fashion skipped: {exc}")
        return None
    if gt_u8.shape[0] < 1000:
        notes.append(f"fid_fashion on n = {gt_u8.shape[0]} images is biased upwards and noisy: compare methods at the same n")
    return floor


def _torch_hub_file(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _rgb(u8: np.ndarray) -> torch.Tensor:
    x = to_unit_range(u8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def optional_metrics(gt_u8: np.ndarray, outputs: Mapping[str, np.ndarray], aggregates: dict, notes: list[str]) -> None:
    """LPIPS (VGG, as SSD) and the Inception FID, only when packages and weights are local.

    Nothing is downloaded: a missing package or weights file adds a note saying what to install
    and where to put it. A failure inside an optional metric becomes a note too (it must not sink
    a finished evaluation).
    """
    gt = _rgb(gt_u8)
    if not extras.available("lpips"):
        notes.append("LPIPS skipped: install the 'lpips' package (0.1.4) to compute it")
    elif not _torch_hub_file(LPIPS_VGG_WEIGHTS).is_file():
        notes.append(f"LPIPS skipped: the VGG-16 weights {LPIPS_VGG_WEIGHTS} are not in {_torch_hub_file(LPIPS_VGG_WEIGHTS).parent}; nothing is downloaded")
    else:
        try:
            net = extras.require("lpips").LPIPS(net="vgg", verbose=False).eval()
            with torch.no_grad():
                for label, u8 in outputs.items():
                    d = torch.cat([net(_rgb(u8[i : i + 16]), gt[i : i + 16]).flatten() for i in range(0, len(u8), 16)])
                    aggregates[label]["lpips"] = float(d.mean())
        except Exception as exc:  # an optional extra must not sink a finished evaluation
            notes.append(f"LPIPS failed: {type(exc).__name__}: {exc}")
    if not extras.available("pytorch_fid"):
        notes.append("Inception FID skipped: install 'pytorch-fid' to compute it")
    elif not _torch_hub_file(INCEPTION_FID_WEIGHTS).is_file():
        notes.append(f"Inception FID skipped: {INCEPTION_FID_WEIGHTS} is not in {_torch_hub_file(INCEPTION_FID_WEIGHTS).parent}; nothing is downloaded")
    elif len(gt) < 2:
        notes.append("Inception FID skipped: it needs at least 2 images")
    else:
        try:
            InceptionV3 = extras.require("pytorch_fid.inception").InceptionV3
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

            def feats(x: torch.Tensor) -> np.ndarray:
                with torch.no_grad():  # pytorch-fid takes [0, 1] and resizes bilinearly to 299 itself
                    return torch.cat([net((x[i : i + 32] + 1) / 2)[0].flatten(1) for i in range(0, len(x), 32)]).double().numpy()

            ref = feats(gt)
            for label, u8 in outputs.items():
                aggregates[label]["fid_inception"] = float(metrics.fid_from_features(feats(_rgb(u8)), ref))
        except Exception as exc:  # an optional extra must not sink a finished evaluation
            notes.append(f"Inception FID failed: {type(exc).__name__}: {exc}")


def paired_difference(rows: Sequence[Mapping[str, Any]], a: str, b: str, metric: str = "psnr") -> dict[str, Any]:
    """Per-image difference ``a − b`` of ``metric`` over the images both methods restored.

    ``rows`` are per-image rows (:attr:`EvalResult.rows` or ``results.json``'s ``"rows"``). Every
    method restores image i from the same measurement, so the paired difference removes the
    image-to-image spread that dominates a difference of means.

    Returns:
        ``a``, ``b``, ``metric``, ``n``, ``mean``, ``ci95`` (the half-width 1.96·sd/√n of a normal
        interval for the mean) and ``a_better`` (the fraction of images where ``a`` scores higher).

    Raises:
        ConfigError: a method without rows for ``metric``, or fewer than 2 shared images.
    """
    values: dict[str, dict[int, float]] = {a: {}, b: {}}
    for row in rows:
        if row.get("method") in values and row.get(metric) is not None:
            values[row["method"]][int(row["index"])] = float(row[metric])
    for m in (a, b):
        if not values[m]:
            known = sorted({str(r.get("method")) for r in rows})
            raise ConfigError(f"no per-image {metric!r} for method {m!r}; methods in these rows: {', '.join(known)}")
    common = sorted(set(values[a]) & set(values[b]))
    if len(common) < 2:
        raise ConfigError(f"{a!r} and {b!r} share {len(common)} images; a paired difference needs at least 2")
    d = np.array([values[a][i] - values[b][i] for i in common], dtype=np.float64)
    return {
        "a": a,
        "b": b,
        "metric": metric,
        "n": len(d),
        "mean": float(d.mean()),
        "ci95": float(1.96 * d.std(ddof=1) / np.sqrt(len(d))),
        "a_better": float((d > 0).mean()),
    }
