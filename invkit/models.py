r"""The ``Backbone`` protocol: a noise predictor ``eps = model(x_t, t)``.

``t`` is the integer timestep in ``0..T−1`` of the backbone's own :class:`NoiseSchedule` (no
rescaling: guided-diffusion's ``rescale_timesteps=False``, DDRM/DDNM pass the raw index too). It
may be a Python int or an integer tensor of shape ``(B,)``. A backbone also tells its
``schedule``, ``image_size`` (``None`` for a size-agnostic one), ``size_multiple`` (the sizes a
fully convolutional net can run at), ``channels`` and ``value_range`` (the data range it was
trained on; ``None`` for data that is not an image). :meth:`invkit.Recipe.run` checks ``y``
against these before the first network call (``docs/recipes.md``, "Input rules").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import InvalidInputError
from .schedule import NoiseSchedule

__all__ = ["Backbone", "NetBackbone", "as_timestep_tensor"]


def _timestep_range(lo: int, hi: int, T: int | None) -> None:
    if lo < 0 or (T is not None and hi >= T):
        bad = lo if lo < 0 else hi
        where = f"0..{T - 1}" if T is not None else "0 or more"
        raise InvalidInputError(f"timestep {bad} is outside the schedule's range {where}")


def as_timestep_tensor(t: int | torch.Tensor, x: torch.Tensor, T: int | None = None) -> torch.Tensor:
    """``t`` as an int64 tensor of shape ``(B,)`` on ``x``'s device.

    Args:
        t: an integer timestep (Python or NumPy int, or an integral float such as ``3.0``), or a
            tensor of shape ``()`` or ``(B,)`` with integer values.
        x: the batch ``t`` belongs to (its batch size and device).
        T: the schedule's number of timesteps; when given, every ``t`` must lie in ``[0, T)``.

    Returns:
        An int64 tensor of shape ``(B,)``.

    Raises:
        InvalidInputError: ``t`` is not an integer (``2.5``, a bool, a string), is negative or
            ``>= T``, or has the wrong shape. A tensor ``t`` is checked on its values, which syncs
            a GPU; the recipes pass Python ints, which cost nothing to check.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise InvalidInputError(f"x must be a batched tensor (B, ...), got {type(x).__name__}")
    B = x.shape[0]
    if isinstance(t, torch.Tensor):
        if t.is_complex() or t.dtype == torch.bool:
            raise InvalidInputError(f"timestep tensor must hold integers, got dtype {t.dtype}")
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != B):
            raise InvalidInputError(f"timestep tensor must have shape ({B},) or (), got {tuple(t.shape)}")
        if t.numel() > 0:
            if t.is_floating_point():
                if not bool((torch.isfinite(t) & (t == t.round())).all()):
                    raise InvalidInputError(f"timesteps must be integers, got {t.flatten()[:4].tolist()}…")
            _timestep_range(int(t.min()), int(t.max()), T)
        t = t.to(device=x.device, dtype=torch.long)
        return t.expand(B) if t.ndim == 0 else t
    if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"timestep must be an integer (or an integer tensor), got {t!r}")
    if isinstance(t, (float, np.floating)):
        if not math.isfinite(t) or t != int(t):
            raise InvalidInputError(f"timestep must be an integer, got {t!r}")
    ti = int(t)
    _timestep_range(ti, ti, T)
    return torch.full((B,), ti, dtype=torch.long, device=x.device)


class Backbone(nn.Module):
    """Base class of noise predictors. Subclasses implement ``forward(x, t) -> eps``.

    Attributes:
        schedule: the :class:`NoiseSchedule` ``t`` indexes.
        image_size: the side the net was trained at (``x`` must be ``image_size`` square in a
            recipe run unless the caller passes ``allow_any_size=True``), or ``None`` for a
            size-agnostic backbone.
        size_multiple: the multiple of the net's total downsampling (e.g. 8 for a U-Net with three
            2× downsamplings): every spatial side must be a multiple of it, whatever the size; a
            constraint, not a permission to run off ``image_size``. ``None``: no constraint.
        channels: the size of dim 1 of image-shaped ``x`` (``(B, C, ...)``).
        value_range: the data range (``(-1.0, 1.0)`` for images); ``None`` turns the range check
            of ``y`` off (data that is not an image, e.g. the Gaussian-mixture vectors).
    """

    schedule: NoiseSchedule
    image_size: int | None = None
    size_multiple: int | None = None
    channels: int = 3
    value_range: tuple[float, float] | None = (-1.0, 1.0)

    def forward(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        """The device of the first parameter (or buffer); CPU for a backbone with neither."""
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the first parameter; float32 for a backbone without parameters."""
        for p in self.parameters():
            return p.dtype
        return torch.float32


class NetBackbone(Backbone):
    r"""Wraps a network ``net(x, t)`` whose first ``channels`` output channels are ε.

    With ``learn_sigma`` nets (guided-diffusion ADM: 6 output channels, ε then the variance
    interpolation), only the first ``channels`` are kept, as DDRM, DDNM and SSD do (``et[:, :3]``).
    ``net`` is registered as the submodule ``net``; its ``state_dict`` keys are the checkpoint's
    (use ``backbone.net.load_state_dict``).

    ``autocast`` (``torch.bfloat16`` / ``torch.float16`` / ``None``) runs the net under
    :func:`torch.autocast`. ``x`` is cast to the net's parameter dtype on the way in and ε back to
    ``x``'s dtype on the way out, so a float64 recipe runs on a float32 net. ``t`` must be an
    integer in ``[0, T)`` (:func:`as_timestep_tensor`). ``size_multiple``: see :class:`Backbone`.
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: NoiseSchedule,
        *,
        image_size: int | None,
        channels: int = 3,
        autocast: torch.dtype | None = None,
        size_multiple: int | None = None,
    ):
        super().__init__()
        if size_multiple is not None and (isinstance(size_multiple, bool) or not isinstance(size_multiple, int) or size_multiple < 1):
            raise InvalidInputError(f"size_multiple must be a positive integer or None, got {size_multiple!r}")
        self.size_multiple = size_multiple
        self.net = net
        self.schedule = schedule
        self.image_size = image_size
        self.channels = channels
        self.autocast = autocast

    def forward(self, x: torch.Tensor, t: int | torch.Tensor, **kwargs: Any) -> torch.Tensor:
        tt = as_timestep_tensor(t, x, self.schedule.T)
        dtype = self.dtype
        xin = x if x.dtype == dtype or not x.is_floating_point() else x.to(dtype)
        if self.autocast is not None:
            with torch.autocast(device_type=x.device.type, dtype=self.autocast):
                out = self.net(xin, tt, **kwargs)
        else:
            out = self.net(xin, tt, **kwargs)
        return out[:, : self.channels].to(x.dtype)
