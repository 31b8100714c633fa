r"""Evaluating recipes on a dataset: the library behind ``invkit eval`` and ``invkit demo``.

An evaluation restores ``n`` images of a dataset under one :class:`Task` (a registered operator,
plus measurement noise) with a list of methods — registered recipe presets, or the baselines
``input`` (A⁺y) and ``y`` that make no network call — and reports

- per image and method: PSNR and SSIM (:mod:`invkit.metrics`) between the restoration quantised
  as SSD saved it (x·0.5 + 0.5, ×255, clip, **truncate**: ``tensor2img``) and the ground
  truth's own uint8 pixels (:func:`ground_truth_uint8`), the consistency ‖A x̂ − y‖₂ of the
  float output, the seconds per image (batch time / batch size) and the number of network calls
  the recipe really made;
- per method over the set: the means, and the Fréchet distance between the restorations' and the
  ground truth's features (``invkit.metrics.fid_fashion``, the Fashion-MNIST classifier shipped
  with fashion32), next to its floor (n training images vs the n ground-truth images). LPIPS
  (``lpips``, VGG) and the Inception FID (``pytorch_fid``) run only when their packages and
  weights are already on the machine; otherwise the output notes they were skipped. Nothing is
  downloaded.

Reproducibility: image ``i`` draws every random number from its own generators, seeded by
:func:`image_seed` ``(seed, i, stream)``, so a result does not depend on the batch size, on
``--offset``/``--n`` or on which other methods run: any subset reproduces the same per-image
numbers (up to the last bits of batched float arithmetic). Every method restoring image ``i``
starts from the same seed (common random numbers).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs
import numpy as np
import torch

from .errors import ConfigError, InvalidInputError, InvkitError, UnknownNameError
from .noise import JPEG, Gaussian, Measurement, NoNoise, Noise, UniformGaussian
from .operator import Operator

__all__ = [
    "BASELINES",
    "STREAMS",
    "TASKS",
    "Task",
    "Method",
    "EvalConfig",
    "EvalResult",
    "image_seed",
    "image_generators",
    "get_task",
    "parse_method",
    "make_noise",
    "load_images",
    "load_backbone",
    "evaluate",
    "ground_truth_uint8",
    "merge_results",
    "write_outputs",
    "markdown_table",
    "paired_difference",
    "paired_table",
    "image_grid",
    "plot_lines",
    "SWEEP_FAMILIES",
    "SWEEP_NFES",
    "sweep_steps",
    "sweep_methods",
    "sweep_summary",
    "write_sweep",
]

# ---------------------------------------------------------------------------------------------
# per-image seeds

#: the independent random streams of one image
STREAMS = ("operator", "noise", "recipe")


def image_seed(seed: int, index: int, stream: str) -> int:
    r"""The 63-bit seed of image ``index``'s random ``stream`` in an evaluation seeded ``seed``.

    ``numpy.random.SeedSequence(entropy=seed, spawn_key=(index, k))`` with ``k`` the stream's
    position in :data:`STREAMS`: ``operator`` (a mask or box position, always drawn on the CPU so
    masks do not depend on the device), ``noise`` (the measurement noise) and ``recipe`` (the
    sampler's draws). It depends on nothing else, so any subset of an evaluation reproduces.
    """
    if stream not in STREAMS:
        raise ConfigError(f"unknown random stream {stream!r}; use one of {', '.join(STREAMS)}")
    if int(seed) < 0 or int(index) < 0:
        raise ConfigError(f"seed and image index must be >= 0, got seed={seed}, index={index}")
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index), STREAMS.index(stream)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def image_generators(seed: int, indices: Sequence[int], stream: str, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One :class:`torch.Generator` per image, seeded with :func:`image_seed`."""
    return [torch.Generator(device=device).manual_seed(image_seed(seed, i, stream)) for i in indices]


# ---------------------------------------------------------------------------------------------
# tasks


def _one_of(*options: Any):
    def check(instance, attribute, value):  # noqa: ANN001 - attrs validator signature
        if value not in options:
            raise ConfigError(f"{attribute.name} must be one of {', '.join(map(repr, options))}, got {value!r}")

    return check


@attrs.frozen
class Task:
    """An evaluation task: a registered operator with fixed parameters (and a mask per image).

    ``engine_task`` is the task name the recipe presets take (``sr``, ``deblur``, ``inpainting``,
    ``colorization``, ``denoise``). ``mask``: ``"box"`` hides a box of half the image's height and
    width at a top-left corner drawn uniformly per image; ``"random"`` keeps each pixel with
    probability ½ (SSD's ``random_point``). ``default_sigma`` is the Gaussian noise (σ in [-1, 1]
    units) used when the caller gives no noise.
    """

    name: str
    operator: str
    engine_task: str
    params: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    mask: str | None = attrs.field(default=None, validator=_one_of(None, "box", "random"))
    rgb: bool = False
    default_sigma: float = 0.0
    #: the operator takes the image's channel count as ``channels=`` (the DDRM deblur operator)
    pass_channels: bool = False
    description: str = ""

    def masks(self, shape: tuple[int, ...], generators: Sequence[torch.Generator]) -> torch.Tensor:
        """The ``(B, 1, H, W)`` binary masks (1 = observed) of a batch, one per generator."""
        H, W = shape[-2], shape[-1]
        out = torch.ones((len(generators), 1, H, W))
        for b, g in enumerate(generators):
            if self.mask == "box":
                h, w = max(1, H // 2), max(1, W // 2)
                top = int(torch.randint(0, H - h + 1, (1,), generator=g))
                left = int(torch.randint(0, W - w + 1, (1,), generator=g))
                out[b, 0, top : top + h, left : left + w] = 0
            else:
                out[b, 0] = (torch.rand((H, W), generator=g) < 0.5).float()
        return out

    def build(self, shape: tuple[int, ...], generators: Sequence[torch.Generator] | None = None) -> Operator:
        """The operator for a batch of images of per-sample ``shape`` (C, H, W).

        Masked tasks draw one mask per image from ``generators`` (CPU, one per image).
        """
        from .plugins import operators_registry

        if self.rgb and shape[0] != 3:
            raise ConfigError(f"task {self.name!r} needs RGB images (3 channels), got {shape[0]} channel(s)")
        params = dict(self.params)
        if self.pass_channels:
            params["channels"] = int(shape[0])
        if self.mask is not None:
            if generators is None:
                raise ConfigError(f"task {self.name!r} draws a mask per image: pass one generator per image")
            params["mask"] = self.masks(shape, generators)
        return operators_registry.build(self.operator, **params)


#: Tasks for 32×32 images (any size the operator allows works; the box is half of each side).
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("sr2", "sr_bicubic", "sr", {"scale": 2}, description="×2 MATLAB-style antialiased bicubic down-sampling (32 → 16 px)"),
        Task("sr4", "sr_bicubic", "sr", {"scale": 4}, description="×4 MATLAB-style antialiased bicubic down-sampling (32 → 8 px)"),
        Task("sr8", "sr_bicubic", "sr", {"scale": 8}, description="×8 bicubic down-sampling (the paper's SR×8 at 256 px; 32 → 4 px)"),
        Task("sr8-avgpool", "sr_avgpool", "sr", {"scale": 8}, description="×8 average pooling (the paper's SSD+ Table 2 at 256 px)"),
        Task("inpaint-box", "inpainting", "inpainting", mask="box",
             description="a box of half the height and width (16×16 on 32 px) hidden at a position drawn per image"),
        Task("inpaint-random", "inpainting", "inpainting", mask="random",
             description="each pixel kept with probability 1/2, drawn per image"),
        Task("deblur", "deblur_gauss", "deblur", {"kernel_size": 9, "sigma": 1.5},
             description="true separable Gaussian blur, sigma 1.5 px, 9 taps (±2.7 sigma), zero boundary"),
        Task("deblur-ddrm", "deblur_gauss_ddrm", "deblur", {"kernel_size": 9, "sigma": 15.0}, pass_channels=True,
             description="the DDRM/DDNM/SSD 'deblur_gauss' operator (9 taps, sigma 15, its quirks); for published rows"),
        Task("denoise", "denoise", "denoise", default_sigma=0.2,
             description="identity plus Gaussian noise (sigma 0.2 in [-1, 1] units unless --noise-sigma)"),
        Task("colorization", "colorization", "colorization", rgb=True,
             description="RGB to grey with weights (0.3333, 0.3334, 0.3333); RGB data only"),
    )
}  # fmt: skip


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``, or an :class:`UnknownNameError` listing the tasks."""
    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(str(name), list(TASKS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown task {name!r}.{hint} Tasks: {', '.join(TASKS)}")
    return TASKS[name]


def make_noise(task: Task, sigma: float | None = None, jpeg: int | None = None, sigma_max: float | None = None) -> Noise:
    """The measurement noise: Gaussian σ, Gaussian with σ ~ U[0, σ_max] per image (SSD+'s
    protocol; both in [-1, 1] units), JPEG quality, or the task's default."""
    if sum(v is not None for v in (sigma, jpeg, sigma_max)) > 1:
        raise ConfigError("give at most one noise: a Gaussian sigma, a uniform sigma_max or a JPEG quality")
    if jpeg is not None:
        return JPEG(int(jpeg))
    if sigma_max is not None:
        return UniformGaussian(float(sigma_max))
    if sigma is None:
        sigma = task.default_sigma
    return Gaussian(float(sigma)) if sigma > 0 else NoNoise()


