"""Backbones say which sizes their U-Net takes: a multiple of its total downsampling."""

from __future__ import annotations

import pytest
import torch

import invkit


@pytest.mark.parametrize(
    ("name", "multiple"),
    [("fashion32", 8), ("adm-imagenet256-uncond", 32), ("ddpm-celebahq256", 32), ("ddpm-cifar10-32", 8)],
)
def test_size_multiple_is_the_total_downsampling(name, multiple):
    kw = {} if name == "fashion32" else {"device": "meta"}
    assert invkit.backbone(name, **kw).size_multiple == multiple


def test_fashion32_runs_at_a_multiple_and_refuses_other_sizes():
    model = invkit.backbone("fashion32")
    with torch.inference_mode():
        assert model(torch.zeros(1, 1, 48, 24), 10).shape == (1, 1, 48, 24)
    op = invkit.operator("denoise")
    recipe = invkit.recipe("ssd-30", task="denoise", inversion_steps=2, generation_steps=2)
    y = torch.zeros(1, 1, 44, 24)
    with pytest.raises(invkit.InvalidInputError, match="multiple"):
        recipe.run(model, y, op, allow_any_size=True)
