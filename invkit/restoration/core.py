r"""Restoring a user's own images: measured ``y`` (or clean ``x`` to degrade) in, ``x̂`` out.

The pieces, in the order :func:`invkit.restore` uses them:

1. :func:`prepare` turns one image into a :class:`Job`: the operator ``A`` on the image's own
   grid and the measurement ``y``. In **measured** mode the image *is* ``y`` (a 64×48 photo with
   ``sr4`` gives a 256×192 restoration); in **degrade** mode the image is a clean ``x`` and
   ``y = noise(A x)`` is drawn with image ``index``'s own seeds (:func:`invkit.evaluation.image_seed`,
   as ``invkit eval`` does), so PSNR/SSIM against ``x`` can be reported.
2. **Any size.** A fully convolutional backbone runs on any size that is a multiple of its total
   downsampling (:func:`size_multiple`). ``y`` is reflect-padded at the bottom and right so that
   the ``x`` grid becomes such a multiple, the recipe runs with the operator on the padded grid,
   and ``x̂`` is cropped back (:func:`padding`).
3. **Tiles.** A restoration much larger than the backbone's training size (:func:`plan_job`
   says when) is restored in overlapping tiles in raster order (:func:`tile_plan`); each tile treats its overlap with the tiles already
   restored as extra known pixels (DDNM's mask-shift restoration, Wang et al. ICLR 2023, §3.3),
   so no seam shows. The tile's operator (:class:`TileOperator`) is a direct sum: the identity on
   the overlap pixels and the task operator on the tile's new (free) rectangle, so its
   pseudo-inverse — hence the back projection — is exact.
4. **Consistency.** The restoration is consistent with the *given* ``y``: ``‖A x̂ − y‖`` with
   ``A`` the operator on the given grid is at float tolerance for recipes whose guidance ends
   with a hard back projection (SSD's ``BackProj``, DDNM), whatever padding or tiling ran. For
   *block-local* operators (each ``y`` pixel depends only on the ``x`` pixels of its own
   ``s × s`` block: ``sr_avgpool``, ``inpainting``, ``denoise``, ``colorization``,
   ``colorization_sr``) this holds by construction: cropping a padded grid or cutting at
   block-aligned tile borders keeps every ``y`` pixel's block whole. For other operators
   (``sr_bicubic``, blurs, third-party operators) the padded or tiled run is a surrogate problem
   (the same operator on the padded grid, or on each tile's free rectangle with its own
   boundary rule), and one exact back projection with the operator on the given grid,
   ``x̂ ← x̂ − A⁺(A x̂ − y)``, finishes the restoration (:attr:`RestoreResult.notes` says so).
   Recipes that do not end consistent by design (DDNM+ / DDRM with σ_y > 0, DPS, SSD+'s
   staged projection) are not projected; their consistency is reported as measured.
5. **Samples.** ``samples = K`` draws K restorations per image from per-sample seeds
   (:func:`sample_seed`); the result holds their mean, the per-pixel standard deviation (the
   spread: zero where ``y`` determines ``x``, positive where ``A`` loses information) and,
   optionally, the samples.
6. **Batches.** :func:`restore_batch` restores equal-size jobs (same :func:`batch_key`) as one
   batch with one generator per image and sample, so a batch gives the same bits as one-by-one
   runs on the CPU (the backbone permitting: a convolution's result must not depend on the
   batch size).

Why one module of ~550 lines (the reason the house rule on module size asks for): what is left
here after :mod:`~invkit.restoration.jobs`, :mod:`~invkit.restoration.grid` and
:mod:`~invkit.restoration.images` moved out is the one pipeline above: :func:`plan_job` decides
the padding and tiles that the tile loop and :func:`restore_batch` then carry out, on the seeds
of :func:`sample_seed`, into a :class:`RestoreResult`, and :func:`restore` is that pipeline for
one image. The steps share the :class:`Plan` and the order of steps 2-6, and a change to one
(padding, tiling, the final projection, samples) is a change to the others; split across
modules they would only import each other.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import attrs
import numpy as np
import torch
from tqdm.auto import tqdm

from .. import metrics
from ..data import to_unit_range
from ..errors import CapabilityError, ConfigError, InvalidInputError
from ..evaluation import STREAMS, ground_truth_uint8, image_seed, load_backbone, parse_method
from ..guidance import BackProj, DDNMPlus
from ..operator import Operator
from ..sampling import Recipe
from .grid import (
    AUTO_TILE_FACTOR,
    Tile,
    TileOperator,
    padding,
    reflect_pad,
    seam_stats,
    size_multiple,
    tile_plan,
    tile_size,
)
from .images import ImageLike, Picture, resize_alpha
from .jobs import LOCAL_OPERATORS, RESTORE_TASKS, TILEABLE_OPERATORS, Job, batch_key, prepare, read_kernel, read_mask

# the names of grid and jobs stay importable from here (the first version kept them in core)
__all__ = [
    "AUTO_TILE_FACTOR",
    "DTYPES",
    "LOCAL_OPERATORS",
    "RESTORE_TASKS",
    "TILEABLE_OPERATORS",
    "Job",
    "Plan",
    "RestoreResult",
    "Tile",
    "TileOperator",
    "batch_key",
    "build_recipe",
    "data_dtype",
    "padding",
    "plan_job",
    "prepare",
    "read_kernel",
    "read_mask",
    "reflect_pad",
    "restore",
    "restore_batch",
    "sample_generators",
    "sample_seed",
    "seam_stats",
    "size_multiple",
    "tile_plan",
]

#: the ``dtype`` strings :func:`restore` takes
DTYPES = ("float32", "float64", "bfloat16", "float16")


def data_dtype(dtype: str) -> torch.dtype:
    """The images' and solver's dtype for a ``dtype`` string: float64 stays float64; half
    precisions run the backbone under autocast while images and recipes stay float32."""
    return torch.float64 if dtype == "float64" else torch.float32


# ---------------------------------------------------------------------------------------------
# seeds


def sample_seed(seed: int, index: int, sample: int) -> int:
    """The recipe seed of sample ``sample`` of image ``index``.

    Sample 0 uses :func:`~invkit.evaluation.image_seed` ``(seed, index, "recipe")``, so a single
    restoration draws exactly what ``invkit eval`` draws for that image; sample ``k > 0`` uses
    ``SeedSequence(entropy=seed, spawn_key=(index, 2, k))`` (a child of the recipe stream).
    """
    if sample == 0:
        return image_seed(seed, index, "recipe")
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index), STREAMS.index("recipe"), int(sample)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def sample_generators(seed: int, index: int, samples: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per sample of image ``index`` (:func:`sample_seed`)."""
    return [torch.Generator(device=device).manual_seed(sample_seed(seed, index, k)) for k in range(samples)]


