r"""Run-time input validation for :meth:`invkit.Recipe.run`: no silent wrong results.

Before the first network call, :func:`check_run` checks ``y`` against the operator **and** the
backbone (type, dtype, device, values, shape, channels, spatial size, value range) and returns
the input shape ``x`` will have. During the run, :class:`EpsMonitor` checks every ε the network
returns: its shape at once (free) and its finiteness with one sum per call that is only read
back every few steps on a GPU (no per-step device sync). The rules, with the input that
breaks each, are listed in ``docs/recipes.md`` ("Input rules").
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, NamedTuple

import torch

from .errors import ConfigError, InvalidDTypeError, InvalidInputError, InvkitError
from .operator import Operator
from .schedule import NoiseSchedule

__all__ = [
    "check_device",
    "RunInputs", "check_run", "check_tensor_dtype", "check_y_range", "EpsMonitor", "RANGE_FACTOR", "DARK_LEVEL",
    "EPS_CHECK_EVERY",
]

#: ``y`` (and ``A⁺y``) reaching beyond this many times the value range looks like [0, 255] data.
RANGE_FACTOR = 5.0
#: a non-negative ``y`` whose darkest non-zero value is below this looks like [0, 1] data.
DARK_LEVEL = 0.02
#: how often (in network calls) a GPU run reads its accumulated finiteness flags back.
EPS_CHECK_EVERY = 16


class RunInputs(NamedTuple):
    """What :func:`check_run` hands back: ``y``, the input shape of ``x`` and the checked ``x_T``."""

    y: torch.Tensor
    x_shape: tuple[int, ...]
    x_T: torch.Tensor | None


def _first_tensor(tensors: Iterable[torch.Tensor]) -> torch.Tensor | None:
    for t in tensors:
        return t
    return None


def _module_device(obj: Any) -> torch.device | None:
    """The device of the first parameter or buffer of ``obj`` (None for a module without any)."""
    try:
        t = _first_tensor(obj.parameters())
        if t is None:
            t = _first_tensor(obj.buffers())
    except (AttributeError, TypeError):
        return None
    return None if t is None else t.device


def _name(obj: Any) -> str:
    return type(obj).__name__


def check_tensor_dtype(t: object, name: str) -> torch.Tensor:
    """A real float32/float64 tensor, or a typed error saying how to get one."""
    if not isinstance(t, torch.Tensor):
        raise InvalidDTypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.is_complex():
        raise InvalidDTypeError(
            f"{name} is complex ({t.dtype}); the recipes run on real tensors. Pass the real part "
            f"({name}.real) or stack real and imaginary parts as channels"
        )
    if not t.is_floating_point():
        raise InvalidDTypeError(
            f"{name} has dtype {t.dtype}; invkit works on floating-point tensors in [-1, 1]. "
            f"Convert with {name}.float() / 127.5 - 1 for uint8 images"
        )
    if t.dtype in (torch.float16, torch.bfloat16):
        raise InvalidDTypeError(
            f"{name} is {t.dtype}: the sampling loop needs float32 or float64 (half precision cannot hold "
            f"the small differences between neighbouring ᾱ_t). Pass {name}.float(); for a half-precision "
            f"network build the backbone with dtype='bfloat16' (autocast) instead"
        )
    return t


def _check_values(t: torch.Tensor, name: str) -> None:
    if t.ndim < 1 or t.shape[0] < 1:
        raise InvalidInputError(f"{name} must be batched (B, ...) with B >= 1; got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise InvalidInputError(f"{name} has no values (shape {tuple(t.shape)})")


def _weights_dtype(model: Any, y: torch.Tensor) -> None:
    """A Backbone with weights of another dtype than ``y`` must cast (NetBackbone does)."""
    from .models import Backbone, NetBackbone  # models imports nothing from here; keep the graph flat

    if not isinstance(model, Backbone) or isinstance(model, NetBackbone):
        return
    w = _first_tensor(p for p in model.parameters() if p.is_floating_point())
    if w is not None and w.dtype != y.dtype:
        raise InvalidDTypeError(
            f"y is {y.dtype} but the backbone's weights are {w.dtype} and {type(model).__name__} does not cast its "
            f"input; pass y.to({w.dtype}) (and op.to({w.dtype})), or wrap the network in invkit.NetBackbone, "
            f"which casts x to the weights' dtype and ε back"
        )


def _devices(model: Any, op: Operator, y: torch.Tensor) -> None:
    dev = _module_device(model)
    if dev is not None and dev != y.device:
        raise InvalidInputError(
            f"y is on {y.device} but the backbone's weights are on {dev}; move one of them: "
            f"y.to({str(dev)!r}) or model.to({str(y.device)!r})"
        )
    dev = _module_device(op)
    if dev is not None and dev != y.device:
        raise InvalidInputError(
            f"y is on {y.device} but the operator {_name(op)}'s buffers are on {dev}; move it with "
            f"op.to({str(y.device)!r})"
        )


def _op_call(op: Operator, what: str, fn: Callable[[], Any], y_shape: tuple[int, ...]) -> Any:
    """Run an operator call on ``y``'s shape, turning an untyped failure into a typed one."""
    try:
        return fn()
    except InvkitError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, KeyError) as exc:
        raise InvalidInputError(
            f"the operator {_name(op)} cannot take y of shape {y_shape} ({what} raised "
            f"{type(exc).__name__}: {exc}); y must be the operator's output A x, shaped (B, ...) as A makes it"
        ) from exc


