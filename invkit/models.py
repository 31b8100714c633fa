r"""The ``Backbone`` protocol: a noise predictor ``eps = model(x_t, t)``.

``t`` is the integer timestep in ``0..T−1`` of the backbone's own :class:`NoiseSchedule` (no
rescaling: guided-diffusion's ``rescale_timesteps=False``, DDRM/DDNM pass the raw index too). It
may be a Python int or an integer tensor of shape ``(B,)``. A backbone also tells its
``schedule``, ``image_size`` (``None`` for a size-agnostic one) and ``channels``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import InvalidInputError
from .schedule import NoiseSchedule

__all__ = ["Backbone", "NetBackbone", "as_timestep_tensor"]


def as_timestep_tensor(t: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``t`` as an int64 tensor of shape ``(B,)`` on ``x``'s device."""
    if isinstance(t, torch.Tensor):
        t = t.to(device=x.device, dtype=torch.long)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise InvalidInputError(f"timestep tensor must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        return t
    return torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)


class Backbone(nn.Module):
    """Base class of noise predictors. Subclasses implement ``forward(x, t) -> eps``."""

    schedule: NoiseSchedule
    image_size: int | None = None
    channels: int = 3

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
    :func:`torch.autocast` and returns ε in the input's dtype.
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: NoiseSchedule,
        *,
        image_size: int | None,
        channels: int = 3,
        autocast: torch.dtype | None = None,
    ):
        super().__init__()
        self.net = net
        self.schedule = schedule
        self.image_size = image_size
        self.channels = channels
        self.autocast = autocast

    def forward(self, x: torch.Tensor, t: int | torch.Tensor, **kwargs: Any) -> torch.Tensor:
        tt = as_timestep_tensor(t, x)
        if self.autocast is not None:
            with torch.autocast(device_type=x.device.type, dtype=self.autocast):
                out = self.net(x, tt, **kwargs)
        else:
            out = self.net(x, tt, **kwargs)
        return out[:, : self.channels].to(x.dtype)
