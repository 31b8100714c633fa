"""Behaviour of the built-in operators beyond the shared properties: masks, per-sample masks,
size-dependent SVD views, truncation rules, module conventions (buffers, dtype, state_dict)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import invkit
from invkit import Composed
from invkit_operators import box_mask, random_pixel_mask


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- masks ------------------------------------------------------------------------------------


def test_random_pixel_mask_drops_exactly_the_ratio_and_is_reproducible():
    g = torch.Generator().manual_seed(3)
    m = random_pixel_mask((10, 7), ratio=0.3, generator=g)
    assert m.shape == (10, 7) and set(m.unique().tolist()) <= {0.0, 1.0}
    assert int((m == 0).sum()) == round(0.3 * 70)
    again = random_pixel_mask((10, 7), ratio=0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(m, again)
    other = random_pixel_mask((10, 7), ratio=0.3, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(m, other)
    batch = random_pixel_mask((3, 10, 7), ratio=0.5, generator=g)
    assert batch.shape == (3, 10, 7) and (batch == 0).sum(dim=(1, 2)).tolist() == [35, 35, 35]
    assert not torch.equal(batch[0], batch[1])
    assert random_pixel_mask((4, 4), ratio=0.0).min() == 1 and random_pixel_mask((4, 4), ratio=1.0).max() == 0


def test_random_pixel_mask_leaves_the_global_rng_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    random_pixel_mask((8, 8), ratio=0.5)
    box_mask((8, 8), size=3)
    assert torch.equal(torch.rand(3), expected)


def test_box_mask():
    m = box_mask((8, 10), size=(3, 4), top_left=(2, 5))
    expected = torch.ones(8, 10)
    expected[2:5, 5:9] = 0
    assert torch.equal(m, expected)
    g = torch.Generator().manual_seed(0)
    ms = box_mask((50, 8, 10), size=3, generator=g)
    assert ((ms == 0).sum(dim=(1, 2)) == 9).all()  # the whole box always fits
    corners = {tuple(torch.nonzero(mi == 0)[0].tolist()) for mi in ms}
    assert len(corners) > 10  # per-sample positions
    assert all(0 <= r <= 5 and 0 <= c <= 7 for r, c in corners)


# -- inpainting -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["hw", "1hw", "11hw", "numpy_bool", "int"])
def test_inpainting_accepts_shared_masks(layout):
    base = torch.tensor([[1, 0, 1], [0, 1, 1]])
    mask = {
        "hw": base.float(),
        "1hw": base.float()[None],
        "11hw": base.float()[None, None],
        "numpy_bool": base.numpy().astype(bool),
        "int": base,
    }[layout]
    op = invkit.operator("inpainting", mask=mask)
    x = randn(4, 3, 2, 3)
    assert torch.equal(op.A(x), x * base.double())
    assert torch.equal(op.pinv(x), op.A(x))


def test_inpainting_per_sample_masks_and_fixed_draw():
    masks = random_pixel_mask((2, 6, 5), ratio=0.5, generator=torch.Generator().manual_seed(1))
    op = invkit.operator("inpainting", mask=masks[:, None])
    x = randn(2, 3, 6, 5)
    y = op.A(x)
    for b in range(2):
        assert torch.equal(y[b], x[b] * masks[b].double())
    assert torch.equal(op.A(x), y)  # the mask does not change between calls (the SSD bug)
    assert torch.equal(op.svd_for(y).s, masks[:, None].double())
    assert "mask" in op.state_dict()


# -- size-dependent SVD views -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "x_shape"),
    [
        ("sr_bicubic", {"scale": 3}, (2, 1, 9, 15)),
        ("sr_avgpool", {"scale": 2}, (2, 3, 6, 4)),
        ("deblur_gauss", {"sigma": 1.0}, (2, 2, 7, 5)),
        ("deblur_gauss_ddrm", {}, (2, 3, 6, 6)),
    ],
)
def test_separable_views_need_the_size(name, params, x_shape):
    """No size-free view exists (svd() is None), but svd_for(y) gives one for y's size."""
    op = invkit.operator(name, **params)
    assert op.svd() is None and op.exact_pinv
    x = randn(*x_shape)
    y = op.A(x)
    view = op.svd_for(y)
    assert torch.allclose(view.A(x), y, atol=1e-12)
    c = view.Vt(x)
    assert c.shape == x.shape
    assert view.s_like(c).shape[-2:] == x.shape[-2:]


def test_shape_free_views():
    for name, params in [("colorization", {}), ("denoise", {}), ("matrix", {"M": np.ones((2, 3))}),
                         ("inpainting", {"mask": torch.ones(3, 3)})]:
        assert invkit.operator(name, **params).svd() is not None, name
    assert invkit.operator("blur_fft", kernel=torch.ones(2, 2)).svd_for(randn(1, 1, 4, 4)) is None


