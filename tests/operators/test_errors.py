"""Bad input to the built-in operators raises typed invkit errors whose message says what to fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import invkit
from invkit import ConfigError, InvalidDTypeError, InvalidInputError
from invkit_operators import box_mask, random_pixel_mask


def x4(*shape, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)


@pytest.mark.parametrize(
    ("name", "params", "shape"),
    [
        ("sr_bicubic", {"scale": 2}, (3, 8, 8)),
        ("sr_avgpool", {"scale": 2}, (1, 1, 3, 8, 8)),
        ("deblur_gauss", {"sigma": 1.0}, (8, 8)),
        ("deblur_gauss_ddrm", {}, (3, 8, 8)),
        ("colorization", {}, (3, 8, 8)),
        ("blur_fft", {"kernel": torch.ones(3, 3)}, (3, 8, 8)),
        ("inpainting", {"mask": torch.ones(8, 8)}, (3, 8, 8)),
    ],
)
def test_wrong_rank(name, params, shape):
    with pytest.raises(InvalidInputError, match=r"dimensions"):
        invkit.operator(name, **params).A(x4(*shape))


def test_wrong_channel_count():
    with pytest.raises(InvalidInputError, match=r"3 channel"):
        invkit.operator("colorization").A(x4(2, 1, 4, 4))
    with pytest.raises(InvalidInputError, match=r"1 channel"):
        invkit.operator("colorization").pinv(x4(2, 3, 4, 4))
    with pytest.raises(InvalidInputError, match=r"3 channel"):
        invkit.operator("deblur_gauss_ddrm").A(x4(2, 1, 8, 8))
    with pytest.raises(InvalidInputError, match=r"1 channel"):
        invkit.operator("deblur_gauss_ddrm", channels=1).pinv(x4(2, 3, 8, 8))


@pytest.mark.parametrize("name", ["sr_bicubic", "sr_avgpool", "colorization_sr"])
@pytest.mark.parametrize("hw", [(30, 32), (32, 30)])
def test_scale_must_divide_the_image(name, hw):
    C = 3 if name == "colorization_sr" else 1
    with pytest.raises(InvalidInputError, match=r"not a multiple of the scale; crop or pad"):
        invkit.operator(name, scale=4).A(x4(1, C, *hw))


@pytest.mark.parametrize("scale", [0, -2, 1.5, "2", True, None])
@pytest.mark.parametrize("name", ["sr_bicubic", "sr_avgpool"])
def test_bad_scale(name, scale):
    with pytest.raises(ConfigError, match=r"scale must be an integer >= 1"):
        invkit.operator(name, scale=scale)


@pytest.mark.parametrize("mask", [torch.ones(8), torch.ones(2, 2, 8, 8), torch.ones(1, 1, 1, 8, 8), torch.ones(0, 0)])
def test_mask_of_wrong_shape(mask):
    with pytest.raises(InvalidInputError, match=r"mask must have shape"):
        invkit.operator("inpainting", mask=mask)


@pytest.mark.parametrize("mask", [torch.full((4, 4), 0.5), torch.arange(16.0).reshape(4, 4), 2 * torch.ones(4, 4)])
def test_mask_not_binary(mask):
    with pytest.raises(InvalidInputError, match=r"binary"):
        invkit.operator("inpainting", mask=mask)


def test_mask_must_be_an_array():
    with pytest.raises(InvalidDTypeError, match=r"mask must be a tensor or numpy array"):
        invkit.operator("inpainting", mask=[[1, 0], [0, 1]])


def test_image_must_match_the_mask():
    op = invkit.operator("inpainting", mask=torch.ones(8, 8))
    with pytest.raises(InvalidInputError, match=r"is \(8, 6\) pixels but the mask is \(8, 8\)"):
        op.A(x4(1, 3, 8, 6))
    per_sample = invkit.operator("inpainting", mask=torch.ones(2, 1, 8, 8))
    with pytest.raises(InvalidInputError, match=r"batch size 3 .* 2 per-sample masks"):
        per_sample.pinv(x4(3, 3, 8, 8))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("method", ["A", "AT", "pinv"])
def test_nan_and_inf_inputs(bad, method):
    op = invkit.operator("sr_bicubic", scale=2)
    t = x4(1, 1, 8, 8)
    t[0, 0, 3, 3] = bad
    with pytest.raises(InvalidInputError, match=r"NaN or Inf"):
        getattr(op, method)(t)


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool])
@pytest.mark.parametrize(
    ("name", "params", "shape"),
    [
        ("sr_bicubic", {"scale": 2}, (1, 3, 8, 8)),
        ("colorization", {}, (1, 3, 8, 8)),
        ("denoise", {}, (1, 3, 8, 8)),
        ("matrix", {"M": np.eye(4)}, (1, 4)),
        ("blur_fft", {"kernel": torch.ones(2, 2)}, (1, 1, 8, 8)),
    ],
)
def test_integer_tensors(name, params, shape, dtype):
    with pytest.raises(InvalidDTypeError, match=r"floating-point"):
        invkit.operator(name, **params).A(torch.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("kernel_size", [4, 0, -3, 2.5, True, "9"])
def test_deblur_gauss_bad_kernel_size(kernel_size):
    with pytest.raises(ConfigError, match=r"kernel_size must be"):
        invkit.operator("deblur_gauss", kernel_size=kernel_size, sigma=1.0)


@pytest.mark.parametrize("kernel_size", [1, 8])
def test_deblur_gauss_ddrm_bad_kernel_size(kernel_size):
    """DDRM's loop drops the last tap, so one tap would leave nothing: at least 3, and odd."""
    with pytest.raises(ConfigError, match=r"kernel_size must be"):
        invkit.operator("deblur_gauss_ddrm", kernel_size=kernel_size)


