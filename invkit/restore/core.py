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
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import attrs
import numpy as np
import torch

from .. import rng
from ..errors import CapabilityError, ConfigError, InvalidInputError, MissingFileError
from ..operator import Operator, check_tensor
from .images import ImageLike, Picture, match_channels, read_image

__all__ = [
    "AUTO_TILE_FACTOR",
    "LOCAL_OPERATORS",
    "TILEABLE_OPERATORS",
    "RESTORE_TASKS",
    "Job",
    "RestoreResult",
    "TileOperator",
    "prepare",
    "read_mask",
    "read_kernel",
    "size_multiple",
    "padding",
    "tile_plan",
    "Plan",
    "plan_job",
    "sample_seed",
    "sample_generators",
    "batch_key",
    "build_recipe",
    "restore_batch",
    "restore",
    "seam_stats",
]

#: registered operators whose ``y`` pixels each depend on one ``s × s`` block of ``x`` only
#: (an operator may also declare ``local = True``)
LOCAL_OPERATORS = frozenset({"sr_avgpool", "inpainting", "denoise", "colorization", "colorization_sr"})
#: registered operators that can be tiled (the local ones, and bicubic SR whose taps are short);
#: an operator may declare ``tileable = True``
TILEABLE_OPERATORS = LOCAL_OPERATORS | {"sr_bicubic"}

#: restore-only tasks next to :data:`invkit.evaluation.TASKS`: a user's own mask or kernel
RESTORE_TASKS = ("inpainting", "blur")

MODES = ("measured", "degrade")

#: the ``dtype`` strings :func:`restore` takes
DTYPES = ("float32", "float64", "bfloat16", "float16")


def data_dtype(dtype: str) -> torch.dtype:
    """The images' and solver's dtype for a ``dtype`` string: float64 stays float64; half
    precisions run the backbone under autocast while images and recipes stay float32."""
    return torch.float64 if dtype == "float64" else torch.float32


# ---------------------------------------------------------------------------------------------
# tasks, masks, kernels


def _task(name: str, operator: str | None, params: Mapping[str, Any] | None):
    """The effective :class:`~invkit.evaluation.Task`: a named task, maybe with its operator replaced."""
    from ..evaluation import Task, get_task

    if name == "inpainting":
        base = Task("inpainting", "inpainting", "inpainting", description="the user's own mask (white = known)")
    elif name == "blur":
        # rcond 3e-2 (DeblurGauss's cut) rather than blur_fft's 1e-3: a real photo's noise and
        # quantisation at frequencies the kernel nearly removes would be amplified 1000×
        base = Task("blur", "blur_fft", "deblur", {"rcond": 3e-2}, description="circular blur with the user's own kernel")
    else:
        base = get_task(name)
    if operator is None:
        if params:
            base = attrs.evolve(base, params={**dict(base.params), **dict(params)})
        return base
    from ..plugins import operators_registry

    operators_registry.get(operator)  # an unknown name fails here, with the list
    return Task(operator, operator, base.engine_task, dict(params or {}), description=f"operator {operator!r}")