# ---------------------------------------------------------------------------------------------
# running


@attrs.frozen(eq=False)
class RestoreResult:
    """One image's restoration.

    Attributes:
        x: the restoration ``(C, H, W)`` in ``[-1, 1]`` (the mean of the samples when there are
            several; not clipped).
        samples: the ``K`` samples ``(K, C, H, W)`` when asked for, else None.
        std: the per-pixel standard deviation over the samples (``(C, H, W)``, unbiased) when
            ``K > 1``, else None.
        y: the measurement ``(C_y, h, w)``.
        pinv: ``A⁺y`` on the given grid ``(C, H, W)``.
        x_true: the clean image in degrade mode, else None.
        nfe: network calls per sample (summed over tiles).
        seconds: wall time per image (the batch's time divided by its size).
        consistency: ``max_k ‖A x̂_k − y‖₂`` over the samples, with ``A`` on the given grid. No
            ``x`` does better than ``‖A A⁺y − y‖₂`` (``info["consistency_floor"]``: the part of
            ``y`` outside the range of ``A``, zero for a ``y`` that ``A`` can produce).
        psnr: PSNR (dB) of ``x`` against ``x_true`` in degrade mode, measured as ``invkit eval``
            does (``x`` quantised as SSD saves it, ``x_true``'s own uint8 pixels), else None.
        ssim: SSIM likewise, else None.
        name: the job's name (its file's relative stem, or ``image``).
        index: the job's index (its position among the inputs; it seeds degrade mode).
        alpha: the input's alpha resized to ``(H, W)``, or None.
        bit_depth: the input's bit depth.
        notes: every conversion and decision made.
        info: the knobs used (tile size, overlap, padded size, multiple, projection).
    """

    x: torch.Tensor
    samples: torch.Tensor | None
    std: torch.Tensor | None
    y: torch.Tensor
    pinv: torch.Tensor
    x_true: torch.Tensor | None
    nfe: int
    seconds: float
    consistency: float
    psnr: float | None
    ssim: float | None
    name: str
    index: int
    alpha: torch.Tensor | None
    bit_depth: int
    notes: tuple[str, ...]
    info: Mapping[str, Any] = attrs.field(factory=dict)


