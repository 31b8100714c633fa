"""The only way ``invkit tune`` reads images: training data, never test data.

Tuning on the images a method is then scored on would overstate it, so the guard is in code,
not in a convention: :func:`load_training_images` takes ``fashion-train`` or a folder its caller
declares as training data, refuses ``fashion-test`` and any folder whose path names a test set,
has no ``offset`` (it always reads images ``0 .. n − 1``), and names the Fashion-MNIST split as the
literal ``"train"``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .. import data
from ..errors import ConfigError, InvalidInputError

__all__ = ["TRAINING_DATASET", "TestDataError", "check_training_dataset", "load_training_images"]

#: the one named dataset tune reads
TRAINING_DATASET = "fashion-train"
# a path component naming held-out data: test, testing, test_set, val, valid, validation, eval
_HELD_OUT = re.compile(r"(^|[^a-z])(test|testing|val|valid|validation|eval|holdout)([^a-z]|$)", re.IGNORECASE)


class TestDataError(ConfigError):
    """Tuning was asked to read test (held-out) images."""

    __test__ = False  # not a pytest class


def check_training_dataset(dataset: str, *, declared_training: bool = False) -> str:
    """``dataset`` if tune may read it, else a :class:`TestDataError`.

    Args:
        dataset: ``fashion-train``, or a folder of images.
        declared_training: the caller declares the folder as training data (``--train-folder``).

    Raises:
        TestDataError: ``fashion-test`` (or any other named split), an undeclared folder, or a
            folder whose path has a component naming held-out data (``test``, ``val``, ``eval``...).
    """
    if not isinstance(dataset, str) or not dataset:
        raise TestDataError(f"tune needs a training dataset name, got {dataset!r}")
    if dataset == TRAINING_DATASET and not declared_training:
        return dataset
    if not declared_training:
        raise TestDataError(
            f"tune reads training images only: {dataset!r} is not {TRAINING_DATASET!r}; a folder of your own "
            "training images goes in --train-folder (tuning on test images would overstate the result)"
        )
    path = Path(dataset)
    parts = [p for p in path.resolve().parts + path.parts if p not in ("/", "")]
    named = [p for p in parts if _HELD_OUT.search(p)]
    if named:
        raise TestDataError(f"--train-folder {dataset!r}: its path names held-out data ({named[0]!r}); tune reads training images only")
    if not path.is_dir():
        raise ConfigError(f"--train-folder {dataset!r} is not an existing folder of images")
    return dataset


def load_training_images(
    dataset: str, n: int, *, declared_training: bool = False, channels: int | None = None, size: int | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Training images ``0 .. n − 1`` of ``dataset`` in [-1, 1] and their names.

    Raises:
        TestDataError: see :func:`check_training_dataset`.
        InvalidInputError: fewer than ``n`` images.
    """
    check_training_dataset(dataset, declared_training=declared_training)
    if dataset == TRAINING_DATASET and not declared_training:
        x, _ = data.fashion_mnist("train", limit=n)  # the split is this literal, never a parameter
        names = [f"{TRAINING_DATASET}-{i:05d}" for i in range(x.shape[0])]
    else:
        x, files = data.load_image_folder(Path(dataset), size=size, channels=channels or 3, limit=n)
        names = [str(f) for f in files]
    if x.shape[0] < n:
        raise InvalidInputError(f"training dataset {dataset!r} has {x.shape[0]} images, fewer than the {n} the rungs need")
    return x[:n], names[:n]
