"""Randomness without global state: every draw takes a caller's :class:`torch.Generator`.

When a caller passes no generator, a fresh one seeded with 0 on the tensor's device is used, so
a call is still reproducible and never touches (or depends on) torch's global RNG.
"""

from __future__ import annotations

import torch

from .errors import InvalidInputError

DEFAULT_SEED = 0


def resolve(generator: torch.Generator | None, device: torch.device | str) -> torch.Generator:
    """The generator to draw from: the caller's, or a new one seeded with :data:`DEFAULT_SEED`."""
    device = torch.device(device)
    if generator is None:
        return torch.Generator(device=device).manual_seed(DEFAULT_SEED)
    if not isinstance(generator, torch.Generator):
        raise InvalidInputError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise InvalidInputError(
            f"generator is on {generator.device} but the tensors are on {device}; "
            f"create it with torch.Generator({device.type!r}).manual_seed(seed)"
        )
    return generator


def randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise of ``x``'s shape, dtype and device, drawn from ``generator``."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def randn(shape, generator: torch.Generator, *, dtype=None, device=None) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