def build_recipe(recipe: Any, job: Job):
    """A :class:`~invkit.Recipe` (or None for the ``input`` baseline: ``x̂ = A⁺y``) from a
    recipe string ``NAME:key=value,...`` (as ``invkit eval``'s methods) or a Recipe."""
    if isinstance(recipe, Recipe):
        return recipe
    if not isinstance(recipe, str):
        raise ConfigError(f"recipe must be a preset string like 'ssd-30' or a Recipe, got {type(recipe).__name__}")
    method = parse_method(recipe)
    if method.name == "y":
        raise ConfigError("the 'y' baseline is for evaluation; restore takes a recipe or 'input'")
    return method.build(job.task, job.noise)


def _ends_consistent(recipe, noise) -> bool:
    """Whether the recipe's output satisfies ``A x̂ = y`` by design (so a final exact projection
    only removes the surrogate problem's error)."""
    g = recipe.guidance
    if isinstance(g, BackProj):
        return True
    return isinstance(g, DDNMPlus) and float(getattr(g, "sigma_y", 0.0)) == 0.0


def _quality(x_hat: torch.Tensor, x_true: torch.Tensor) -> tuple[float, float]:
    """PSNR and SSIM exactly as ``invkit eval`` measures them: the restoration quantised as SSD
    saves it (truncated) against the ground truth's own (rounded) uint8 pixels."""
    a = to_unit_range(metrics.to_uint8(x_hat[None].detach().cpu()), torch.float64)
    b = to_unit_range(ground_truth_uint8(x_true[None]), torch.float64)
    return float(metrics.psnr(a, b, quantize=False)[0]), float(metrics.ssim(a, b, quantize=False)[0])


@attrs.frozen
class Plan:
    """How a job runs on a backbone: the padded grid and the tiles (see :func:`plan_job`).

    Attributes:
        multiple: the backbone's :func:`size_multiple`.
        scale: the ``x``/``y`` grid ratio (1 when ``y`` is not a coarser image grid).
        size: the restoration's ``(H, W)``.
        padded: the padded ``(H', W')`` the recipe runs on.
        tile: the tile size, or None for one whole-image run.
        overlap: the tile overlap in pixels (None without tiles).
        tiles: the :class:`Tile` s in raster order (empty without tiles).
        notes: the decisions made, one sentence each.
    """

    multiple: int
    scale: int
    size: tuple[int, int]
    padded: tuple[int, int]
    tile: int | None
    overlap: int | None
    tiles: tuple[Tile, ...]
    notes: tuple[str, ...]

    @property
    def y_size(self) -> tuple[int, int]:
        """The padded measurement's ``(h', w')``."""
        return self.padded[0] // self.scale, self.padded[1] // self.scale

    @property
    def surrogate(self) -> bool:
        """Whether the recipe runs on another problem than the given one (padded or tiled)."""
        return self.padded != self.size or self.tile is not None

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size_multiple": self.multiple, "padded": list(self.padded), "tile": self.tile}
        if self.tile is not None:
            out["overlap"] = self.overlap
            out["tiles"] = len(self.tiles)
        return out


