"""The restore loop: every method on every image, batch by batch, with per-image seeds.

:func:`evaluate` checks everything it can before the first restoration, restores the images in
batches of ``batch_size`` positions, hands each finished :class:`Batch` to ``on_batch`` (the
results folder journals it) and skips the batches that ``start`` returns (a resumed run), then
computes the per-method and set-level statistics.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import attrs
import numpy as np
import torch
from tqdm.auto import tqdm

from .. import metrics
from ..data import to_unit_range
from ..errors import ConfigError, InvalidInputError
from ..io import environment
from ..noise import Measurement, Noise
from .config import EvalConfig, EvalResult
from .loading import check_device, data_dtype, ground_truth_uint8, load_backbone, load_images
from .methods import Method, parse_method
from .seeds import image_generators, image_seed
from .stats import summarise
from .tasks import Task, make_noise

__all__ = ["Batch", "evaluate", "merge_results"]


@attrs.frozen
class Batch:
    """One finished batch: its first position, its image indices, every method's rows and uint8
    restorations (``label -> (b, C, H, W)``)."""

    start: int
    indices: tuple[int, ...] = attrs.field(converter=tuple)
    rows: tuple[dict[str, Any], ...] = attrs.field(converter=tuple)
    outputs: Mapping[str, np.ndarray] = attrs.field(hash=False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(
    cfg: EvalConfig,
    *,
    model=None,
    images: torch.Tensor | None = None,
    names: Sequence[str] | None = None,
    progress: bool = False,
    shard: tuple[int, int] | None = None,
    start: Callable[[], Mapping[int, Batch]] | None = None,
    on_batch: Callable[[Batch], None] | None = None,
) -> EvalResult:
    """Run the evaluation ``cfg``; ``model``/``images`` may be given directly.

    Args:
        cfg: the configuration.
        model: the backbone (default: built from ``cfg``).
        images: float ``(N, C, H, W)`` in [-1, 1] replacing ``cfg.dataset``; ``offset`` then only
            numbers the images (their seeds), so ``images[k:]`` with ``offset=k`` reproduces the
            per-image numbers of a run over ``images``.
        names: the images' names (with ``images``).
        progress: show a progress bar.
        shard: ``(rank, world)``: restore only positions ``rank, rank + world, …`` (one process
            under ``torchrun``); the result has no set-level metrics until :func:`merge_results`.
        start: called once everything is checked and loaded, just before the first restoration
            (the results folder is prepared then, never for a run that fails its checks); returns
            the batches of an interrupted run, by first position, which are not restored again.
        on_batch: called with each newly restored :class:`Batch`.

    Returns:
        The :class:`EvalResult`.

    Raises:
        ConfigError, UnknownNameError, InvalidInputError: bad settings, found before any work.
    """
    t_start = time.perf_counter()
    rank, world = shard if shard is not None else (0, 1)
    if not (isinstance(world, int) and isinstance(rank, int) and 0 <= rank < world):
        raise ConfigError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
    task = cfg.make_task()
    noise = make_noise(task, cfg.noise_sigma, cfg.noise_jpeg, cfg.noise_sigma_max)
    methods = [parse_method(m) for m in cfg.methods]
    recipes = [m.build(task, noise) for m in methods]  # fail on a bad name before any work
    device = check_device(cfg.device)
    if model is None and any(r is not None for r in recipes):
        model = load_backbone(cfg.backbone, checkpoint=cfg.checkpoint, device=cfg.device, dtype=cfg.dtype, options=cfg.backbone_options)
    channels = getattr(model, "channels", None)
    size = getattr(model, "image_size", None)
    if images is None:
        x_all, names = load_images(cfg.dataset, n=cfg.n, offset=cfg.offset, channels=channels, size=size)
    else:
        if images.ndim != 4 or images.shape[0] < cfg.n:
            raise InvalidInputError(f"images must be (N >= n, C, H, W), got {tuple(images.shape)} for n = {cfg.n}")
        x_all = images[: cfg.n]
        names = list(names)[: cfg.n] if names is not None else [f"image-{cfg.offset + i:05d}" for i in range(cfg.n)]
    if model is not None:
        if channels is not None and x_all.shape[1] != channels:
            raise ConfigError(f"backbone {cfg.backbone!r} works on {channels}-channel images, the data have {x_all.shape[1]}")
        if size is not None and tuple(x_all.shape[-2:]) != (size, size):
            raise ConfigError(f"backbone {cfg.backbone!r} works on {size}×{size} images, the data are {tuple(x_all.shape[-2:])}")
    # shape and channel errors now, not after an hour of work
    probe = task.build(tuple(x_all.shape[1:]), image_generators(cfg.seed, [cfg.offset], "operator"))
    with torch.no_grad():
        y_shape = tuple(probe.A(torch.zeros((1, *x_all.shape[1:]))).shape[1:])
    if "y" in [m.name for m in methods]:
        if y_shape != tuple(x_all.shape[1:]):
            raise ConfigError(f"the 'y' baseline needs y shaped like the image; task {task.name!r} gives y of shape {y_shape}")

    done = start() if start is not None else {}
    positions = list(range(rank, cfg.n, world))
    gt_u8 = ground_truth_uint8(x_all[positions])
    rows, outputs, examples = _restore(
        task, noise, methods, recipes, model, x_all, names, positions, device,
        seed=cfg.seed, offset=cfg.offset, batch_size=cfg.batch_size, grid=cfg.grid, dtype=data_dtype(cfg.dtype),
        gt_u8=gt_u8, progress=progress, done=done or {}, on_batch=on_batch,
    )  # fmt: skip
    result = EvalResult(
        config=cfg,
        task=task,
        noise=noise,
        methods=[
            {"label": m.label, "name": m.name, "overrides": dict(m.overrides), "recipe": None if r is None else repr(r)}
            for m, r in zip(methods, recipes)
        ],
        indices=[cfg.offset + p for p in positions],
        names=[names[p] for p in positions],
        rows=rows,
        aggregates={},
        fid_floor=None,
        notes=[],
        environment=environment(device, model),
        wall_seconds=0.0,
        gt_u8=gt_u8.numpy(),
        outputs_u8=outputs,
        examples=examples,
    )
    summarise(result, set_level=shard is None)
    result.wall_seconds = time.perf_counter() - t_start
    return result


def _restore(
    task: Task, noise: Noise, methods: list[Method], recipes: list, model, x_all: torch.Tensor, names: Sequence[str],
    positions: list[int], device: torch.device, *, seed: int, offset: int, batch_size: int, grid: int,
    dtype: torch.dtype, gt_u8: torch.Tensor, progress: bool, done: Mapping[int, Batch], on_batch: Callable[[Batch], None] | None,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], dict[str, torch.Tensor]]:  # fmt: skip
    """Restore the images at ``positions`` with every method: rows, uint8 outputs, grid examples.

    A batch in ``done`` (keyed by its first position ``lo``) is taken as it is; only its
    measurement is drawn again (cheap, and the same: per-image seeds) for the grid's examples.
    """
    rows: list[dict[str, Any]] = []
    outputs = {m.label: np.empty((len(positions), *x_all.shape[1:]), dtype=np.uint8) for m in methods}
    examples: dict[str, list[torch.Tensor]] = {"x": [], "y": [], "pinv": []}
    example_index: list[int] = []
    bar = tqdm(total=len(positions) * len(methods), unit="img", desc=f"eval {task.name}", disable=not progress, dynamic_ncols=True)
    try:
        for lo in range(0, len(positions), batch_size):
            pos = positions[lo : lo + batch_size]
            idx = [offset + p for p in pos]
            x = x_all[pos].to(device=device, dtype=dtype)
            gt = to_unit_range(gt_u8[lo : lo + len(pos)], torch.float64)
            op = task.build(tuple(x.shape[1:]), image_generators(seed, idx, "operator")).to(device=device, dtype=dtype)
            y = Measurement(op, noise).sample(x, generator=image_generators(seed, idx, "noise", device))
            keep = [j for j, p in enumerate(pos) if p < grid]
            if keep:  # per-sample operators (masks) take the whole batch
                with torch.no_grad():
                    examples["pinv"].append(op.pinv(y)[keep].cpu())
                examples["x"].append(x[keep].cpu())
                examples["y"].append(y[keep].cpu())
                example_index += [idx[j] for j in keep]
            old = done.get(lo)
            if old is not None and list(old.indices) == idx:
                rows += old.rows
                for label, u8 in old.outputs.items():
                    outputs[label][lo : lo + len(idx)] = u8
                bar.update(len(idx) * len(methods))
                continue
            batch_rows: list[dict[str, Any]] = []
            batch_out: dict[str, np.ndarray] = {}
            for m, recipe in zip(methods, recipes):
                bar.set_postfix_str(m.label)
                _sync(device)
                t = time.perf_counter()
                if recipe is None:
                    with torch.no_grad():
                        x_hat = y.clone() if m.name == "y" else op.pinv(y)
                    nfe = 0
                else:
                    res = recipe.run(model, y, op, generator=image_generators(seed, idx, "recipe", device), return_info=True)
                    x_hat, nfe = res.x, int(res.nfe)
                _sync(device)
                seconds = (time.perf_counter() - t) / len(idx)
                x_hat = x_hat.detach()
                u8 = metrics.to_uint8(x_hat.cpu())
                batch_out[m.label] = u8.numpy()
                with torch.no_grad():
                    cons = metrics.consistency(op, x_hat, y).tolist()
                    # on the uint8 images: already quantised, so no second quantisation
                    psnr = metrics.psnr(to_unit_range(u8, torch.float64), gt, quantize=False).tolist()
                    ssim = metrics.ssim(to_unit_range(u8, torch.float64), gt, quantize=False).tolist()
                for j, i in enumerate(idx):
                    batch_rows.append(
                        {
                            "index": i,
                            "name": names[pos[j]],
                            "method": m.label,
                            "psnr": float(psnr[j]),
                            "ssim": float(ssim[j]),
                            "consistency": float(cons[j]),
                            "seconds": seconds,
                            "nfe": nfe,
                            "recipe_seed": None if recipe is None else image_seed(seed, i, "recipe"),
                        }
                    )
                bar.update(len(idx))
            for label, u8 in batch_out.items():
                outputs[label][lo : lo + len(idx)] = u8
            rows += batch_rows
            if on_batch is not None:
                on_batch(Batch(lo, idx, batch_rows, batch_out))
    finally:
        bar.close()
    order = {m.label: k for k, m in enumerate(methods)}
    rows.sort(key=lambda r: (order[r["method"]], r["index"]))
    ex = {k: torch.cat(v) if v else torch.empty(0) for k, v in examples.items()}
    ex["index"] = torch.tensor(example_index, dtype=torch.long)
    return rows, outputs, ex


def merge_results(parts: Sequence[EvalResult]) -> EvalResult:
    """Join the shards of one evaluation (:func:`evaluate` with ``shard=``) into the full result.

    The rows, images and examples are put back in index order and the per-method and set-level
    metrics (FID) are computed over the whole set: the same result as a single process.

    Raises:
        InvalidInputError: no shards, shards of different configurations, or not each image once.
    """
    if not parts:
        raise InvalidInputError("merge_results needs at least one shard")
    first = parts[0]

    def same(cfg: EvalConfig) -> EvalConfig:
        return attrs.evolve(cfg, device="-")  # each process may run on its own GPU

    if any(same(p.config) != same(first.config) for p in parts):
        raise InvalidInputError("the shards come from different evaluation configurations")
    index = np.concatenate([np.asarray(p.indices, dtype=np.int64) for p in parts])
    if len(set(index.tolist())) != len(index) or len(index) != first.config.n:
        raise InvalidInputError(f"the shards hold images {sorted(index.tolist())[:8]}..., not each of the n = {first.config.n} once")
    order = np.argsort(index, kind="stable")
    labels = list(first.outputs_u8)
    method_pos = {label: k for k, label in enumerate(labels)}
    ex_index = torch.cat([p.examples["index"] for p in parts])
    ex_order = torch.argsort(ex_index, stable=True)
    examples = {"index": ex_index[ex_order]}
    for k in ("x", "y", "pinv"):
        shown = [p.examples[k] for p in parts if p.examples["index"].numel()]
        examples[k] = torch.cat(shown)[ex_order] if shown else torch.empty(0)
    names = [n for p in parts for n in p.names]
    merged = attrs.evolve(
        first,
        indices=index[order].tolist(),
        names=[names[k] for k in order],
        rows=sorted((r for p in parts for r in p.rows), key=lambda r: (method_pos[r["method"]], r["index"])),
        aggregates={},
        fid_floor=None,
        notes=[],
        environment={**first.environment, "world_size": len(parts)},
        wall_seconds=max(p.wall_seconds for p in parts),
        gt_u8=np.concatenate([p.gt_u8 for p in parts])[order],
        outputs_u8={label: np.concatenate([p.outputs_u8[label] for p in parts])[order] for label in labels},
        examples=examples,
    )
    summarise(merged, set_level=True)
    return merged
