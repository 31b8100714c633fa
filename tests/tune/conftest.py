"""Fixtures for the tuning tests: the evaluation tests' tiny backbone, a folder of training
images (under a path that names no test set, which tune would refuse), a presets-file switch."""

from __future__ import annotations

import os

import numpy as np
import pytest

from eval.conftest import TINY, tiny, tiny_backbone  # noqa: F401 - the fixture is re-exported
from invkit import plugins


@pytest.fixture
def train_folder(tmp_path_factory):
    """Twelve 16×16 greyscale PNGs with smooth random content, in a folder named ``train-images``."""
    from PIL import Image

    root = tmp_path_factory.mktemp("train-images")
    rng = np.random.default_rng(1)
    for i in range(12):
        base = rng.random((4, 4))
        img = np.kron(base, np.ones((4, 4))) * 200 + rng.random((16, 16)) * 55
        Image.fromarray(img.astype(np.uint8), "L").save(root / f"img{i:02d}.png")
    return root


@pytest.fixture
def use_presets(monkeypatch):
    """``use_presets(path)``: point ``$INVKIT_PRESETS`` at ``path`` and reload the recipe registry."""

    def use(*paths):
        monkeypatch.setenv("INVKIT_PRESETS", os.pathsep.join(str(p) for p in paths))
        plugins._reset_registries()  # the recipes hook reads the variable when the registry loads

    yield use
    monkeypatch.delenv("INVKIT_PRESETS", raising=False)
    plugins._reset_registries()