def plan_job(job: Job, model: Any, *, tile: Any = "auto", overlap: int | None = None) -> Plan:
    """Decide padding and tiling for ``job`` on ``model``, without running anything.

    The grid is padded to multiples of ``lcm(size_multiple(model), scale)``
    (:func:`padding`). Tiling, ``tile="auto"``:

    - a backbone that runs at its ``image_size`` only (``size_multiple == image_size``) tiles
      every larger output in ``image_size`` tiles;
    - a fully convolutional backbone runs on the whole image up to :data:`AUTO_TILE_FACTOR` (4)
      times its ``image_size`` per side and tiles beyond, in tiles of that size (fashion32,
      trained at 32 px: whole up to 128×128, so a 128×96 output runs whole and a 256×192 one in
      128-px tiles). Measured on fashion32 (a 128×96 ×4 restoration), 32-px tiles lose about
      2 dB PSNR to the whole-image run and show seams (border jumps twice the inside ones),
      because a 32-px window that cuts through a garment is far from the centred garments the
      model learnt; large tiles keep the whole-image quality and bound memory and the quadratic
      cost of self-attention;
    - a backbone without ``image_size`` (size-agnostic) never tiles;
    - an operator that cannot be tiled (:data:`TILEABLE_OPERATORS`) runs whole with a note, or
      raises on a backbone that runs at its ``image_size`` only.

    ``tile=N`` forces N-px tiles; ``"off"`` never tiles. The overlap defaults to a quarter of
    the tile rounded up to the SR scale (8 px for 32-px tiles, 32 px for 128-px ones).

    Raises:
        CapabilityError: the job's size cannot be made to fit the backbone, or tiling is asked
            for an operator that cannot be tiled.
        ConfigError: a bad ``tile`` or ``overlap``.
    """
    mult = size_multiple(model)
    H, W = job.x_shape[-2:]
    scale = job.scale
    notes: list[str] = []
    if scale is None:
        if H % mult or W % mult:
            raise CapabilityError(
                f"operator {job.task.operator!r} measures no image grid, so it cannot be padded; the backbone needs "
                f"H and W multiples of {mult}: give images whose restoration is such a size"
            )
        Hp, Wp, scale = H, W, 1
    else:
        Hp, Wp = padding((H, W), scale, mult)
    if (Hp, Wp) != (H, W):
        notes.append(f"padded (reflect) from {H}×{W} to {Hp}×{Wp} for the backbone (multiples of {mult}); cropped back")
    size, note = tile_size(tile, model, scale, mult, (Hp, Wp), job.task.operator, job.tileable)
    if note:
        notes.append(note)
    if size is None:
        return Plan(mult, scale, (H, W), (Hp, Wp), None, None, (), tuple(notes))
    ov = overlap if overlap is not None else -(-(size // 4) // scale) * scale
    if isinstance(ov, bool) or not isinstance(ov, int) or ov % scale or not 0 <= ov < size:
        raise ConfigError(f"overlap must be a multiple of the scale {scale} in [0, tile) = [0, {size}), got {ov!r}")
    tiles = tuple(tile_plan((Hp, Wp), size, ov))
    notes.append(f"restored in {len(tiles)} tiles of {size} px (overlap {ov} px) with mask-shift")
    return Plan(mult, scale, (H, W), (Hp, Wp), size, ov, tiles, tuple(notes))


def _run_recipe(rec: Any, model: Any, y: torch.Tensor, op: Operator, gens, progress: bool = False):
    """``rec.run`` with ``return_info``; the size was chosen on purpose (a multiple of the
    backbone's :func:`size_multiple`, padded or tiled), so a recipe that checks ``x`` against a
    fixed ``image_size`` is told ``allow_any_size=True``."""
    return rec.run(model, y, op, generator=gens, return_info=True, progress=progress, allow_any_size=True)


def _run_tiles(job: Job, plan: Plan, model: Any, rec: Any, yK: torch.Tensor, mK: torch.Tensor | None, gens, progress: bool):
    """Mask-shift restoration tile by tile (see :class:`TileOperator`): (canvas, network calls)."""
    C, s = job.x_shape[0], plan.scale
    canvas = torch.zeros((yK.shape[0], C) + tuple(plan.padded), dtype=yK.dtype, device=yK.device)
    nfe = 0
    for t in tqdm(plan.tiles, desc="tiles", disable=not progress):
        r0, c0 = t.top + t.overlap_h, t.left + t.overlap_w
        r1, c1 = t.top + t.height, t.left + t.width
        free_op = job.operator(None if mK is None else mK[..., r0:r1, c0:c1]).to(device=yK.device, dtype=yK.dtype)
        y_free = yK[..., r0 // s : r1 // s, c0 // s : c1 // s]
        op = TileOperator(free_op, (C, t.height, t.width), (t.overlap_h, t.overlap_w), tuple(y_free.shape[1:]))
        y_t = op.join(y_free, canvas[..., t.top : r1, t.left : c1][..., op.known.to(yK.device)])
        try:
            res = _run_recipe(rec, model, y_t, op, gens)
        except CapabilityError as exc:
            raise CapabilityError(
                f"{exc} — a tile's operator (the task on the new pixels plus the overlap) has no SVD view: "
                f"tile with a back-projection recipe (ssd-30, ddnm-30) or use tile='off'"
            ) from exc
        canvas[..., r0:r1, c0:c1] = res.x[..., t.overlap_h :, t.overlap_w :]
        nfe += int(res.nfe)
    return canvas, nfe


def restore_batch(
    jobs: Sequence[Job],
    model: Any,
    recipe: Any = "ssd-30",
    *,
    samples: int = 1,
    keep_samples: bool = False,
    tile: Any = "auto",
    overlap: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> list[RestoreResult]:
    """Restore jobs of equal :func:`batch_key` as one batch.

    Every image ``i`` and sample ``k`` draws from its own generator (:func:`sample_seed` of the
    job's ``seed`` and ``index``), so a job's result does not depend on the other jobs of the
    batch. With tiles, tile ``t`` of every image and sample runs as one batch, tile after tile.

    Args:
        jobs: from :func:`prepare`, all with the same :func:`batch_key`.
        model: the backbone.
        recipe: a recipe string (``"ssd-30"``, ``"ddnm:generation_steps=20"``, ``"input"``) or
            a :class:`~invkit.Recipe`.
        samples: restorations per image (K >= 1).
        keep_samples: keep all K samples in the results.
        tile: ``"auto"`` (see :func:`plan_job`), ``"off"``, or a tile size in pixels (a
            multiple of the backbone's :func:`size_multiple` and the SR scale).
        overlap: tile overlap in pixels (default: a quarter of the tile, rounded up to the scale).
        device: where to run (default: the model's device).
        dtype: the float dtype (default: the jobs').
        progress: show a progress bar over tiles.

    Returns:
        One :class:`RestoreResult` per job, in order.

    Raises:
        InvalidInputError: jobs of different batch keys.
        CapabilityError: tiling asked for an operator that cannot be tiled; a size the backbone
            cannot take.
    """
    if not jobs:
        return []
    if len({batch_key(j) for j in jobs}) != 1:
        raise InvalidInputError("restore_batch takes jobs of one batch_key (same operator, sizes and noise); group them first")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be an integer >= 1, got {samples!r}")
    first = jobs[0]
    K, B = samples, len(jobs)
    device = torch.device(device) if device is not None else getattr(model, "device", torch.device("cpu"))
    dtype = dtype or first.y.dtype
    rec = build_recipe(recipe, first)
    plan = None if rec is None else plan_job(first, model, tile=tile, overlap=overlap)
    start = time.perf_counter()
    y = torch.stack([j.y for j in jobs]).to(device=device, dtype=dtype)
    masks = None if first.mask is None else torch.stack([j.mask for j in jobs]).to(device=device, dtype=dtype)
    op = first.operator(masks).to(device=device, dtype=dtype)  # the operator on the given grid
    with torch.no_grad():
        pinv = op.pinv(y)
    C, H, W = first.x_shape
    info: dict[str, Any] = {"recipe": repr(rec) if rec is not None else "input", "samples": K}
    notes: list[str] = []
    noisy = getattr(first.noise, "sigma", None) != 0.0
    if rec is not None and noisy and first.task.operator == "denoise" and _ends_consistent(rec, first.noise):
        notes.append(
            "a hard back projection onto a noisy y returns y itself for denoising (A = I): use a noise-aware "
            "recipe such as ddrm-30 or ddnm+ with noise_sigma"
        )
    if rec is None:
        x_all, nfe = pinv.repeat_interleave(K, dim=0), 0
    else:
        notes += plan.notes
        info.update(plan.info())
        yK = reflect_pad(y, plan.y_size).repeat_interleave(K, dim=0)
        mK = None if masks is None else reflect_pad(masks, plan.padded).repeat_interleave(K, dim=0)
        gens = [g for j in jobs for g in sample_generators(j.seed, j.index, K, device)]
        if plan.tile is None:
            op_pad = first.operator(mK).to(device=device, dtype=dtype)
            res = _run_recipe(rec, model, yK, op_pad, gens, progress)
            x_all, nfe = res.x, int(res.nfe)
        else:
            x_all, nfe = _run_tiles(first, plan, model, rec, yK, mK, gens, progress)
        x_all = x_all[..., :H, :W]
        if plan.surrogate and not first.local:
            # the padded/tiled operator was a surrogate of the given one: finish on the given grid
            if _ends_consistent(rec, first.noise):
                opK = first.operator(None if masks is None else masks.repeat_interleave(K, dim=0)).to(device=device, dtype=dtype)
                with torch.no_grad():
                    x_all = opK.project(x_all, y.repeat_interleave(K, dim=0))
                notes.append("finished with one exact back projection on the given grid (the padded/tiled operator was a surrogate)")
                info["final_projection"] = True
            else:
                notes.append("the padded/tiled run used a surrogate operator and this recipe does not end with a hard projection: consistency is as measured")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / B
    x_all = x_all.detach().reshape(B, K, C, H, W)
    out = []
    with torch.no_grad():
        for i, job in enumerate(jobs):
            xs = x_all[i]
            xm = xs.mean(dim=0) if K > 1 else xs[0]
            std = xs.std(dim=0) if K > 1 else None
            op_i = job.operator().to(device=device, dtype=dtype)
            cons = float(metrics.consistency(op_i, xs, y[i : i + 1].expand((K,) + tuple(y.shape[1:]))).max())
            # what no x can beat: y's part outside the range of A (noise a blur's cut removes)
            floor = float(metrics.consistency(op_i, pinv[i : i + 1], y[i : i + 1])[0])
            psnr = ssim = None
            if job.x_true is not None:
                psnr, ssim = _quality(xm, job.x_true)
            alpha = None
            if job.alpha is not None:
                alpha = resize_alpha(job.alpha, (H, W))
            out.append(
                RestoreResult(
                    x=xm.cpu(), samples=xs.cpu() if keep_samples else None, std=None if std is None else std.cpu(),
                    y=job.y, pinv=pinv[i].cpu(), x_true=job.x_true, nfe=nfe, seconds=seconds, consistency=cons,
                    psnr=psnr, ssim=ssim, name=job.name, index=job.index, alpha=alpha, bit_depth=job.bit_depth,
                    notes=tuple(job.notes) + tuple(notes), info={**info, "consistency_floor": floor},
                )
            )  # fmt: skip
    return out


def restore(
    image: ImageLike | Picture,
    task: str = "sr4",
    *,
    recipe: Any = "ssd-30",
    backbone: Any = "fashion32",
    checkpoint: str | None = None,
    operator: str | None = None,
    params: Mapping[str, Any] | None = None,
    mask: Any = None,
    kernel: Any = None,
    noise_sigma: float | None = None,
    degrade: bool = False,
    samples: int = 1,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    tile: Any = "auto",
    return_info: bool = False,
) -> torch.Tensor | RestoreResult:
    """Restore one image: a low-res photo, a gray scan, a photo with holes, a blurry photo.

    ::

        x_hat = invkit.restore("photo_64x48.png", task="sr4")          # (1, 192, 256) in [-1, 1]
        res = invkit.restore(photo, task="inpainting", mask="holes.png", samples=8, return_info=True)
        res.std                                                        # per-pixel spread

    Args:
        image: a path, a PIL image, a NumPy array ``(H, W[, C])`` (uint8, uint16, or float in
            [0, 1]) or a tensor ``(C, H, W)`` / ``(1, C, H, W)`` in [-1, 1].
        task: what happened to the image (``sr2``, ``sr4``, ``sr8``, ``sr8-avgpool``,
            ``inpainting`` (with ``mask``), ``inpaint-box``, ``inpaint-random``, ``deblur``
            (with ``kernel``, or the task's Gaussian), ``blur`` (with ``kernel``), ``denoise``,
            ``colorization``).
        recipe: a recipe preset with optional overrides, ``"NAME:key=value,..."`` (as ``invkit
            eval``), a :class:`~invkit.Recipe`, or ``"input"`` (``x̂ = A⁺y``, no network).
        backbone: a registered backbone name or a backbone object.
        checkpoint: its weights (when the backbone needs a path).
        operator: any registered operator instead of the task's (``params`` its parameters).
        params: the operator's parameters (or overrides of the task's).
        mask: the inpainting mask (white = known; the image's size).
        kernel: the blur kernel (``.npy`` or gray PNG; normalised to sum 1).
        noise_sigma: Gaussian noise σ in [-1, 1] units (added in degrade mode; told to
            noise-aware recipes).
        degrade: the image is clean: degrade it with the task first (seeded), then restore.
        samples: restorations to draw; with K > 1 the result is their mean and ``std`` their
            spread.
        seed: the seed (the image is index 0).
        device: ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"`` or ``"float64"`` for the images and the solver (``bfloat16`` /
            ``float16`` run the backbone under autocast).
        tile: ``"auto"``, ``"off"`` or a tile size in pixels (see :func:`restore_batch`).
        return_info: return a :class:`RestoreResult` instead of the tensor.

    Returns:
        The restoration ``(C, H, W)`` in [-1, 1] on the CPU, or the :class:`RestoreResult`.

    Raises:
        InvkitError: any bad input, with what to do (see :func:`prepare`, :func:`restore_batch`).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    model = load_backbone(backbone, checkpoint=checkpoint, device=device, dtype=dtype) if isinstance(backbone, str) else backbone
    job = prepare(
        image, task, backbone=model, mode="degrade" if degrade else "measured", mask=mask, kernel=kernel,
        noise_sigma=noise_sigma, operator=operator, params=params, seed=seed, index=0, dtype=data_dtype(dtype),
    )  # fmt: skip
    result = restore_batch([job], model, recipe, samples=samples, keep_samples=samples > 1, tile=tile, device=device)[0]
    return result if return_info else result.x
