"""Fixtures for the evaluation tests: a tiny registered backbone and a folder of small images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from invkit import hookimpl
from invkit.models import NetBackbone
from invkit.plugins import register_plugin, unregister_plugin
from invkit.schedule import NoiseSchedule

TINY = "eval-tiny"


class _TinyEps(nn.Module):
    """A 3×3 convolution whose output scale depends on t: cheap, deterministic, batch-invariant."""

    def __init__(self, channels: int, seed: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.conv.weight.copy_(0.2 * torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * (0.5 + t.to(x.dtype).reshape(-1, 1, 1, 1) / 1000)


def tiny_backbone(*, channels: int = 1, seed: int = 0, device: str = "cpu", dtype: torch.dtype | None = None) -> NetBackbone:
    """A size-agnostic random backbone on the linear schedule (the evaluation only needs eps)."""
    model = NetBackbone(_TinyEps(channels, seed), NoiseSchedule.linear(1000), image_size=None, channels=channels)
    return model.to(device=device, dtype=dtype if dtype in (torch.float32, torch.float64) else torch.float32)


class _Plugin:
    @hookimpl
    def invkit_register_backbones(self, register):
        register(TINY, tiny_backbone, description="tiny random conv backbone (evaluation tests)")


@pytest.fixture
def tiny():
    """Registers the backbone ``eval-tiny`` for the test's duration."""
    name = register_plugin(_Plugin(), "eval-tests")
    try:
        yield TINY
    finally:
        unregister_plugin(name)


@pytest.fixture
def folder(tmp_path):
    """Six 16×16 greyscale PNGs with smooth random content."""
    from PIL import Image

    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        base = rng.random((4, 4))
        img = np.kron(base, np.ones((4, 4))) * 200 + rng.random((16, 16)) * 55
        Image.fromarray(img.astype(np.uint8), "L").save(root / f"img{i}.png")
    return root
