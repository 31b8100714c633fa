"""Randomness without global state: every draw takes a caller's :class:`torch.Generator`.

``generator`` may be one generator for the whole batch, or a list with one generator per sample
(as diffusers allows): then sample ``i`` draws only from ``generator[i]``, so a sample's result
does not depend on which other samples share its batch (any subset of an evaluation reproduces).
When a caller passes no generator, a fresh one seeded with 0 on the tensor's device is used, so a
call is still reproducible and never touches (or depends on) torch's global RNG.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch

from .errors import InvalidInputError

DEFAULT_SEED = 0

GeneratorLike = Union[torch.Generator, Sequence[torch.Generator]]


def _check_one(generator: object, device: torch.device) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise InvalidInputError(f"generator must be a torch.Generator (or a list of them), got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise InvalidInputError(
            f"generator is on {generator.device} but the tensors are on {device}; "
            f"create it with torch.Generator({device.type!r}).manual_seed(seed)"
        )
    return generator


def resolve(generator: GeneratorLike | None, device: torch.device | str, batch: int | None = None) -> GeneratorLike:
    """The generator(s) to draw from: the caller's, or a new one seeded with :data:`DEFAULT_SEED`.

    A list must hold one generator per sample (``batch``, when given).
    """
    device = torch.device(device)
    if generator is None:
        return torch.Generator(device=device).manual_seed(DEFAULT_SEED)
    if isinstance(generator, (list, tuple)):
        if batch is not None and len(generator) != batch:
            raise InvalidInputError(f"got {len(generator)} generators for a batch of {batch}; pass one per sample or a single one")
        return [_check_one(g, device) for g in generator]
    return _check_one(generator, device)


def _draw(fn, shape, generator: GeneratorLike, dtype, device) -> torch.Tensor:
    shape = tuple(shape)
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise InvalidInputError(f"got {len(generator)} generators for a batch of {shape[0]}")
        return torch.stack([fn(shape[1:], generator=g, dtype=dtype, device=device) for g in generator])
    return fn(shape, generator=generator, dtype=dtype, device=device)


def randn(shape, generator: GeneratorLike, *, dtype=None, device=None) -> torch.Tensor:
    """Standard normal noise of ``shape`` (batch first), from one generator or one per sample."""
    return _draw(torch.randn, shape, generator, dtype, device)


def randn_like(x: torch.Tensor, generator: GeneratorLike) -> torch.Tensor:
    """Standard normal noise of ``x``'s shape, dtype and device (see :func:`randn`)."""
    return randn(x.shape, generator, dtype=x.dtype, device=x.device)


def rand(shape, generator: GeneratorLike, *, dtype=None, device=None) -> torch.Tensor:
    """Uniform [0, 1) noise of ``shape``, from one generator or one per sample."""
    return _draw(torch.rand, shape, generator, dtype, device)