def test_sr_avgpool_singular_values_are_one_over_scale():
    op = invkit.operator("sr_avgpool", scale=3)
    s = op.svd_for(randn(1, 1, 4, 5)).s
    assert s.shape == (12, 15)
    assert torch.allclose(s[s > 0], torch.full((20,), 1 / 3, dtype=torch.float64))
    assert int((s > 0).sum()) == 20


# -- truncation -------------------------------------------------------------------------------


def test_deblur_gauss_truncation_rule():
    sigma, rcond = 2.0, 5e-2
    op = invkit.operator("deblur_gauss", sigma=sigma, rcond=rcond)
    assert op.kernel_size == 2 * math.ceil(3 * sigma) + 1
    f = op.factor(24)
    full = torch.linalg.svdvals(_gauss_1d(24, op.kernel_size, sigma))
    kept = f.s[f.s > 0]
    assert torch.allclose(kept, full[full >= rcond * full[0]])
    assert int((f.s == 0).sum()) == int((full < rcond * full[0]).sum()) > 0
    # A is the truncated blur: it differs from the true blur by less than rcond per axis
    true = _gauss_1d(24, op.kernel_size, sigma)
    assert 0 < torch.linalg.matrix_norm(f.M - true, ord=2) < rcond * full[0]


def _gauss_1d(n, k, sigma):
    t = torch.arange(k, dtype=torch.float64) - k // 2
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    w = w / w.sum()
    G = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for d in range(-(k // 2), k // 2 + 1):
            if 0 <= i + d < n:
                G[i, i + d] = w[d + k // 2]
    return G


def test_blur_fft_truncation_rule():
    kernel = torch.tensor([[1.0, 1.0]], dtype=torch.float64) / 2  # zero response at Nyquist
    op = invkit.operator("blur_fft", kernel=kernel)
    x = torch.zeros(1, 1, 1, 8, dtype=torch.float64)
    x[..., ::2] = 1
    x[..., 1::2] = -1  # the Nyquist frequency: in the null space
    assert op.A(x).abs().max() < 1e-15 and op.pinv(x).abs().max() < 1e-15
    ramp = torch.arange(8, dtype=torch.float64).reshape(1, 1, 1, 8)
    assert torch.allclose(op.A(op.pinv(op.A(ramp))), op.A(ramp), atol=1e-12)


# -- module conventions -----------------------------------------------------------------------


def test_buffers_follow_dtype_and_results_do_not_change():
    op = invkit.operator("matrix", M=randn(3, 5).numpy())
    x = randn(2, 5)
    y = op.A(x)
    op.float()
    assert op.M.dtype == torch.float32
    assert torch.allclose(op.A(x), y, atol=1e-6)
    assert op.A(x).dtype == torch.float64  # the input's dtype decides the output's
    assert op.A(x.float()).dtype == torch.float32


def test_matrix_in_shape_reshapes_and_projects_images():
    M = randn(4, 6).numpy()
    op = invkit.operator("matrix", M=M, in_shape=(1, 2, 3))
    x = randn(2, 1, 2, 3)
    y = op.A(x)
    assert torch.allclose(y, x.reshape(2, 6) @ torch.from_numpy(M).T)
    p = op.project(randn(2, 1, 2, 3, seed=1), y)
    assert p.shape == (2, 1, 2, 3) and torch.allclose(op.A(p), y, atol=1e-12)


def test_matrix_pinv_matches_numpy():
    M = (randn(5, 2) @ randn(2, 7, seed=1)).numpy()
    op = invkit.operator("matrix", M=M)
    y = randn(3, 5, seed=2)
    assert torch.allclose(op.pinv(y), y @ torch.from_numpy(np.linalg.pinv(M)).T, atol=1e-12)


def test_colorization_sr_is_a_composition_with_exact_pinv():
    op = invkit.operator("colorization_sr", scale=2)
    assert isinstance(op, Composed) and op.exact_pinv
    x = randn(2, 3, 6, 4)
    assert op.A(x).shape == (2, 1, 3, 2)
    assert op.check_pinv((2, 3, 6, 4), generator=torch.Generator().manual_seed(0)) < 1e-12
    # the product pinv equals the true pseudo-inverse of the composed matrix
    eye = torch.eye(6, dtype=torch.float64).reshape(6, 1, 3, 2)
    dense = op.A(torch.eye(72, dtype=torch.float64).reshape(72, 3, 6, 4)).reshape(72, 6).T
    assert torch.allclose(op.pinv(eye).reshape(6, 72).T, torch.linalg.pinv(dense), atol=1e-12)


def test_denoise_is_the_identity_and_returns_a_copy():
    op = invkit.operator("denoise")
    x = randn(2, 5)
    y = op.A(x)
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()
    assert torch.equal(op.pinv(x), x)


def test_operators_print_their_parameters():
    assert "scale=4" in repr(invkit.operator("sr_bicubic", scale=4))
    assert "sigma=15" in repr(invkit.operator("deblur_gauss_ddrm"))
    assert "0.3334" in repr(invkit.operator("colorization"))
