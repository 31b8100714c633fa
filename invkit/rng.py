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
    """The generator(s) to draw from: the caller's, or a new one seeded with ``DEFAULT_SEED``.

    A list must hold one generator per sample (``batch``, when given).

    Args:
        generator: one ``torch.Generator``, a list or tuple with one per sample, or ``None``.
        device: the device of the tensors the draws are for; every generator must be on a
            device of the same type.
        batch: the batch size a list must match (``None``: not checked).

    Returns:
        The caller's generator(s), checked, or a new generator on ``device`` seeded with 0.

    Raises:
        InvalidInputError: a generator is not a ``torch.Generator``, is on another device type,
            or a list's length differs from ``batch``.
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
    """Standard normal noise of ``shape`` (batch first), from one generator or one per sample.

    With a list, sample ``i`` is drawn from ``generator[i]`` alone, so it does not depend on the
    other samples of the batch.

    Args:
        shape: the full shape, batch first.
        generator: one generator, or a list with ``shape[0]`` of them (see ``resolve``).
        dtype: the dtype of the draw.
        device: the device of the draw.

    Returns:
        A tensor of ``shape``.

    Raises:
        InvalidInputError: a list whose length is not ``shape[0]``.

    Examples:
        ```python
        import torch
        from invkit import rng

        gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
        z = rng.randn((3, 1, 8, 8), gens)
        torch.equal(z[1], rng.randn((1, 1, 8, 8), [torch.Generator().manual_seed(2)])[0])  # True
        ```
    """
    return _draw(torch.randn, shape, generator, dtype, device)


def randn_like(x: torch.Tensor, generator: GeneratorLike) -> torch.Tensor:
    """Standard normal noise of ``x``'s shape, dtype and device (see ``randn``).

    Args:
        x: the tensor whose shape, dtype and device are used.
        generator: one generator, or a list with one per sample.

    Returns:
        A tensor like ``x``.
    """
    return randn(x.shape, generator, dtype=x.dtype, device=x.device)


def rand(shape, generator: GeneratorLike, *, dtype=None, device=None) -> torch.Tensor:
    """Uniform [0, 1) noise of ``shape``, from one generator or one per sample.

    Args:
        shape: the full shape, batch first.
        generator: one generator, or a list with ``shape[0]`` of them.
        dtype: the dtype of the draw.
        device: the device of the draw.

    Returns:
        A tensor of ``shape``.
    """
    return _draw(torch.rand, shape, generator, dtype, device)
