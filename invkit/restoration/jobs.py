r"""One image's restoration problem: the task's operator and the measurement ``y``
(:func:`prepare`), in measured mode (the image is ``y``) or degrade mode (the image is a clean
``x`` and ``y = noise(A x)`` is drawn with the image's own seeds). See :mod:`invkit.restoration.core`
for how a :class:`Job` is run.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import attrs
import numpy as np
import torch

from ..errors import CapabilityError, ConfigError, InvalidInputError, MissingFileError
from ..evaluation import Task, get_task, image_generators, make_noise
from ..noise import Measurement
from ..operator import Operator
from ..plugins import operators_registry
from .images import ImageLike, Picture, match_channels, read_image

__all__ = [
    "LOCAL_OPERATORS",
    "TILEABLE_OPERATORS",
    "RESTORE_TASKS",
    "MODES",
    "Job",
    "prepare",
    "read_mask",
    "read_kernel",
    "batch_key",
]

#: registered operators whose ``y`` pixels each depend on one ``s × s`` block of ``x`` only
#: (an operator may also declare ``local = True``)
LOCAL_OPERATORS = frozenset({"sr_avgpool", "inpainting", "denoise", "colorization", "colorization_sr"})
#: registered operators that can be tiled (the local ones, and bicubic SR whose taps are short);
#: an operator may declare ``tileable = True``
TILEABLE_OPERATORS = LOCAL_OPERATORS | {"sr_bicubic"}

#: restore-only tasks next to the evaluation tasks (:func:`invkit.evaluation.get_task`): a user's own mask or kernel
RESTORE_TASKS = ("inpainting", "blur")

MODES = ("measured", "degrade")


# ---------------------------------------------------------------------------------------------
# tasks, masks, kernels


def _task(name: str, operator: str | None, params: Mapping[str, Any] | None):
    """The effective :class:`~invkit.evaluation.Task`: a named task, maybe with its operator replaced."""
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

    try:
        factory = operators_registry.get(name).factory
    except Exception:  # noqa: BLE001 - an unregistered name is simply not local
        return False
    return bool(getattr(factory, attr, False))


def _build_op(task, channels: int, mask: torch.Tensor | None) -> Operator:
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
        task: a task of the evaluation tasks (:func:`invkit.evaluation.get_task`) or :data:`RESTORE_TASKS`.
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