# ---------------------------------------------------------------------------------------------
# methods


#: the methods that make no network call: x̂ = A⁺y, or x̂ = y
BASELINES = ("input", "y")


@attrs.frozen
class Method:
    """A method to evaluate: a registered recipe preset with overrides, or a baseline with no
    network call: ``input`` (x̂ = A⁺y) or ``y`` (x̂ = y, for operators whose y has the image's
    shape: the paper's "NFE 0" deblurring row).

    Written ``name`` or ``name:key=value,key=value`` (values are Python literals), e.g.
    ``ssd-30``, ``ssd:inversion_steps=3,generation_steps=17``, ``ddrm-30:eta=0.5``.
    """

    label: str
    name: str
    overrides: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def is_baseline(self) -> bool:
        return self.name in BASELINES

    def build(self, task: Task, noise: Noise):
        """The :class:`~invkit.Recipe` for ``task`` (``None`` for a baseline).

        With Gaussian noise of known σ, a preset whose guidance has a ``sigma_y`` knob (DDNM+,
        DDRM) is told σ, unless the overrides set ``sigma_y`` themselves.
        """
        if self.is_baseline:
            if self.overrides:
                raise ConfigError(f"the {self.name!r} baseline takes no options")
            return None
        from .plugins import recipes_registry

        spec = recipes_registry.get(self.name)
        recipe = spec.build("recipe", task=task.engine_task, **self.overrides)
        sigma = getattr(noise, "sigma", None)
        if sigma and "sigma_y" not in self.overrides and hasattr(recipe.guidance, "sigma_y"):
            recipe = spec.build("recipe", task=task.engine_task, **self.overrides, sigma_y=float(sigma))
        return recipe


def parse_method(text: str) -> Method:
    """Parse ``name`` or ``name:key=value,...`` into a :class:`Method` (see its doc)."""
    text = text.strip()
    name, _, opts = text.partition(":")
    if not name:
        raise ConfigError(f"empty method name in {text!r}; write e.g. 'ssd-30' or 'ssd:generation_steps=20'")
    overrides: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in opts.split(","))):
        key, eq, raw = part.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ConfigError(f"bad option {part!r} in method {text!r}; write key=value, e.g. 'ddrm-30:eta=0.5'")
        overrides[key.strip()] = _literal(raw.strip())
    return Method(text, name, overrides)


def _literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


# ---------------------------------------------------------------------------------------------
# data and backbone

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
FASHION_DATASETS = {"fashion-test": "test", "fashion-train": "train"}