def read_mask(mask: ImageLike | Picture, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A mask file or array as a ``(1, H, W)`` float tensor of 0/1 (**white = known**, 1).

    Any image works: it is converted to gray and thresholded at half range (a JPEG's ringing
    does not turn known pixels into holes). Its alpha, if any, is ignored.

    Args:
        mask: a path, PIL image, NumPy array or tensor (see :func:`read_image`); a bool or 0/1
            array is taken as it is.
        size: the ``(H, W)`` it must have (the input image's); it is never resized.

    Raises:
        InvalidInputError: a size mismatch, or a mask that keeps no pixel.
    """
    if isinstance(mask, np.ndarray) and mask.dtype == bool:
        m = torch.from_numpy(mask.astype(np.float32))
    elif isinstance(mask, torch.Tensor) and mask.dtype == torch.bool:
        m = mask.float()
    else:
        if isinstance(mask, torch.Tensor) and mask.is_floating_point() and float(mask.min()) >= 0 and float(mask.max()) <= 1:
            mask = mask * 2 - 1  # a 0/1 float tensor, not an image in [-1, 1]
        pic = read_image(mask)
        m = (pic.x.mean(dim=0) > 0).float()
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise InvalidInputError(f"a mask must be one gray image (H, W), got shape {tuple(m.shape)}")
    where = f" ({mask})" if isinstance(mask, (str, bytes)) or hasattr(mask, "__fspath__") else ""
    if size is not None and tuple(m.shape) != tuple(size):
        raise InvalidInputError(
            f"the mask{where} is {m.shape[0]}×{m.shape[1]} but the image is {size[0]}×{size[1]} (H×W); "
            f"masks are never resized: give a mask of the image's size (white = known, black = missing)"
        )
    if not bool((m > 0).any()):
        raise InvalidInputError(f"the mask{where} keeps no pixel (it is all black); white marks the known pixels")
    return m[None]


def read_kernel(kernel: str | Any) -> torch.Tensor:
    """A blur kernel as a float64 ``(kh, kw)`` tensor normalised to sum 1.

    Args:
        kernel: a ``.npy`` file (a 2-D array, read without pickle), a grayscale image file
            (pixel values are the weights), a NumPy array or a tensor.

    Raises:
        MissingFileError: the file does not exist.
        InvalidInputError: not 2-D, not finite, or summing to zero or less.
    """
    import os

    if isinstance(kernel, (str, os.PathLike)):
        path = str(kernel)
        if not os.path.isfile(path):
            raise MissingFileError(f"{path}: no such kernel file")
        if path.lower().endswith(".npy"):
            try:
                k = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float64))
            except (ValueError, OSError) as exc:
                raise InvalidInputError(f"{path}: not a readable .npy array ({exc})") from exc
        else:
            k = (read_image(path).x.double().mean(dim=0) + 1) / 2
    elif isinstance(kernel, np.ndarray):
        k = torch.from_numpy(kernel.astype(np.float64))
    elif isinstance(kernel, torch.Tensor):
        k = kernel.detach().cpu().double()
    else:
        raise InvalidInputError(f"a kernel must be a .npy/image path, an array or a tensor, got {type(kernel).__name__}")
    if k.ndim != 2 or k.numel() == 0:
        raise InvalidInputError(f"a blur kernel must be 2-D (kh, kw), got shape {tuple(k.shape)}")
    if not bool(torch.isfinite(k).all()) or float(k.sum()) <= 0:
        raise InvalidInputError("a blur kernel must be finite with a positive sum (it is normalised to sum 1)")
    return k / k.sum()


# ---------------------------------------------------------------------------------------------
# jobs


@attrs.frozen(eq=False)
class Job:
    """One image's restoration problem, before any backbone-dependent padding or tiling.

    Attributes:
        name: a label (the file name for files).
        index: the image's position in its run; with ``seed`` it fixes every random draw.
        seed: the run's seed.
        mode: ``"measured"`` or ``"degrade"``.
        task: the effective :class:`~invkit.evaluation.Task` (operator name and parameters).
        noise: the measurement noise (:class:`~invkit.noise.Noise`) — drawn in degrade mode,
            told to noise-aware recipes in both modes.
        y: the measurement ``(C_y, h, w)`` (float32 or float64).
        mask: the inpainting mask ``(1, H, W)`` on the ``x`` grid (1 = known), or None.
        x_shape: the restoration's shape ``(C, H, W)``.
        x_true: the clean image in degrade mode, else None.
        alpha: the input's alpha ``(1, h', w')`` kept aside, or None.
        bit_depth: the input's bit depth (8 or 16).
        notes: every conversion made so far.
    """

    name: str
    index: int
    seed: int
    mode: str
    task: Any
    noise: Any
    y: torch.Tensor
    mask: torch.Tensor | None
    x_shape: tuple[int, int, int]
    x_true: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    bit_depth: int = 8
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def operator(self, mask: torch.Tensor | None = None) -> Operator:
        """The operator, on the grid of ``mask`` when given (else this job's own)."""
        return _build_op(self.task, self.x_shape[0], self.mask if mask is None else mask)

    @property
    def scale(self) -> int | None:
        """``H / h`` when ``y`` is an image on a grid ``scale`` times coarser than ``x``, else None."""
        if self.y.ndim != 3:
            return None
        H, W = self.x_shape[-2:]
        h, w = self.y.shape[-2:]
        if H % h or W % w or H // h != W // w:
            return None
        return H // h

    @property
    def local(self) -> bool:
        return _is(self.task.operator, "local", LOCAL_OPERATORS)

    @property
    def tileable(self) -> bool:
        return self.scale is not None and _is(self.task.operator, "tileable", TILEABLE_OPERATORS)


def _is(name: str, attr: str, table: frozenset) -> bool:
    if name in table:
        return True
    from ..plugins import operators_registry

    try:
        factory = operators_registry.get(name).factory
    except Exception:  # noqa: BLE001 - an unregistered name is simply not local
        return False
    return bool(getattr(factory, attr, False))


def _build_op(task, channels: int, mask: torch.Tensor | None) -> Operator:
    from ..plugins import operators_registry

    params = dict(task.params)
    if task.pass_channels:
        params["channels"] = int(channels)
    if mask is not None:
        params["mask"] = mask
    return operators_registry.build(task.operator, **params)


def _shape_of(op: Operator, y: torch.Tensor) -> tuple[int, ...]:
    try:
        return tuple(op.input_shape((1,) + tuple(y.shape)))[1:]
    except Exception as exc:  # noqa: BLE001 - a third-party operator may raise anything here
        raise CapabilityError(
            f"operator {type(op).__name__} cannot tell the x shape for a measurement of shape {tuple(y.shape)} "
            f"({exc}); in measured mode an operator must implement input_shape(y_shape)"
        ) from exc


def prepare(
    image: ImageLike | Picture,
    task: str = "sr4",
    *,
    backbone: Any,
    mode: str = "measured",
    mask: Any = None,
    kernel: Any = None,
    noise_sigma: float | None = None,
    operator: str | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    index: int = 0,
    name: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Job:
    """Build the operator and the measurement of one image.

    Measured mode (the default): the image is ``y``. ``sr2``/``sr4``/``sr8`` give an ``x`` that
    many times larger; ``colorization`` takes a gray photo to the backbone's channels; the
    inpainting tasks (``inpainting``, ``inpaint-box``, ``inpaint-random``) need ``mask`` (white =
    known, the image's size); ``deblur`` with a ``kernel`` (or the ``blur`` task) uses circular
    convolution with it (``blur_fft``), without one the task's Gaussian; ``denoise`` uses
    ``noise_sigma`` (the task's 0.2 by default) to inform noise-aware recipes.

    Degrade mode: the image is a clean ``x``; ``y = noise(A x)`` with the mask (for
    ``inpaint-box``/``inpaint-random`` without ``mask``) and the noise drawn from image
    ``index``'s ``operator`` and ``noise`` streams (:func:`~invkit.evaluation.image_seed`).
    An ``x`` whose size the operator cannot take (not a multiple of the SR scale) is cropped
    at the bottom/right, with a note.

    Args:
        image: a path, PIL image, array, tensor or :class:`Picture`.
        task: a task of :data:`invkit.evaluation.TASKS` or :data:`RESTORE_TASKS`.
        backbone: the backbone (its ``channels`` decide the image's channels) or a channel count.
        mode: ``"measured"`` or ``"degrade"``.
        mask: the inpainting mask (see :func:`read_mask`).
        kernel: a blur kernel (see :func:`read_kernel`).
        noise_sigma: Gaussian noise σ in ``[-1, 1]`` units (drawn in degrade mode; told to the
            recipe in both).
        operator: any registered operator name instead of the task's (``params`` its parameters);
            the task then only picks the recipe's per-task numbers. In measured mode the operator
            must implement ``input_shape(y_shape)``.
        params: parameters of ``operator`` (or overrides of the task's).
        seed: the run's seed.
        index: the image's index (its seeds).
        name: a label (default: the file name, or ``image-<index>``).
        dtype: the float dtype of ``y`` and ``x``.

    Returns:
        The :class:`Job`.

    Raises:
        UnknownNameError: an unknown task or operator.
        CapabilityError: colorization with a 1-channel backbone, an operator without
            ``input_shape`` in measured mode.
        InvalidInputError: a missing/mis-sized mask, a bad kernel, an unreadable image.
    """
    from ..evaluation import image_generators, make_noise
    from ..noise import Measurement

    if mode not in MODES:
        raise ConfigError(f"mode must be 'measured' or 'degrade', got {mode!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 or isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ConfigError(f"seed and index must be integers >= 0, got seed={seed!r}, index={index!r}")
    channels = backbone if isinstance(backbone, int) else int(getattr(backbone, "channels", 0) or 0)
    if channels < 1:
        raise ConfigError(f"backbone must be a Backbone (with .channels) or a channel count, got {backbone!r}")
    params = dict(params or {})
    if kernel is not None:
        if operator is None and task in ("deblur", "deblur-ddrm", "blur"):
            task = "blur"
        elif operator is None:
            raise ConfigError(f"a kernel is for the deblurring tasks ('deblur', 'blur'), not {task!r}")
        params["kernel"] = read_kernel(kernel)
    if operator is None and task == "blur" and "kernel" not in params:
        raise InvalidInputError("the 'blur' task needs the blur kernel: pass kernel= (a .npy array or a gray PNG)")
    t = _task(task, operator, params)
    notes: list[str] = []
    if noise_sigma is None and mode == "measured" and t.default_sigma > 0:
        notes.append(f"noise sigma {t.default_sigma:g} ([-1, 1] units) assumed (the task's default); pass noise_sigma to change it")
    noise = make_noise(t, noise_sigma)
    colorize = t.operator in ("colorization", "colorization_sr") or t.rgb
    if colorize and channels == 1:
        raise CapabilityError(
            "colorization needs a colour (3-channel) backbone; this backbone has 1 channel (e.g. fashion32). "
            "Use an RGB backbone (--backbone adm-256 --checkpoint PATH) or another task"
        )
    pic = read_image(image)
    notes += list(pic.notes)
    label = name or (pic.source.rsplit("/", 1)[-1] if pic.source else f"image-{index:05d}")
    x_in = pic.x.to(dtype)
    masked = t.mask is not None or t.operator == "inpainting"

    if mode == "measured":
        if colorize:
            if x_in.shape[0] != 1:
                probe = _build_op(t, channels, None)
                x_in = probe.A(x_in[None])[0]
                notes.append("colour image turned gray with the colorization operator's own weights (it is y)")
            y = x_in
        else:
            y, note = match_channels(x_in, channels)
            if note:
                notes.append(note)
        m = None
        if masked:
            if mask is None:
                raise InvalidInputError(
                    f"task {t.name!r} on a measured image needs its mask: pass mask= (a PNG of the image's size, white = known)"
                )
            m = read_mask(mask, tuple(y.shape[-2:])).to(dtype)
            if not bool(((y * (1 - m)) == 0).all()):
                y = y * m  # hidden pixels carry no information: zero them as A x does
                notes.append("pixels outside the mask were set to 0 (they are unknown)")
        elif mask is not None:
            raise ConfigError(f"a mask is for the inpainting tasks, not {t.name!r}")
        op = _build_op(t, channels, m)
        x_shape = _shape_of(op, y)
        if len(x_shape) != 3:
            raise CapabilityError(f"operator {t.operator!r} gives x of shape {x_shape} for this image; restore needs (C, H, W)")
        try:
            y_probe = op.A(torch.zeros((1,) + tuple(x_shape), dtype=y.dtype))
        except Exception as exc:  # noqa: BLE001 - a third-party operator may raise anything
            raise CapabilityError(f"operator {t.operator!r} cannot be applied to x of shape {x_shape} ({exc})") from exc
        if tuple(y_probe.shape[1:]) != tuple(y.shape):
            raise CapabilityError(
                f"operator {t.operator!r} says x has shape {x_shape} for y of shape {tuple(y.shape)}, but maps it to "
                f"{tuple(y_probe.shape[1:])}; in measured mode an operator must implement input_shape(y_shape)"
            )
        if x_shape[0] != channels:
            raise CapabilityError(f"operator {t.operator!r} restores {x_shape[0]} channel(s) but the backbone has {channels}")
        return Job(label, index, seed, mode, t, noise, y.contiguous(), m, tuple(int(v) for v in x_shape),
                   alpha=pic.alpha, bit_depth=pic.bit_depth, notes=notes)  # fmt: skip

    # degrade: the image is x
    x, note = match_channels(x_in, channels)
    if note:
        notes.append(note)
    scale = int(t.params.get("scale", 1)) if isinstance(t.params.get("scale", 1), int) else 1
    H, W = x.shape[-2:]
    Hc, Wc = H - H % scale, W - W % scale
    if (Hc, Wc) != (H, W):
        if Hc == 0 or Wc == 0:
            raise InvalidInputError(f"the image is {H}×{W}, smaller than the scale {scale}")
        x = x[..., :Hc, :Wc]
        notes.append(f"cropped from {H}×{W} to {Hc}×{Wc} (a multiple of the scale {scale}) before degrading")
    m = None
    if mask is not None:
        if not masked:
            raise ConfigError(f"a mask is for the inpainting tasks, not {t.name!r}")
        m = read_mask(mask, tuple(x.shape[-2:])).to(dtype)
    elif t.mask is not None:
        m = t.masks(tuple(x.shape), image_generators(seed, [index], "operator"))[0].to(dtype)
    elif masked:
        raise InvalidInputError(f"task {t.name!r} needs a mask: pass mask= (white = known)")
    op = _build_op(t, channels, m)
    y = Measurement(op, noise).sample(x[None], generator=image_generators(seed, [index], "noise"))[0]
    return Job(label, index, seed, mode, t, noise, y.contiguous(), m, tuple(int(v) for v in x.shape), x_true=x.contiguous(),
               alpha=pic.alpha, bit_depth=pic.bit_depth, notes=notes)  # fmt: skip


def batch_key(job: Job) -> tuple:
    """Jobs with equal keys can be restored as one batch by :func:`restore_batch`."""
    params = tuple(sorted((k, _fingerprint(v)) for k, v in job.task.params.items()))
    return (job.task.operator, params, tuple(job.y.shape), job.x_shape, job.mask is not None, job.y.dtype, repr(job.noise))


def _fingerprint(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return (tuple(v.shape), str(v.dtype), hash(v.detach().cpu().double().numpy().tobytes()))
    if isinstance(v, np.ndarray):
        return (v.shape, str(v.dtype), hash(v.tobytes()))
    return repr(v)


# ---------------------------------------------------------------------------------------------
# sizes: padding and tiles


def size_multiple(backbone: Any) -> int:
    """The multiple the backbone's input height and width must be.

    In order: an explicit ``size_multiple`` attribute on the backbone or its ``net``; a
    ddim-repo DDPM UNet (``num_resolutions``): ``2^(len(ch_mult) − 1)`` (8 for fashion32); a
    guided-diffusion ADM UNet: 2 to the number of its downsampling blocks; a backbone without
    an ``image_size`` (size-agnostic): 1; otherwise the backbone runs at its ``image_size`` only,
    which is then the multiple (and every larger output is tiled).
    """
    for obj in (backbone, getattr(backbone, "net", None)):
        m = getattr(obj, "size_multiple", None)
        if isinstance(m, int) and m >= 1:
            return m
    net = getattr(backbone, "net", None)
    if net is not None and isinstance(getattr(net, "num_resolutions", None), int):
        return 2 ** (net.num_resolutions - 1)
    if net is not None and hasattr(net, "input_blocks"):
        downs = sum(
            1 for mod in net.modules() if type(mod).__name__ == "Downsample" or (getattr(mod, "updown", False) and not getattr(getattr(mod, "h_upd", None), "up", True))
        )
        return 2**downs
    size = getattr(backbone, "image_size", None)
    return 1 if size is None else int(size)


def _reflect_index(n_out: int, n: int) -> torch.Tensor:
    """Indices ``0..n_out−1`` folded into ``[0, n)`` by mirror reflection without edge repeat
    (``n, n+1 → n−2, n−3``), repeated as often as needed; ``n = 1`` gives zeros."""
    j = torch.arange(n_out)
    if n == 1:
        return torch.zeros_like(j)
    period = 2 * (n - 1)
    j = j % period
    return torch.where(j >= n, period - j, j)


def reflect_pad(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``t`` ``(..., h, w)`` mirror-padded at the bottom and right to ``size = (h', w')``."""
    h, w = t.shape[-2:]
    if (h, w) == tuple(size):
        return t
    rows, cols = _reflect_index(size[0], h).to(t.device), _reflect_index(size[1], w).to(t.device)
    return t.index_select(-2, rows).index_select(-1, cols)


def padding(x_size: tuple[int, int], scale: int, multiple: int) -> tuple[int, int]:
    """The padded ``(H', W')``: the smallest sizes ``>= x_size`` that are multiples of
    ``lcm(multiple, scale)`` (so the ``y`` grid, ``scale`` times coarser, stays whole)."""
    q = math.lcm(int(multiple), int(scale))
    return tuple(-(-n // q) * q for n in x_size)  # type: ignore[return-value]


@attrs.frozen
class Tile:
    """One tile of a plan: its box in the padded ``x`` grid and its overlap with earlier tiles.

    ``(top, left)`` is its corner, ``(height, width)`` its size; the first ``overlap_h`` rows and
    ``overlap_w`` columns were restored by earlier tiles (the top and left strips); the rest,
    the bottom-right *free* rectangle, is new.
    """

    top: int
    left: int
    height: int
    width: int
    overlap_h: int
    overlap_w: int


def _axis(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """(position, overlap with the previous tile) along one axis of length ``n``."""
    if n <= size:
        return [(0, 0)]
    stride = size - overlap
    pos = list(range(0, n - size, stride)) + [n - size]
    return [(p, 0 if k == 0 else pos[k - 1] + size - p) for k, p in enumerate(pos)]


def tile_plan(size: tuple[int, int], tile: int, overlap: int) -> list[Tile]:
    """Overlapping tiles covering a ``size = (H, W)`` grid in raster order.

    Tiles are ``tile × tile`` (clipped to the grid when it is smaller); along each axis they
    start at ``0, tile − overlap, 2(tile − overlap), …`` and the last one ends at the grid's edge
    (so its overlap may be larger). With ``tile`` and ``overlap`` multiples of the SR scale (and
    ``H, W`` too) every border is block-aligned.
    """
    if not (isinstance(tile, int) and tile >= 1 and isinstance(overlap, int) and 0 <= overlap < tile):
        raise ConfigError(f"a tile plan needs tile >= 1 and 0 <= overlap < tile, got tile={tile!r}, overlap={overlap!r}")
    rows, cols = _axis(size[0], tile, overlap), _axis(size[1], tile, overlap)
    th, tw = min(tile, size[0]), min(tile, size[1])
    return [Tile(r, c, th, tw, oh, ow) for r, oh in rows for c, ow in cols]


#: ``tile="auto"`` runs a fully convolutional backbone on the whole image up to this many times
#: its training size per side, and tiles beyond (in tiles of that size); see :func:`plan_job`
AUTO_TILE_FACTOR = 4


def _tile_size(tile: Any, model: Any, scale: int, multiple: int, x_size: tuple[int, int], op_name: str, tileable: bool) -> tuple[int | None, str | None]:
    """(tile size or None for no tiling, a note)."""
    q = math.lcm(multiple, scale)
    if tile == "off" or tile is None or tile is False:
        return None, None
    image_size = getattr(model, "image_size", None)
    if tile == "auto":
        if image_size is None:
            return None, None
        fixed = multiple >= image_size  # runs at its training size only
        limit = int(image_size) * (1 if fixed else AUTO_TILE_FACTOR)
        if max(x_size) <= limit:
            return None, None
        if not tileable:
            if fixed:
                raise CapabilityError(
                    f"the backbone runs at {image_size}×{image_size} only and operator {op_name!r} cannot be tiled; "
                    f"give images whose restoration is {image_size}×{image_size}"
                )
            return None, f"not tiled: operator {op_name!r} cannot be tiled; the fully convolutional backbone ran on the whole {x_size[0]}×{x_size[1]} image"
        size = (limit // q) * q
        if size < q:
            raise CapabilityError(f"cannot tile: the backbone's {image_size} px is below the SR scale's alignment {q}")
        return size, None
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ConfigError(f"tile must be 'auto', 'off' or a tile size in pixels, got {tile!r}")
    if tile % q:
        raise ConfigError(f"tile = {tile} must be a multiple of {q} (the backbone's multiple {multiple} and the scale {scale})")
    if not tileable:
        raise CapabilityError(
            f"operator {op_name!r} cannot be tiled (its measurements are not local: e.g. a blur mixes the whole image); "
            f"use tile='off' (the backbone is fully convolutional)"
        )
    return tile, None


class TileOperator(Operator):
    r"""One tile's operator: the identity on the pixels already restored, the task elsewhere.

    The tile ``x`` ``(B, C, h, w)`` splits into the overlap ``O`` (the first ``overlap_h`` rows
    and ``overlap_w`` columns: pixels earlier tiles restored) and the free rectangle ``F`` (the
    rest). ``A x = (A_F x_F, x_O)`` flattened into one vector per sample, where ``A_F`` is the task
    operator on ``F`` (its mask cropped to ``F``). The two parts act on disjoint pixels, so
    ``A⁺ = A_F⁺ ⊕ I`` and ``Aᵀ = A_Fᵀ ⊕ I`` are exact, and back projection pins the overlap to the
    restored pixels while fitting ``F`` to its measurements (DDNM's mask-shift restoration).
    """

    def __init__(self, free_op: Operator, tile_shape: tuple[int, int, int], overlap: tuple[int, int], y_free_shape: tuple[int, ...]):
        super().__init__()
        self.free_op = free_op
        self.tile_shape = tuple(tile_shape)
        self.oh, self.ow = overlap
        C, h, w = self.tile_shape
        known = torch.zeros(h, w, dtype=torch.bool)
        known[: self.oh] = True
        known[:, : self.ow] = True
        self.register_buffer("known", known, persistent=False)
        self.n_known = int(known.sum()) * C
        self.y_free_shape = tuple(y_free_shape)
        self.n_free = math.prod(self.y_free_shape)

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y_F (B, *y_free_shape), x_O (B, C, n_O))`` of a tile measurement."""
        B = y.shape[0]
        return y[:, : self.n_free].reshape((B,) + self.y_free_shape), y[:, self.n_free :].reshape(B, self.tile_shape[0], -1)

    def join(self, y_free: torch.Tensor, x_known: torch.Tensor) -> torch.Tensor:
        """The flat tile measurement from the free part's ``y`` and the known pixels ``(B, C, n_O)``."""
        return torch.cat([y_free.flatten(1), x_known.flatten(1)], dim=1)

    def _free(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.oh :, self.ow :]

    def _place(self, free: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        B = free.shape[0]
        out = torch.zeros((B,) + self.tile_shape, dtype=free.dtype, device=free.device)
        out[..., self.oh :, self.ow :] = free
        out[..., self.known.to(free.device)] = known.to(free.dtype)
        return out

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=4)
        return self.join(self.free_op.A(self._free(x)), x[..., self.known.to(x.device)])

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        yf, k = self.split(y)
        return self._place(self.free_op.AT(yf), k)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        yf, k = self.split(y)
        return self._place(self.free_op.pinv(yf), k)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (y_shape[0],) + self.tile_shape

    @property
    def exact_pinv(self) -> bool:
        return self.free_op.exact_pinv


def seam_stats(x: torch.Tensor, tile: int, overlap: int) -> dict[str, float]:
    """How visible tile borders are in a tiled restoration ``x`` ``(…, H, W)``.

    The borders are where one tile's new pixels meet an earlier tile's: the column (row) at the
    end of each tile's predecessor along the axis (:func:`tile_plan` with ``tile`` and
    ``overlap``). Returns the mean absolute jump ``|x[j] − x[j−1]|`` between horizontally and
    vertically adjacent pixels across those borders (``border``) and everywhere else
    (``inside``), and their ratio (about 1 when no seam shows).
    """
    H, W = x.shape[-2:]

    def borders(n: int) -> list[int]:
        return [p + o for k, (p, o) in enumerate(_axis(n, tile, overlap)) if k > 0]

    dx = (x[..., :, 1:] - x[..., :, :-1]).abs()  # jump between columns j-1 and j at index j-1
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs()
    col_b = torch.zeros(W - 1, dtype=torch.bool)
    for b in borders(W):
        col_b[b - 1] = True
    row_b = torch.zeros(H - 1, dtype=torch.bool)
    for b in borders(H):
        row_b[b - 1] = True
    border = torch.cat([dx[..., :, col_b].flatten(), dy[..., row_b, :].flatten()])
    inside = torch.cat([dx[..., :, ~col_b].flatten(), dy[..., ~row_b, :].flatten()])
    b = float(border.double().mean()) if border.numel() else float("nan")
    i = float(inside.double().mean()) if inside.numel() else float("nan")
    return {"border": b, "inside": i, "ratio": b / i if i > 0 else float("nan"), "n_border": int(border.numel())}


# ---------------------------------------------------------------------------------------------
# seeds


def sample_seed(seed: int, index: int, sample: int) -> int:
    """The recipe seed of sample ``sample`` of image ``index``.

    Sample 0 uses :func:`~invkit.evaluation.image_seed` ``(seed, index, "recipe")``, so a single
    restoration draws exactly what ``invkit eval`` draws for that image; sample ``k > 0`` uses
    ``SeedSequence(entropy=seed, spawn_key=(index, 2, k))`` (a child of the recipe stream).
    """
    from ..evaluation import STREAMS, image_seed

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
        name, index: the job's.
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
    from ..evaluation import parse_method
    from ..sampling import Recipe

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
    from ..guidance import BackProj, DDNMPlus

    g = recipe.guidance
    if isinstance(g, BackProj):
        return True
    return isinstance(g, DDNMPlus) and float(getattr(g, "sigma_y", 0.0)) == 0.0


def _quality(x_hat: torch.Tensor, x_true: torch.Tensor) -> tuple[float, float]:
    """PSNR and SSIM exactly as ``invkit eval`` measures them: the restoration quantised as SSD
    saves it (truncated) against the ground truth's own (rounded) uint8 pixels."""
    from .. import metrics
    from ..data import to_unit_range
    from ..evaluation import ground_truth_uint8

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
    size, note = _tile_size(tile, model, scale, mult, (Hp, Wp), job.task.operator, job.tileable)
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


def _run_tiles(job: Job, plan: Plan, model: Any, rec: Any, yK: torch.Tensor, mK: torch.Tensor | None, gens, progress: bool):
    """Mask-shift restoration tile by tile (see :class:`TileOperator`): (canvas, network calls)."""
    from tqdm.auto import tqdm

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
            res = rec.run(model, y_t, op, generator=gens, return_info=True)
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
    from .. import metrics

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
            res = rec.run(model, yK, op_pad, generator=gens, return_info=True, progress=progress)
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
                from .images import resize_alpha

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
    from ..evaluation import load_backbone

    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    model = load_backbone(backbone, checkpoint=checkpoint, device=device, dtype=dtype) if isinstance(backbone, str) else backbone
    job = prepare(
        image, task, backbone=model, mode="degrade" if degrade else "measured", mask=mask, kernel=kernel,
        noise_sigma=noise_sigma, operator=operator, params=params, seed=seed, index=0, dtype=data_dtype(dtype),
    )  # fmt: skip
    result = restore_batch([job], model, recipe, samples=samples, keep_samples=samples > 1, tile=tile, device=device)[0]
    return result if return_info else result.x
