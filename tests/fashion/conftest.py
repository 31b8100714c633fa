"""Fixtures for the fashion32 tests: one CPU thread and a tiny synthetic Fashion-MNIST folder."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    # on the shared 2-core box, two OpenMP threads waiting on each other make tiny convs crawl
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope="package")
def fake_fashion(tmp_path_factory) -> Path:
    """Two classes told apart by brightness of a centre square: learnable in a few steps."""
    root = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 32)):
        labels = (np.arange(n) % 2).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        images[labels == 1, 8:20, 8:20] += 200
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root