def load_images(dataset: str, *, n: int, offset: int = 0, channels: int | None = None, size: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Images ``offset .. offset + n − 1`` of ``dataset`` in [-1, 1] (float32) and their names.

    ``dataset`` is ``fashion-test`` / ``fashion-train`` (Fashion-MNIST padded to 32×32) or a
    folder of PNG/JPEG files (sorted by name; converted to ``channels`` and resized to ``size``).
    """
    from . import data

    if dataset in FASHION_DATASETS:
        split = FASHION_DATASETS[dataset]
        x, _ = data.fashion_mnist(split, limit=offset + n)
        names = [f"{dataset}-{i:05d}" for i in range(offset, min(offset + n, x.shape[0]))]
        total = x.shape[0]
    else:
        folder = Path(dataset)
        if not folder.is_dir():
            raise UnknownNameError(
                f"dataset {dataset!r} is neither {' nor '.join(FASHION_DATASETS)} nor an existing folder of images"
            )
        x, files = data.load_image_folder(folder, size=size, channels=channels or 3, limit=offset + n)
        names, total = files[offset:], x.shape[0]
    if total < offset + n:
        raise InvalidInputError(f"dataset {dataset!r} has {total} images, fewer than offset + n = {offset + n}")
    return x[offset : offset + n], names


def load_backbone(name: str, *, checkpoint: str | None = None, device: str = "cpu", dtype: str = "float32", options: Mapping[str, Any] | None = None):
    """Build the registered backbone ``name`` on ``device`` (``dtype``: its weights or autocast)."""
    from .plugins import backbones_registry

    params = dict(options or {})
    if checkpoint is not None:
        params["checkpoint"] = checkpoint
    params.setdefault("device", device)
    params.setdefault("dtype", _DTYPES[dtype])
    model = backbones_registry.build(name, **params)
    return model.eval()


def _data_dtype(dtype: str) -> torch.dtype:
    # half-precision backbones run under autocast; images and recipes stay float32
    return torch.float64 if dtype == "float64" else torch.float32


# ---------------------------------------------------------------------------------------------
# the evaluation


def _nonneg_int(instance, attribute, value):  # noqa: ANN001 - attrs validator signature
    if not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attribute.name} must be an integer >= 0, got {value!r}")


def _pos_int(instance, attribute, value):  # noqa: ANN001
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name} must be an integer >= 1, got {value!r}")


@attrs.frozen
class EvalConfig:
    """Every knob of an evaluation (recorded verbatim in ``results.json``)."""

    task: str = "sr4"
    methods: tuple[str, ...] = attrs.field(default=("input", "ssd-30", "ddnm-30", "ddrm-30"), converter=tuple)
    backbone: str = "fashion32"
    checkpoint: str | None = None
    backbone_options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    dataset: str = "fashion-test"
    n: int = attrs.field(default=100, validator=_pos_int)
    offset: int = attrs.field(default=0, validator=_nonneg_int)
    seed: int = attrs.field(default=0, validator=_nonneg_int)
    batch_size: int = attrs.field(default=16, validator=_pos_int)
    device: str = "cpu"
    dtype: str = attrs.field(default="float32", validator=_one_of(*_DTYPES))
    noise_sigma: float | None = attrs.field(default=None)
    noise_jpeg: int | None = None
    noise_sigma_max: float | None = attrs.field(default=None)
    grid: int = attrs.field(default=8, validator=_nonneg_int)

    @methods.validator
    def _check_methods(self, attribute, value):  # noqa: ANN001
        if not value:
            raise ConfigError("give at least one method (a recipe preset name or 'input')")
        labels = [parse_method(m).label for m in value]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"methods are listed twice: {', '.join(sorted({m for m in labels if labels.count(m) > 1}))}")

    @noise_sigma.validator
    @noise_sigma_max.validator
    def _check_sigma(self, attribute, value):  # noqa: ANN001
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{attribute.name} must be a finite number >= 0 ([-1, 1] units), got {value!r}")


@attrs.define
class EvalResult:
    """What :func:`evaluate` measured; :func:`write_outputs` turns it into files."""

    config: EvalConfig
    task: Task
    noise: Noise
    methods: list[dict[str, Any]]
    #: the image indices (offset + position) restored, in order; ``names``, ``gt_u8`` and
    #: ``outputs_u8`` follow it
    indices: list[int]
    names: list[str]
    rows: list[dict[str, Any]]
    aggregates: dict[str, dict[str, Any]]
    fid_floor: float | None
    notes: list[str]
    environment: dict[str, Any]
    wall_seconds: float
    #: uint8 ``(n, C, H, W)`` ground truth and restorations per method label (what was measured)
    gt_u8: np.ndarray = attrs.field(repr=False)
    outputs_u8: dict[str, np.ndarray] = attrs.field(repr=False)
    #: float tensors ``x``, ``y``, ``pinv`` of the first ``grid`` images, and their ``index``
    examples: dict[str, torch.Tensor] = attrs.field(repr=False)


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
) -> EvalResult:
    """Run the evaluation ``cfg`` (see the module doc); ``model``/``images`` may be given directly.

    ``images`` (float, [-1, 1], ``(N, C, H, W)``) replaces ``cfg.dataset``; ``offset`` then
    only numbers the images (their seeds), so passing ``images[k:]`` with ``offset=k``
    reproduces the per-image numbers of a run over ``images``.

    ``shard = (rank, world)`` restores only the images at positions ``rank, rank + world, …``
    (what each process does under ``torchrun``). A shard's result has per-method means of its
    own rows but no set-level metrics (FID); :func:`merge_results` joins the shards into the
    result a single process would have produced.
    """
    start = time.perf_counter()
    rank, world = shard if shard is not None else (0, 1)
    if not (isinstance(world, int) and isinstance(rank, int) and 0 <= rank < world):
        raise ConfigError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
    task = get_task(cfg.task)
    noise = make_noise(task, cfg.noise_sigma, cfg.noise_jpeg, cfg.noise_sigma_max)
    methods = [parse_method(m) for m in cfg.methods]
    recipes = [m.build(task, noise) for m in methods]  # fail on a bad name before any work
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {cfg.device!r} asked for but CUDA is not available; use --device cpu")
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
    if "y" in [m.name for m in methods]:
        y_shape = tuple(probe.A(torch.zeros((1, *x_all.shape[1:]))).shape[1:])
        if y_shape != tuple(x_all.shape[1:]):
            raise ConfigError(f"the 'y' baseline needs y shaped like the image; task {task.name!r} gives y of shape {y_shape}")

    positions = list(range(rank, cfg.n, world))
    gt_u8 = ground_truth_uint8(x_all[positions])
    rows, outputs, examples = _restore(cfg, task, noise, methods, recipes, model, x_all, gt_u8, names, positions, device, progress)

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
    _summarise(result, set_level=shard is None)
    result.wall_seconds = time.perf_counter() - start
    return result


def ground_truth_uint8(x: torch.Tensor) -> torch.Tensor:
    """The ground truth's own uint8 pixels: ``round((x + 1)·127.5)``.

    Dataset images are ``2u/255 − 1`` of their file's pixels ``u``; rounding recovers ``u``
    exactly, whereas truncation (how SSD saves *restorations*) turns ``u`` into ``u − 1`` for
    about one value in five through float round-off. Metrics compare the truncated restoration
    with these pixels, as the paper compared saved PNGs with the dataset's files.
    """
    return ((x.detach().cpu().double() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _restore(cfg, task, noise, methods, recipes, model, x_all, gt_u8, names, positions, device, progress):  # noqa: ANN001
    """Restore the images at ``positions`` with every method: rows, uint8 outputs, grid examples."""
    from tqdm.auto import tqdm

    from . import metrics
    from .data import to_unit_range

    dtype = _data_dtype(cfg.dtype)
    rows: list[dict[str, Any]] = []
    outputs = {m.label: np.empty((len(positions), *x_all.shape[1:]), dtype=np.uint8) for m in methods}
    examples: dict[str, list[torch.Tensor]] = {"x": [], "y": [], "pinv": []}
    example_index: list[int] = []
    bar = tqdm(total=len(positions) * len(methods), unit="img", desc=f"eval {cfg.task}", disable=not progress, dynamic_ncols=True)
    try:
        for lo in range(0, len(positions), cfg.batch_size):
            pos = positions[lo : lo + cfg.batch_size]
            idx = [cfg.offset + p for p in pos]
            x = x_all[pos].to(device=device, dtype=dtype)
            gt = to_unit_range(gt_u8[lo : lo + len(pos)], torch.float64)
            op = task.build(tuple(x.shape[1:]), image_generators(cfg.seed, idx, "operator")).to(device=device, dtype=dtype)
            y = Measurement(op, noise).sample(x, generator=image_generators(cfg.seed, idx, "noise", device))
            keep = [j for j, p in enumerate(pos) if p < cfg.grid]
            if keep:  # per-sample operators (masks) take the whole batch
                with torch.no_grad():
                    examples["pinv"].append(op.pinv(y)[keep].cpu())
                examples["x"].append(x[keep].cpu())
                examples["y"].append(y[keep].cpu())
                example_index += [idx[j] for j in keep]
            for m, recipe in zip(methods, recipes):
                bar.set_postfix_str(m.label)
                _sync(device)
                t = time.perf_counter()
                if recipe is None:
                    with torch.no_grad():
                        x_hat = y.clone() if m.name == "y" else op.pinv(y)
                    nfe = 0
                else:
                    res = recipe.run(model, y, op, generator=image_generators(cfg.seed, idx, "recipe", device), return_info=True)
                    x_hat, nfe = res.x, int(res.nfe)
                _sync(device)
                seconds = (time.perf_counter() - t) / len(idx)
                x_hat = x_hat.detach()
                u8 = metrics.to_uint8(x_hat.cpu())
                outputs[m.label][lo : lo + len(idx)] = u8.numpy()
                with torch.no_grad():
                    cons = metrics.consistency(op, x_hat, y).tolist()
                    # on the uint8 images: already quantised, so no second quantisation
                    psnr = metrics.psnr(to_unit_range(u8, torch.float64), gt, quantize=False).tolist()
                    ssim = metrics.ssim(to_unit_range(u8, torch.float64), gt, quantize=False).tolist()
                for j, i in enumerate(idx):
                    rows.append(
                        {
                            "index": i,
                            "name": names[pos[j]],
                            "method": m.label,
                            "psnr": float(psnr[j]),
                            "ssim": float(ssim[j]),
                            "consistency": float(cons[j]),
                            "seconds": seconds,
                            "nfe": nfe,
                            "recipe_seed": None if recipe is None else image_seed(cfg.seed, i, "recipe"),
                        }
                    )
                bar.update(len(idx))
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
    _summarise(merged, set_level=True)
    return merged


def _summarise(result: EvalResult, *, set_level: bool) -> None:
    """Per-method means of the rows; with ``set_level``, FID (and the optional LPIPS/Inception FID)."""
    result.aggregates = {m["label"]: _aggregate([r for r in result.rows if r["method"] == m["label"]]) for m in result.methods}
    result.notes = []
    if set_level:
        result.fid_floor = _fid_columns(result.config, result.gt_u8, result.outputs_u8, result.aggregates, result.notes)
        _optional_metrics(result.gt_u8, result.outputs_u8, result.aggregates, result.notes)
    else:
        result.notes.append("a shard: set-level metrics (FID) are computed by merge_results over all shards")


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
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


def _fid_columns(cfg: EvalConfig, gt_u8: np.ndarray, outputs: dict[str, np.ndarray], aggregates: dict, notes: list[str]) -> float | None:
    """``fid_fashion`` of every method against the ground truth, and its train-vs-test floor."""
    from . import metrics
    from .data import to_unit_range

    if tuple(gt_u8.shape[1:]) != (1, 32, 32):
        notes.append(f"fid_fashion skipped: it needs 1×32×32 images (Fashion-MNIST-like), these are {'×'.join(map(str, gt_u8.shape[1:]))}")
        return None
    if gt_u8.shape[0] < 2:
        notes.append("fid_fashion skipped: it needs at least 2 images")
        return None
    try:
        # fid_fashion(a, b) with the classifier loaded and the ground truth's features taken once
        net = metrics.load_fashion_classifier()
        ref = metrics.fashion_features(to_unit_range(gt_u8), net)
        for label, u8 in outputs.items():
            aggregates[label]["fid_fashion"] = metrics.fid_from_features(metrics.fashion_features(to_unit_range(u8), net), ref)
        floor = None
        if cfg.dataset in FASHION_DATASETS:
            from .data import fashion_mnist

            other, _ = fashion_mnist("train" if cfg.dataset == "fashion-test" else "test", limit=gt_u8.shape[0])
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


#: weights that LPIPS-VGG and the pytorch-fid Inception load from the torch hub cache
LPIPS_VGG_WEIGHTS = "vgg16-397923af.pth"
INCEPTION_FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"


def _optional_metrics(gt_u8: np.ndarray, outputs: dict[str, np.ndarray], aggregates: dict, notes: list[str]) -> None:
    """LPIPS (VGG, as SSD) and the Inception FID, only when packages and weights are local."""
    import importlib.util

    from .data import to_unit_range

    def rgb(u8: np.ndarray) -> torch.Tensor:
        x = to_unit_range(u8)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    gt = rgb(gt_u8)
    if importlib.util.find_spec("lpips") is None:
        notes.append("LPIPS skipped: install the 'lpips' package (0.1.4) to compute it")
    elif not _torch_hub_file(LPIPS_VGG_WEIGHTS).is_file():
        notes.append(f"LPIPS skipped: the VGG-16 weights {LPIPS_VGG_WEIGHTS} are not in {_torch_hub_file(LPIPS_VGG_WEIGHTS).parent}; nothing is downloaded")
    else:
        try:
            import lpips

            net = lpips.LPIPS(net="vgg", verbose=False).eval()
            with torch.no_grad():
                for label, u8 in outputs.items():
                    d = torch.cat([net(rgb(u8[i : i + 16]), gt[i : i + 16]).flatten() for i in range(0, len(u8), 16)])
                    aggregates[label]["lpips"] = float(d.mean())
        except Exception as exc:  # an optional extra must not sink a finished evaluation
            notes.append(f"LPIPS failed: {type(exc).__name__}: {exc}")
    if importlib.util.find_spec("pytorch_fid") is None:
        notes.append("Inception FID skipped: install 'pytorch-fid' to compute it")
    elif not _torch_hub_file(INCEPTION_FID_WEIGHTS).is_file():
        notes.append(f"Inception FID skipped: {INCEPTION_FID_WEIGHTS} is not in {_torch_hub_file(INCEPTION_FID_WEIGHTS).parent}; nothing is downloaded")
    elif len(gt) < 2:
        notes.append("Inception FID skipped: it needs at least 2 images")
    else:
        try:
            from pytorch_fid.inception import InceptionV3

            from .metrics import fid_from_features

            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

            def feats(x: torch.Tensor) -> np.ndarray:
                with torch.no_grad():  # pytorch-fid takes [0, 1] and resizes bilinearly to 299 itself
                    return torch.cat([net((x[i : i + 32] + 1) / 2)[0].flatten(1) for i in range(0, len(x), 32)]).double().numpy()

            ref = feats(gt)
            for label, u8 in outputs.items():
                aggregates[label]["fid_inception"] = float(fid_from_features(feats(rgb(u8)), ref))
        except Exception as exc:  # an optional extra must not sink a finished evaluation
            notes.append(f"Inception FID failed: {type(exc).__name__}: {exc}")


def environment(device: torch.device, model=None) -> dict[str, Any]:
    """Versions and machine facts recorded with every result."""
    from . import __version__
    from .plugins import plugin_names

    env = {
        "invkit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "plugins": plugin_names(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    if model is not None:
        env["backbone_class"] = type(model).__name__
        env["backbone_parameters"] = int(sum(p.numel() for p in model.parameters()))
    return env


# ---------------------------------------------------------------------------------------------
# outputs


def _fmt(value: Any, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(result: EvalResult, compare: Sequence[tuple[str, str]] = ()) -> str:
    """The results as a Markdown table laid out like SSD's Table 1 (method | PSNR | SSIM | FID | …).

    ``compare`` adds the :func:`paired_table` of those ``(a, b)`` method pairs.
    """
    cfg = result.config
    lpips_col = any("lpips" in a for a in result.aggregates.values())
    incep_col = any("fid_inception" in a for a in result.aggregates.values())
    head = ["method", "PSNR↑", "SSIM↑", "FID↓"] + (["LPIPS↓"] if lpips_col else []) + (["FID-Inception↓"] if incep_col else [])
    head += ["consistency ‖Ax̂−y‖", "NFE", "s/img"]
    lines = [
        f"Task `{cfg.task}` ({result.task.description}); noise: {_noise_text(result.noise)}; "
        f"dataset `{cfg.dataset}` images {cfg.offset}..{cfg.offset + cfg.n - 1} (n = {cfg.n}); backbone `{cfg.backbone}`; "
        f"seed {cfg.seed}; batch {cfg.batch_size}; device {result.environment['device']}, {cfg.dtype}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for label, a in result.aggregates.items():
        cells = [label, _fmt(a["psnr"], 2), _fmt(a["ssim"], 4), _fmt(a.get("fid_fashion"), 2)]
        cells += [_fmt(a.get("lpips"), 3)] if lpips_col else []
        cells += [_fmt(a.get("fid_inception"), 2)] if incep_col else []
        nfe = a["nfe"]
        cells += [f"{a['consistency']:.2e}", str(nfe) if isinstance(nfe, int) else f"{nfe:.1f}", f"{a['seconds_per_image']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if result.fid_floor is not None:
        lines.append(
            f"FID is `fid_fashion` against the n ground-truth images. Reference: n training images against them give "
            f"{result.fid_floor:.2f} (the FID of an independent real sample of the same size; restorations, matched "
            f"to their ground truth, can come below it)."
        )
    lines.append("PSNR/SSIM on uint8-truncated images; NFE = network calls really made; s/img = batch time / batch size.")
    lines += [f"Note: {note}" for note in result.notes]
    if compare:
        lines += ["", "Paired per-image differences (same images, same measurements):", "", paired_table(result.rows, compare).rstrip("\n")]
    return "\n".join(lines) + "\n"


def paired_difference(rows: Sequence[Mapping[str, Any]], a: str, b: str, metric: str = "psnr") -> dict[str, Any]:
    """Per-image difference ``a − b`` of ``metric`` over the images both methods restored.

    ``rows`` are per-image rows (:attr:`EvalResult.rows` or ``results.json``'s ``"rows"``). Every
    method restores image i from the same measurement, so the paired difference removes the
    image-to-image spread that dominates a difference of means. Returns ``mean``, ``ci95`` (the
    half-width 1.96·sd/√n of a normal interval for the mean), ``n`` and ``a_better`` (the
    fraction of images where ``a`` scores higher).
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


def paired_table(rows: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[str, str]], metrics: Sequence[str] = ("psnr", "ssim")) -> str:
    """Markdown table of :func:`paired_difference` for each ``(a, b)`` pair and metric."""
    lines = ["| a − b | metric | mean difference | 95% CI | a better on | n |", "|---|---|---|---|---|---|"]
    for a, b in pairs:
        for metric in metrics:
            r = paired_difference(rows, a, b, metric)
            digits = 2 if metric == "psnr" else 4
            lines.append(
                f"| {a} − {b} | {metric} | {r['mean']:+.{digits}f} | ±{r['ci95']:.{digits}f} | {100 * r['a_better']:.0f}% | {r['n']} |"
            )
    return "\n".join(lines) + "\n"


def _noise_text(noise: Noise) -> str:
    if isinstance(noise, NoNoise):
        return "none"
    if isinstance(noise, Gaussian):
        return f"Gaussian sigma {noise.sigma:g} ([-1, 1] units)"
    if isinstance(noise, JPEG):
        return f"JPEG quality {noise.quality}"
    if isinstance(noise, UniformGaussian):
        return f"Gaussian, sigma ~ U[0, {noise.sigma_max:g}] per image ([-1, 1] units)"
    return repr(noise)


def _to_pil_tile(x: torch.Tensor | None, h: int, w: int, scale: int):
    from PIL import Image

    from . import metrics

    if x is None:
        return Image.new("RGB", (w * scale, h * scale), (200, 200, 200))
    u8 = x.numpy() if x.dtype == torch.uint8 else metrics.to_uint8(x.detach().cpu().float()).numpy()
    img = Image.fromarray(u8[0], "L").convert("RGB") if u8.shape[0] == 1 else Image.fromarray(u8.transpose(1, 2, 0), "RGB")
    return img.resize((w * scale, h * scale), Image.NEAREST)


def display_measurement(y: torch.Tensor, shape: Sequence[int]) -> torch.Tensor | None:
    """``y`` shown at its own resolution, upscaled with nearest neighbour to the image ``shape``.

    Greyscale measurements of RGB images are repeated over the channels; a measurement that is
    not an image of a size dividing the image's gives ``None`` (shown as a blank tile).
    """
    C, H, W = shape[-3:]
    if y.ndim != 4 or y.shape[1] not in (1, C) or H % y.shape[-2] or W % y.shape[-1]:
        return None
    y = y.repeat_interleave(H // y.shape[-2], dim=-2).repeat_interleave(W // y.shape[-1], dim=-1)
    return y.expand(-1, C, -1, -1) if y.shape[1] != C else y


def image_grid(columns: Sequence[tuple[str, torch.Tensor | None]], *, captions: Mapping[str, Sequence[str]] | None = None, min_tile: int = 96):
    """A labelled grid (PIL image): one column per ``(title, images (N, C, H, W))``.

    Float images in [-1, 1] are quantised like restorations (truncation), uint8 images are shown
    as they are; tiles are magnified by an integer factor with nearest neighbour so they are at
    least ``min_tile`` pixels; ``None`` gives blank tiles. ``captions[title][i]`` is written
    under the tile of image ``i``.
    """
    from PIL import Image, ImageDraw, ImageFont

    ref = next((t for _, t in columns if t is not None), None)
    if ref is None:
        raise InvalidInputError("image_grid needs at least one column of images")
    N, (H, W) = ref.shape[0], ref.shape[-2:]
    scale = max(1, math.ceil(min_tile / max(H, W)))
    tw, th, pad = W * scale, H * scale, 4
    font = ImageFont.load_default(size=12)
    titles = [_wrap(title, font, tw) for title, _ in columns]
    head, cap = 6 + 14 * max(len(t) for t in titles), 16 if captions else 0
    grid = Image.new("RGB", (len(columns) * (tw + pad) + pad, head + N * (th + cap + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for c, (title, imgs) in enumerate(columns):
        x0 = pad + c * (tw + pad)
        for k, line in enumerate(titles[c]):
            draw.text((x0 + tw / 2, 3 + 14 * k), line, fill="black", font=font, anchor="mt")
        for i in range(N):
            y0 = head + i * (th + cap + pad)
            grid.paste(_to_pil_tile(None if imgs is None else imgs[i], H, W, scale), (x0, y0))
            text = (captions or {}).get(title)
            if text is not None and i < len(text) and text[i]:
                draw.text((x0 + tw / 2, y0 + th + cap / 2), text[i], fill="black", font=font, anchor="mm")
    return grid


def _wrap(text: str, font, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels, broken after ``:,_=`` or spaces."""
    parts, word = [], ""
    for ch in text:
        word += ch
        if ch in ":,_= ":
            parts.append(word)
            word = ""
    parts.append(word)
    lines = [""]
    for part in filter(None, parts):
        if lines[-1] and font.getlength(lines[-1] + part) > width:
            lines.append("")
        lines[-1] += part
    return [line.strip() for line in lines]


def grid_columns(result: EvalResult) -> tuple[list[tuple[str, torch.Tensor | None]], dict[str, list[str]]]:
    """Columns ground truth | y | A⁺y | each method (not ``input``), and per-tile PSNR captions.

    (Titles are plain ASCII: Pillow's default font has no superscript plus.)
    """
    ex = result.examples
    shown = ex["index"].tolist()
    at = {i: k for k, i in enumerate(result.indices)}
    rows = [at[i] for i in shown]
    cols: list[tuple[str, torch.Tensor | None]] = [
        ("ground truth", torch.from_numpy(result.gt_u8[rows])),
        ("y", display_measurement(ex["y"], ex["x"].shape)),
        ("A+y", ex["pinv"]),
    ]
    psnr = {(r["method"], r["index"]): r["psnr"] for r in result.rows}
    captions = {"A+y": [f"{psnr[('input', i)]:.1f} dB" if ("input", i) in psnr else "" for i in shown]}
    for m in result.methods:
        if m["name"] == "input":
            continue
        cols.append((m["label"], torch.from_numpy(result.outputs_u8[m["label"]][rows])))
        captions[m["label"]] = [f"{psnr[(m['label'], i)]:.1f} dB" for i in shown]
    return cols, captions


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _config_dict(cfg: EvalConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v) for k, v in attrs.asdict(cfg, recurse=False).items()}


def results_dict(result: EvalResult) -> dict[str, Any]:
    """Everything of ``result`` that goes into ``results.json``."""
    t = result.task
    return {
        "format": "invkit-eval/1",
        "config": _config_dict(result.config),
        "task": {"name": t.name, "operator": t.operator, "params": dict(t.params), "mask": t.mask, "description": t.description},
        "noise": {"text": _noise_text(result.noise), "repr": repr(result.noise)},
        "methods": result.methods,
        "aggregates": result.aggregates,
        "fid_fashion_floor": result.fid_floor,
        "notes": result.notes,
        "environment": result.environment,
        "wall_seconds": result.wall_seconds,
        "rows": result.rows,
    }


def write_outputs(
    result: EvalResult,
    out: str | Path,
    *,
    save_images: bool = False,
    sweep: tuple[Sequence[str], Sequence[int]] | None = None,
    compare: Sequence[tuple[str, str]] = (),
    command: Any = None,
) -> list[Path]:
    """Write ``results.json``, ``table.md``, ``grid.png`` and last ``manifest.json`` to ``out``.

    ``save_images`` writes every quantised restoration as ``images/<method>/<name>.png`` (and the
    ground truth under ``images/gt``), for external metric tools. ``sweep = (families, nfes)``
    adds the files of :func:`write_sweep`; ``compare`` adds paired differences to ``table.md``.
    ``command`` is recorded in the manifest.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    path = out / "results.json"
    path.write_text(json.dumps(results_dict(result), indent=1, default=str) + "\n")
    written.append(path)
    path = out / "table.md"
    path.write_text(markdown_table(result, compare))
    written.append(path)
    if result.examples["index"].numel():
        cols, captions = grid_columns(result)
        path = out / "grid.png"
        image_grid(cols, captions=captions).save(path)
        written.append(path)
    if save_images:
        written += _save_images(result, out / "images")
    if sweep is not None:
        written += write_sweep(result, out, *sweep)
    written.append(_write_manifest(out, written, result.config, result.environment, command))
    return written


def _save_images(result: EvalResult, root: Path) -> list[Path]:
    from PIL import Image

    paths = []
    for label, u8 in [("gt", result.gt_u8), *result.outputs_u8.items()]:
        folder = root / label.replace("/", "_").replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for name, img in zip(result.names, u8):
            p = folder / f"{Path(name).stem}.png"
            (Image.fromarray(img[0], "L") if img.shape[0] == 1 else Image.fromarray(img.transpose(1, 2, 0), "RGB")).save(p)
            paths.append(p)
    return paths


def _write_manifest(out: Path, files: Sequence[Path], cfg: EvalConfig, env: dict, command: Any) -> Path:
    manifest = {
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": _config_dict(cfg),
        "environment": env,
        "files": [{"path": str(p.relative_to(out)), "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files],
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# FID vs NFE

SWEEP_FAMILIES = ("ssd", "ddnm", "ddrm")
SWEEP_NFES = (10, 20, 30, 50, 100)


def sweep_steps(family: str, nfe: int) -> dict[str, int]:
    r"""The step counts giving a family its nominal budget ``nfe``.

    SSD splits the budget as the paper's 30 = 5 + 25 and 100 = 15 + 85: ``F = max(2, ⌈0.15·nfe⌉)``
    inversion steps and ``B = nfe − F`` generation steps (it really calls the network F − 1 + B
    times). Every other family (DDNM, DDRM, ...) takes ``generation_steps = nfe``.
    """
    if not isinstance(nfe, int) or nfe < 2:
        raise ConfigError(f"an NFE budget must be an integer >= 2, got {nfe!r}")
    if family == "ssd":
        F = max(2, math.ceil(0.15 * nfe))
        return {"inversion_steps": F, "generation_steps": nfe - F}
    return {"generation_steps": nfe}


def sweep_methods(families: Sequence[str] = SWEEP_FAMILIES, nfes: Sequence[int] = SWEEP_NFES) -> list[str]:
    """Method strings (see :class:`Method`) of the sweep, family-major."""
    return [f"{fam}:" + ",".join(f"{k}={v}" for k, v in sweep_steps(fam, nfe).items()) for fam in families for nfe in nfes]


def sweep_summary(result: EvalResult, families: Sequence[str], nfes: Sequence[int]) -> list[dict[str, Any]]:
    """One row per (family, nominal NFE): real NFE, FID, PSNR, SSIM, s/img."""
    out = []
    for fam in families:
        for nfe in nfes:
            label = sweep_methods([fam], [nfe])[0]
            a = result.aggregates[label]
            out.append(
                {
                    "family": fam,
                    "nominal_nfe": nfe,
                    "steps": sweep_steps(fam, nfe),
                    "nfe": a["nfe"],
                    "fid_fashion": a.get("fid_fashion"),
                    "psnr": a["psnr"],
                    "ssim": a["ssim"],
                    "seconds_per_image": a["seconds_per_image"],
                }
            )
    return out


def write_sweep(result: EvalResult, out: str | Path, families: Sequence[str], nfes: Sequence[int]) -> list[Path]:
    """``nfe_sweep.json``, ``nfe_sweep.md`` and the plot ``fid_vs_nfe.png`` (FID against real NFE)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = sweep_summary(result, families, nfes)
    written = []
    path = out / "nfe_sweep.json"
    path.write_text(json.dumps({"rows": rows, "fid_fashion_floor": result.fid_floor, "notes": result.notes}, indent=1) + "\n")
    written.append(path)
    lines = ["| family | nominal NFE | steps | real NFE | FID↓ | PSNR↑ | SSIM↑ | s/img |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = ", ".join(f"{k}={v}" for k, v in r["steps"].items())
        lines.append(
            f"| {r['family']} | {r['nominal_nfe']} | {steps} | {r['nfe']} | {_fmt(r['fid_fashion'], 2)} | "
            f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds_per_image']:.3f} |"
        )
    if result.fid_floor is not None:
        lines.append(f"\nFID floor (train vs test, n = {result.config.n}): {result.fid_floor:.2f}")
    path = out / "nfe_sweep.md"
    path.write_text("\n".join(lines) + "\n")
    written.append(path)
    series = {
        fam: [(float(r["nfe"]), r["fid_fashion"]) for r in rows if r["family"] == fam and r["fid_fashion"] is not None]
        for fam in families
    }
    if any(series.values()):
        path = out / "fid_vs_nfe.png"
        hline = None if result.fid_floor is None else (result.fid_floor, "train-vs-test floor")
        cfg = result.config
        plot_lines(
            path,
            {k: v for k, v in series.items() if v},
            title=f"FID vs NFE: task {cfg.task}, {cfg.dataset}, n = {cfg.n}",
            xlabel="network calls (NFE)",
            ylabel="fid_fashion",
            hline=hline,
            logx=True,
            xticks=nfes,
        )
        written.append(path)
    return written


_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + k * step for k in range(int(math.ceil((hi - first) / step)) + 1)]


def plot_lines(
    path: str | Path,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    hline: tuple[float, str] | None = None,
    logx: bool = False,
    xticks: Sequence[float] | None = None,
    size: tuple[int, int] = (760, 500),
) -> Path:
    """A line plot with markers, axes, ticks and a legend, drawn with Pillow (no matplotlib).

    ``hline = (value, label)`` adds a dashed horizontal reference line (or, when it lies more
    than the data's span away from them, only its value in the legend). With ``logx`` the x axis
    is logarithmic. ``xticks`` default to the data's x values (log axis) or round numbers;
    ticks closer than 30 px to the previous one are left out.
    """
    from PIL import Image, ImageDraw, ImageFont

    pts = [p for s in series.values() for p in s]
    if not pts:
        raise InvalidInputError("plot_lines needs at least one point")
    W, H = size
    left, right, top, bottom = 70, 20, 40, 55
    font, small = ImageFont.load_default(size=15), ImageFont.load_default(size=12)
    xs = sorted({x for x, _ in pts})
    ys = [y for _, y in pts]
    span = max(ys) - min(ys) or abs(max(ys)) or 1.0
    if hline is not None and not (min(ys) - span <= hline[0] <= max(ys) + span):
        # a reference line far from the data would squash it: name its value instead
        hline, off_axis = None, f"{hline[1]}: {hline[0]:.4g} (off the axis)"
    else:
        off_axis = None
    ys += [hline[0]] if hline else []
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    x_lo, x_hi = fx(xs[0]), fx(xs[-1])
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    pad_x = 0.05 * (x_hi - x_lo)
    x_lo, x_hi = x_lo - pad_x, x_hi + pad_x
    margin = 0.05 * (max(ys) - min(ys))
    yticks = _nice_ticks(min(ys) - margin, max(ys) + margin)
    y_lo, y_hi = yticks[0], yticks[-1]

    def px(x: float) -> float:
        return left + (fx(x) - x_lo) / (x_hi - x_lo) * (W - left - right)

    def py(y: float) -> float:
        return H - bottom - (y - y_lo) / (y_hi - y_lo) * (H - top - bottom)

    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([left, top, W - right, H - bottom], outline="black")
    for y in yticks:
        d.line([left, py(y), W - right, py(y)], fill=(230, 230, 230))
        d.line([left - 5, py(y), left, py(y)], fill="black")
        d.text((left - 8, py(y)), f"{y:g}", fill="black", font=small, anchor="rm")
    last = -math.inf
    for x in sorted(xticks if xticks is not None else xs if logx else _nice_ticks(xs[0], xs[-1])):
        if x_lo <= fx(x) <= x_hi and px(x) - last >= 30:
            last = px(x)
            d.line([px(x), H - bottom, px(x), H - bottom + 5], fill="black")
            d.text((px(x), H - bottom + 8), f"{x:g}", fill="black", font=small, anchor="mt")
    d.text((W / 2, 8), title, fill="black", font=font, anchor="mt")
    d.text(((left + W - right) / 2, H - 8), xlabel, fill="black", font=font, anchor="mb")
    label_img = Image.new("RGB", (int(d.textlength(ylabel, font=font)) + 4, 20), "white")
    ImageDraw.Draw(label_img).text((2, 2), ylabel, fill="black", font=font)
    img.paste(label_img.rotate(90, expand=True), (4, int((top + H - bottom) / 2 - label_img.width / 2)))
    legend = []
    if hline is not None:
        _dashed(d, left, W - right, py(hline[0]), (90, 90, 90))
        legend.append((hline[1], (90, 90, 90), None))
    elif off_axis is not None:
        legend.append((off_axis, (90, 90, 90), None))
    for k, (name, s) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        s = sorted(s)
        if len(s) > 1:
            d.line([(px(x), py(y)) for x, y in s], fill=colour, width=2)
        for x, y in s:
            _marker(d, k, px(x), py(y), colour)
        legend.append((name, colour, k))
    lx, ly = W - right - 10 - max(int(d.textlength(t, font=small)) for t, _, _ in legend) - 34, top + 10
    d.rectangle([lx - 6, ly - 6, W - right - 6, ly + 18 * len(legend)], fill="white", outline=(160, 160, 160))
    for j, (name, colour, k) in enumerate(legend):
        yy = ly + 18 * j + 6
        if k is None:
            _dashed(d, lx, lx + 24, yy, colour)
        else:
            d.line([lx, yy, lx + 24, yy], fill=colour, width=2)
            _marker(d, k, lx + 12, yy, colour)
        d.text((lx + 30, yy), name, fill="black", font=small, anchor="lm")
    path = Path(path)
    img.save(path)
    return path


def _dashed(d, x0: float, x1: float, y: float, colour: tuple[int, int, int]) -> None:
    for xa in np.arange(x0, x1, 12):
        d.line([xa, y, min(xa + 6, x1), y], fill=colour, width=2)


def _marker(d, kind: int, x: float, y: float, colour: tuple[int, int, int], r: float = 4.5) -> None:
    shape = kind % 3
    if shape == 0:
        d.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif shape == 1:
        d.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    else:
        d.polygon([(x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)], fill=colour)