def _shape(model: Any, op: Operator, y: torch.Tensor, allow_any_size: bool) -> tuple[int, ...]:
    y_shape = tuple(y.shape)
    x_shape = _op_call(op, "input_shape(y.shape)", lambda: op.input_shape(y_shape), y_shape)
    try:
        x_shape = tuple(int(n) for n in x_shape)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{_name(op)}.input_shape returned {x_shape!r}, not a shape") from None
    if not x_shape or x_shape[0] != y_shape[0] or min(x_shape) < 1:
        raise InvalidInputError(
            f"{_name(op)}.input_shape({y_shape}) = {x_shape}: not a batch of {y_shape[0]} non-empty inputs"
        )
    with torch.no_grad():
        probe = _op_call(op, "A", lambda: op.A(torch.zeros(x_shape, dtype=y.dtype, device=y.device)), y_shape)
    if not isinstance(probe, torch.Tensor) or tuple(probe.shape) != y_shape:
        got = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
        raise InvalidInputError(
            f"the operator {_name(op)} maps x of shape {x_shape} to {got}, not to y's shape {y_shape}; "
            f"y must be the measurement A x (did you pass the image itself?)"
        )
    if len(x_shape) < 3:  # vectors (B, d): no channel or spatial dims to check
        return x_shape
    channels = getattr(model, "channels", None)
    if channels is not None and x_shape[1] != channels:
        raise InvalidInputError(
            f"the operator {_name(op)} needs x of shape {x_shape} for y of shape {y_shape}, but the backbone "
            f"takes {channels} channel(s), not {x_shape[1]}; check the operator's channel settings "
            f"(e.g. colorization maps {channels} channels to 1)"
        )
    spatial = x_shape[2:]
    size = getattr(model, "image_size", None)
    multiple = getattr(model, "size_multiple", None)
    if size is not None and not allow_any_size:
        want = tuple(size) if isinstance(size, (tuple, list)) else (int(size),) * len(spatial)
        if spatial != want:
            raise InvalidInputError(
                f"the operator {_name(op)} needs x of size {'×'.join(map(str, spatial))} for y of shape {y_shape}, "
                f"but the backbone was trained at {'×'.join(map(str, want))}. If y is the image itself rather than "
                f"its measurement, measure it first (y = op.A(x)). To run a fully convolutional net at this size "
                f"on purpose, pass allow_any_size=True"
                + (f" (each side must be a multiple of {multiple})" if multiple else "")
            )
    if multiple is not None and any(n % multiple for n in spatial):
        raise InvalidInputError(
            f"x would be {'×'.join(map(str, spatial))}, but the backbone needs every side to be a multiple of "
            f"{multiple} (its total downsampling); pad the image to a multiple of {multiple} first"
        )
    return x_shape


