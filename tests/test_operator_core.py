"""The core Operator base class: autograd adjoint, conjugate-gradient pseudo-inverse, SVD views,
composition, ``check_pinv`` and ``no_checks``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invkit import ConfigError, InvalidDTypeError, InvalidInputError
from invkit.operator import Composed, Operator, SVDView, batch_dot, check_tensor, compose, no_checks


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class OnlyA(Operator):
    """A dense matrix on flattened (B, n) inputs that defines nothing but A."""

    def __init__(self, M: torch.Tensor, in_shape=None):
        super().__init__()
        self.register_buffer("M", M)
        self.in_shape = in_shape

    def A(self, x):
        return x.reshape(x.shape[0], -1) @ self.M.to(x.dtype).T


def rank_deficient(m=6, n=9, r=4, seed=0, cond=10.0):
    """An (m × n) matrix of rank r whose non-zero singular values span [1, cond]."""
    q1, _ = torch.linalg.qr(randn(m, m, seed=seed))
    q2, _ = torch.linalg.qr(randn(n, n, seed=seed + 1))
    s = torch.logspace(0, np.log10(cond), r, dtype=torch.float64)
    return (q1[:, :r] * s) @ q2[:, :r].T


def test_vjp_adjoint_is_the_transpose():
    M = randn(4, 6)
    op = OnlyA(M, in_shape=(6,))
    y = randn(3, 4, seed=1)
    assert torch.allclose(op.AT(y), y @ M, atol=1e-14)
    assert not op.exact_pinv and not op.has_svd


class EveryOther(Operator):
    """Keeps every other column: shape-changing, and happy with any input width."""

    def A(self, x):
        return x[..., ::2]


def test_vjp_adjoint_needs_the_input_shape_when_A_changes_it():
    op = EveryOther()
    with pytest.raises(InvalidInputError, match=r"set in_shape"):
        op.AT(randn(2, 3))
    op.in_shape = (6,)
    y = randn(2, 3)
    expected = torch.zeros(2, 6, dtype=torch.float64)
    expected[:, ::2] = y
    assert torch.equal(op.AT(y), expected)


def test_generic_adjoint_and_pinv_work_inside_inference_mode():
    """Recipes run their loops under torch.inference_mode(); the autograd fallbacks must too."""
    M = rank_deficient()
    op = OnlyA(M, in_shape=(9,))
    with torch.inference_mode():
        y = op.A(randn(2, 9))
        assert torch.allclose(op.AT(y), y @ M, atol=1e-14)
        p = op.pinv(y)
    assert torch.allclose(p, y @ torch.linalg.pinv(M).T, atol=1e-9)


@pytest.mark.parametrize("cond", [1.0, 30.0])
def test_cg_pinv_on_a_rank_deficient_operator(cond):
    M = rank_deficient(cond=cond)
    op = OnlyA(M, in_shape=(9,))
    y = randn(3, 6, seed=2)  # not in the range: the least-squares, minimum-norm solution
    exact = y @ torch.linalg.pinv(M).T
    x = op.pinv(y)
    rel = ((x - exact).norm(dim=1) / exact.norm(dim=1)).max()
    assert rel < 1e-12 * cond**2 * 10
    # the documented stopping rule: ‖AᵀA x − Aᵀy‖ ≤ rtol ‖Aᵀy‖ per sample
    resid = op.AT(op.A(x)) - op.AT(y)
    assert (resid.norm(dim=1) <= 1e-12 * op.AT(y).norm(dim=1) * 1.0001).all()


def test_cg_tolerance_is_what_stops_it():
    M = rank_deficient(cond=100.0)
    y = randn(2, 6, seed=3)
    exact = y @ torch.linalg.pinv(M).T
    loose = OnlyA(M, in_shape=(9,))
    loose.cg_rtol = 1e-4
    err_loose = float(((loose.pinv(y) - exact).norm() / exact.norm()))
    tight = OnlyA(M, in_shape=(9,))
    err_tight = float(((tight.pinv(y) - exact).norm() / exact.norm()))
    assert err_tight < 1e-10
    # rtol 1e-4 with κ² = 1e4 allows up to ~1 in principle; CG lands well inside but above the tight run
    assert err_tight < err_loose < 1e-4 * 100.0**2


def test_cg_float32_default_tolerance():
    M = rank_deficient(cond=5.0)
    op = OnlyA(M.float(), in_shape=(9,))
    y = randn(2, 6, seed=4, dtype=torch.float32)
    exact = y.double() @ torch.linalg.pinv(M).T
    x = op.pinv(y)
    assert x.dtype == torch.float32
    assert float((x.double() - exact).norm() / exact.norm()) < 1e-6 * 25 * 10


def test_cg_zero_measurement_and_converged_samples_stay_put():
    M = rank_deficient()
    op = OnlyA(M, in_shape=(9,))
    y = torch.cat([torch.zeros(1, 6, dtype=torch.float64), randn(1, 6, seed=5)])
    x = op.pinv(y)
    assert torch.equal(x[0], torch.zeros(9, dtype=torch.float64))
    assert torch.allclose(x[1:], op.pinv(y[1:]), atol=1e-13)


class Diagonal(Operator):
    """A (B, n) diagonal operator given only by its SVD view."""

    def __init__(self, d):
        super().__init__()
        self.d = d

    def svd(self):
        def ident(t):
            return t

        return SVDView(V=ident, Vt=ident, U=ident, Ut=lambda y: y * (self.d > 0), s=self.d)


def test_svd_view_gives_A_AT_pinv():
    d = torch.tensor([2.0, 0.0, 0.5], dtype=torch.float64)
    op = Diagonal(d)
    x = randn(4, 3)
    assert torch.allclose(op.A(x), x * d)
    assert torch.allclose(op.AT(x), x * d)
    assert torch.allclose(op.pinv(x), x * torch.tensor([0.5, 0.0, 2.0], dtype=torch.float64))
    assert op.exact_pinv and op.has_svd
    assert op.svd_for(x) is not None  # default: the size-free view
    view = op.svd()
    assert torch.equal(view.s_pinv(x), torch.tensor([0.5, 0.0, 2.0], dtype=torch.float64).expand(1, 3))
    assert view.s_like(x.float()).dtype == torch.float32


def test_operator_without_A_or_svd_says_so():
    with pytest.raises(NotImplementedError, match=r"must define A\(x\) or svd\(\)"):
        Operator().A(randn(1, 3))


def test_compose_and_matmul_order():
    M1, M2 = randn(5, 4), randn(3, 5, seed=1)
    A1, A2 = OnlyA(M1), OnlyA(M2)
    x = randn(2, 4, seed=2)
    expected = x @ M1.T @ M2.T
    assert torch.allclose(compose(A1, A2).A(x), expected)
    assert torch.allclose((A2 @ A1).A(x), expected)  # B @ A applies A first
    C = compose(A1, A2)
    assert isinstance(C, Composed) and len(C.ops) == 2
    y = randn(2, 3, seed=3)
    A1.in_shape, A2.in_shape = (4,), (5,)
    assert torch.allclose(C.AT(y), y @ M2 @ M1)
    assert C.input_shape((2, 3)) == (2, 4)
    with pytest.raises(ConfigError, match=r"at least one"):
        compose()
    with pytest.raises(ConfigError, match=r"takes Operators"):
        compose(A1, "blur")
    with pytest.raises(TypeError):
        A1 @ M1


def test_product_pinv_needs_the_range_condition_and_check_pinv_sees_it():
    """For generic factors (BC)⁺ ≠ C⁺B⁺: check_pinv flags the product rule; exact=False (CG) fixes it."""
    M1, M2 = rank_deficient(m=4, n=4, r=2, seed=7), randn(3, 4)
    A1, A2 = OnlyA(M1, in_shape=(4,)), OnlyA(M2, in_shape=(4,))
    product = compose(A1, A2)
    assert product.check_pinv((3, 4), generator=torch.Generator().manual_seed(0)) > 1e-3
    cg = compose(A1, A2, exact=False)
    assert not cg.exact_pinv
    assert cg.check_pinv((3, 4), generator=torch.Generator().manual_seed(0)) < 1e-9
    y = randn(2, 3, seed=8)
    assert torch.allclose(cg.pinv(y), y @ torch.linalg.pinv(M2 @ M1).T, atol=1e-8)


def test_check_pinv_is_small_for_an_exact_pinv():
    op = OnlyA(rank_deficient(), in_shape=(9,))
    assert op.check_pinv((3, 9), generator=torch.Generator().manual_seed(0)) < 1e-10


def test_check_tensor():
    with pytest.raises(InvalidDTypeError, match=r"must be a torch.Tensor"):
        check_tensor(np.zeros(3), "x")
    with pytest.raises(InvalidDTypeError, match=r"uint8 images"):
        check_tensor(torch.zeros(3, dtype=torch.uint8), "x")
    with pytest.raises(InvalidInputError, match=r"must have 4 dimensions"):
        check_tensor(torch.zeros(3, 4), "x", ndim=4)
    with pytest.raises(InvalidInputError, match=r"at least 2 dimensions"):
        check_tensor(torch.zeros(3), "x", min_ndim=2)
    with pytest.raises(InvalidInputError, match=r"3 channel"):
        check_tensor(torch.zeros(1, 2, 4, 4), "x", channels=3)
    t = torch.zeros(1, 3, 4, 4)
    assert check_tensor(t, "x", ndim=4, channels=3) is t


def test_no_checks_skips_only_the_finiteness_check():
    t = torch.tensor([[1.0, float("nan")]])
    with pytest.raises(InvalidInputError, match=r"NaN or Inf"):
        check_tensor(t, "x")
    with no_checks():
        assert check_tensor(t, "x") is t
        with pytest.raises(InvalidInputError, match=r"dimensions"):
            check_tensor(t, "x", ndim=4)  # shape checks stay on
        with no_checks():
            pass
        assert check_tensor(t, "x") is t  # a nested block does not turn checks back on
    with pytest.raises(InvalidInputError):
        check_tensor(t, "x")


def test_batch_dot():
    a, b = randn(3, 2, 4), randn(3, 2, 4, seed=1)
    assert torch.allclose(batch_dot(a, b), torch.stack([(a[i] * b[i]).sum() for i in range(3)]))


def test_check_pinv_without_a_generator_is_reproducible():
    # no global RNG: None means a fresh generator seeded with 0
    import invkit

    op = invkit.operator("sr_avgpool", scale=2)
    torch.manual_seed(123)
    a = op.check_pinv((2, 1, 8, 8))
    torch.manual_seed(456)
    assert op.check_pinv((2, 1, 8, 8)) == a == op.check_pinv((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
