r"""Per-image seeds: image ``i`` of an evaluation draws every random number from its own generators.

So a result does not depend on the batch size, on ``--offset``/``--n``, on sharding or on which
other methods run: any subset reproduces the same per-image numbers (up to the last bits of
batched float arithmetic), and every method restoring image ``i`` starts from the same seed
(common random numbers).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["STREAMS", "image_seed", "image_generators"]

#: the independent random streams of one image
STREAMS = ("operator", "noise", "recipe")


def image_seed(seed: int, index: int, stream: str) -> int:
    r"""The 63-bit seed of image ``index``'s random ``stream`` in an evaluation seeded ``seed``.

    ``numpy.random.SeedSequence(entropy=seed, spawn_key=(index, k))`` with ``k`` the stream's
    position in :data:`STREAMS`: ``operator`` (a mask or box position, always drawn on the CPU so
    masks do not depend on the device), ``noise`` (the measurement noise) and ``recipe`` (the
    sampler's draws). It depends on nothing else, so any subset of an evaluation reproduces.

    Args:
        seed: the evaluation's base seed (>= 0).
        index: the image's index in the dataset (>= 0).
        stream: one of :data:`STREAMS`.

    Returns:
        A seed in ``[0, 2**63)``.

    Raises:
        ConfigError: an unknown stream or a negative seed or index.
    """
    if stream not in STREAMS:
        raise ConfigError(f"unknown random stream {stream!r}; use one of {', '.join(STREAMS)}")
    if int(seed) < 0 or int(index) < 0:
        raise ConfigError(f"seed and image index must be >= 0, got seed={seed}, index={index}")
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index), STREAMS.index(stream)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def image_generators(seed: int, indices: Sequence[int], stream: str, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One :class:`torch.Generator` per image on ``device``, seeded with :func:`image_seed`."""
    return [torch.Generator(device=device).manual_seed(image_seed(seed, i, stream)) for i in indices]