def check_y_range(y: torch.Tensor, op: Operator, value_range: tuple[float, float]) -> None:
    r"""Catch a ``y`` in [0, 255] or [0, 1] given where [−1, 1] data was meant.

    Applies to image-shaped ``y`` (``ndim >= 3``). Two rules, tuned for a low false-alarm rate:

    - **[0, 255]**: ``max|y|`` *and* ``max|A⁺y|`` both exceed ``RANGE_FACTOR`` (5) times the range's
      half-width. A⁺y brings y back to image space, so an operator with a large gain (its y legitimately
      large) does not trigger it, and noise of any sensible level (σ ≤ 1) cannot reach it.
    - **[0, 1]**: in every sample, the non-zero values are all in ``[0, hi + 0.02]``, the darkest of
      them is below ``DARK_LEVEL`` (0.02) and the brightest above half of ``hi``. A [0, 1] photo has
      near-black pixels at ~0; a [−1, 1] image would need every pixel at or above mid-grey *and* its
      darkest exactly there, which we have not seen in natural images. Exact zeros are ignored
      (masked pixels). A noisy [0, 1] y (which has negative values) is not caught.

    Raises:
        InvalidInputError: with the conversion to apply.
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    if y.ndim < 3 or not hi > lo:
        return
    half = (hi - lo) / 2
    mid = (hi + lo) / 2
    flat = y.detach().reshape(y.shape[0], -1)
    peak = float((flat - mid).abs().max())
    if peak > RANGE_FACTOR * half:
        with torch.no_grad():
            back = _op_call(op, "pinv", lambda: op.pinv(y.detach()), tuple(y.shape))
        if float((back - mid).abs().max()) > RANGE_FACTOR * half:
            raise InvalidInputError(
                f"y reaches {peak + mid:.4g}, far outside the backbone's range [{lo:g}, {hi:g}]: it looks like "
                f"[0, 255] pixel values. Convert the image with x / 127.5 - 1 before measuring it (or y / 127.5 - "
                f"op.A(ones) for a y given directly); pass check_range=False if this range is intended"
            )
        return
    if lo >= 0:
        return
    nz = flat != 0
    big = torch.finfo(flat.dtype).max
    darkest = torch.where(nz, flat, torch.full_like(flat, big)).amin(dim=1)
    brightest = torch.where(nz, flat, torch.full_like(flat, -big)).amax(dim=1)
    if bool(((darkest >= 0) & (darkest < DARK_LEVEL) & (brightest > hi / 2) & (brightest <= hi + 0.02)).all()):
        raise InvalidInputError(
            f"every sample of y lies in [0, {float(brightest.max()):.3g}] with near-black values at 0: it looks like "
            f"[0, 1] data, but the backbone works in [{lo:g}, {hi:g}]. Convert the image with 2·x − 1 before "
            f"measuring it (for a y given directly: 2·y − op.A(torch.ones_like(x))); pass check_range=False if "
            f"y really is a bright [{lo:g}, {hi:g}] image"
        )


def check_run(
    model: Any,
    y: object,
    op: object,
    *,
    x_T: object = None,
    from_noise: bool,
    allow_any_size: bool = False,
    check_range: bool = True,
) -> RunInputs:
    """Every check :meth:`invkit.Recipe.run` makes before its first network call.

    Args:
        model: the backbone (``eps = model(x, t)`` with a ``schedule``).
        y: the measurement.
        op: the operator.
        x_T: the starting noise of a from-noise recipe, or None.
        from_noise: whether the recipe starts from noise (has no inverter).
        allow_any_size: run a backbone with a fixed ``image_size`` at another size.
        check_range: check ``y``'s value range against the backbone's ``value_range``.

    Returns:
        ``y``, the shape of ``x`` and ``x_T`` on ``y``'s device and dtype.

    Raises:
        InvalidDTypeError: ``y`` or ``x_T`` is not a real float32/float64 tensor.
        InvalidInputError: anything else: see ``docs/recipes.md``, "Input rules".
    """
    y = check_tensor_dtype(y, "y")
    _check_values(y, "y")
    if not isinstance(getattr(model, "schedule", None), NoiseSchedule):
        raise InvalidInputError(
            f"model must be a Backbone (eps = model(x, t)) with a NoiseSchedule in .schedule; "
            f"{type(model).__name__} has none"
        )
    if not isinstance(op, Operator):
        raise InvalidInputError(f"op must be an invkit Operator, got {type(op).__name__}")
    _devices(model, op, y)
    _weights_dtype(model, y)
    if not bool(torch.isfinite(y).all()):
        raise InvalidInputError("y contains NaN or Inf values")
    x_shape = _shape(model, op, y, allow_any_size)
    if x_T is not None:
        if not from_noise:
            raise InvalidInputError(
                "x_T is the starting noise of a recipe without an inverter; this recipe starts from A⁺y"
            )
        x_T = check_tensor_dtype(x_T, "x_T")
        if x_T.ndim >= 1 and x_T.shape[0] != y.shape[0]:
            raise InvalidInputError(f"x_T has batch size {x_T.shape[0]} but y has {y.shape[0]}")
        if tuple(x_T.shape) != x_shape:
            raise InvalidInputError(f"x_T must have x's shape {x_shape} (the operator's input), got {tuple(x_T.shape)}")
        x_T = x_T.to(device=y.device, dtype=y.dtype)
        if not bool(torch.isfinite(x_T).all()):
            raise InvalidInputError("x_T contains NaN or Inf values")
    value_range = getattr(model, "value_range", (-1.0, 1.0))
    if check_range and value_range is not None:
        check_y_range(y, op, value_range)
    return RunInputs(y, x_shape, x_T)


class EpsMonitor:
    """Checks every ε of a run: the shape at once, the finiteness without a per-step GPU sync.

    Each call adds one reduction, the sum of ε: it is finite exactly when every value is (NaN and
    Inf propagate; a finite overflow needs |ε| near 1e38/numel in float32, itself a broken net).
    A sum is one pass with no temporary, cheaper than ``isfinite(ε).all()``. On the CPU it is read
    at once; on a GPU the sums stay on the device and are read every :data:`EPS_CHECK_EVERY` calls
    and at the end of each phase (:meth:`flush`), so a bad ε stops the run at most that many
    calls later; the error still names the first bad call's phase, step and t.
    """

    def __init__(self, device: torch.device):
        self.lazy = device.type != "cpu"
        self._sums: list[torch.Tensor] = []
        self._where: list[tuple[str, int, int]] = []

    def __call__(self, eps: object, x: torch.Tensor, phase: str, index: int, t: int) -> torch.Tensor:
        if not isinstance(eps, torch.Tensor) or eps.shape != x.shape:
            got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
            raise InvalidInputError(
                f"the backbone returned ε of shape {got} for x of shape {tuple(x.shape)} at {phase} step {index} "
                f"(t = {t}); ε must have x's shape (check the backbone's channels / learned-sigma setting)"
            )
        total = eps.detach().sum()
        if not self.lazy:
            if not math.isfinite(float(total.real if total.is_complex() else total)):
                self._raise(phase, index, t)
            return eps
        self._sums.append(total)
        self._where.append((phase, index, t))
        if len(self._sums) >= EPS_CHECK_EVERY:
            self.flush()
        return eps

    def flush(self) -> None:
        """Read the pending flags back (one sync) and raise for the first bad ε."""
        if not self._sums:
            return
        ok = torch.isfinite(torch.stack(self._sums))
        where, self._sums, self._where = self._where, [], []
        if bool(ok.all()):
            return
        first = int((~ok).nonzero()[0, 0])
        self._raise(*where[first])

    @staticmethod
    def _raise(phase: str, index: int, t: int) -> None:
        raise InvalidInputError(
            f"the backbone returned a non-finite ε (NaN or Inf) at {phase} step {index} (t = {t}); the run is "
            f"stopped. Check the weights (a half-precision overflow?) and that x is in the backbone's range"
        )


def check_device(text: str | torch.device, flag: str = "--device") -> torch.device:
    """``text`` as a :class:`torch.device` that this machine has.

    Args:
        text: ``cpu``, ``cuda``, ``cuda:K`` or ``mps`` (or a device).
        flag: the option it came from, for the message.

    Returns:
        The device.

    Raises:
        ConfigError: not a device name (``potato``), or a device that is not here (``cuda`` with
            no GPU, ``cuda:9`` with two).
    """
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{flag} {text}: unknown device; use cpu, cuda, cuda:K or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{flag} {text}: CUDA is not available here; use {flag} cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{flag} {text}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{flag} {text}: MPS is not available here; use {flag} cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{flag} {text}: invkit runs on cpu, cuda[:K] or mps, not {device.type!r}")
    return device