@pytest.mark.parametrize("sigma", [0, -1.0, float("nan"), float("inf"), "3", None])
@pytest.mark.parametrize("name", ["deblur_gauss", "deblur_gauss_ddrm"])
def test_bad_sigma(name, sigma):
    with pytest.raises(ConfigError, match=r"sigma must be a finite number in \(0, inf\)"):
        invkit.operator(name, kernel_size=5, sigma=sigma)


@pytest.mark.parametrize("rcond", [0.0, 1.0, -0.1, float("nan")])
def test_bad_rcond(rcond):
    with pytest.raises(ConfigError, match=r"rcond must be a finite number in \(0, 1\)"):
        invkit.operator("deblur_gauss", sigma=1.0, rcond=rcond)
    with pytest.raises(ConfigError, match=r"rcond"):
        invkit.operator("blur_fft", kernel=torch.ones(2, 2), rcond=rcond)


def test_blur_fft_bad_kernels():
    with pytest.raises(InvalidInputError, match=r"kernel must be 2-D"):
        invkit.operator("blur_fft", kernel=torch.ones(1, 3, 3))
    with pytest.raises(InvalidDTypeError, match=r"real floating-point"):
        invkit.operator("blur_fft", kernel=torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(InvalidInputError, match=r"not all zero"):
        invkit.operator("blur_fft", kernel=torch.zeros(3, 3))
    with pytest.raises(InvalidInputError, match=r"finite"):
        invkit.operator("blur_fft", kernel=torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(InvalidInputError, match=r"does not fit in 4×8 images"):
        invkit.operator("blur_fft", kernel=torch.ones(5, 5)).A(x4(1, 1, 4, 8))


def test_colorization_bad_weights():
    for weights in ("gray", [], [0.0, 0.0, 0.0], [[0.3, 0.3, 0.3]], [1.0, float("nan"), 1.0], ["a", "b"]):
        with pytest.raises(ConfigError, match=r"weights"):
            invkit.operator("colorization", weights=weights)


def test_matrix_bad_input():
    with pytest.raises(InvalidInputError, match=r"2-D \(m × n\)"):
        invkit.operator("matrix", M=np.ones(4))
    with pytest.raises(InvalidInputError, match=r"NaN or Inf"):
        invkit.operator("matrix", M=np.array([[1.0, np.inf]]))
    with pytest.raises(InvalidDTypeError, match=r"floating-point"):
        invkit.operator("matrix", M=torch.eye(3, dtype=torch.int64))
    with pytest.raises(ConfigError, match=r"in_shape \(2, 2\) must have n = 6"):
        invkit.operator("matrix", M=np.ones((3, 6)), in_shape=(2, 2))
    op = invkit.operator("matrix", M=np.ones((3, 6)))
    with pytest.raises(InvalidInputError, match=r"has 5 entries per sample; .* needs 6"):
        op.A(x4(2, 5))
    with pytest.raises(InvalidInputError, match=r"y must have shape \(B, 3\)"):
        op.pinv(x4(2, 4))


def test_bad_factory_parameters_list_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"unexpected keyword argument 'factor'; it accepts \(scale\b.*= 4\)"):
        invkit.operator("sr_bicubic", factor=4)
    with pytest.raises(ConfigError, match=r"accepts \(kernel_size\b.*, sigma\b.*, rcond\b.*\)"):
        invkit.operator("deblur_gauss", size=9)


def test_mask_helpers_validate():
    with pytest.raises(ConfigError, match=r"ratio must be a finite number in \[0, 1\]"):
        random_pixel_mask((4, 4), ratio=1.5)
    with pytest.raises(ConfigError, match=r"shape must be \(H, W\) or \(B, H, W\)"):
        random_pixel_mask((4,), ratio=0.5)
    with pytest.raises(ConfigError, match=r"does not fit"):
        box_mask((4, 4), size=5)
    with pytest.raises(ConfigError, match=r"leaves the 8×8 image"):
        box_mask((8, 8), size=4, top_left=(6, 0))
    with pytest.raises(InvalidInputError, match=r"torch.Generator"):
        random_pixel_mask((4, 4), generator=np.random.default_rng(0))
