r"""The conjugate-gradient pseudo-inverse on rank-deficient operators that define only ``A``.

The operators (``_rank_deficient.py``) have singular values in [1, 3] off their null space, so
``κ² ≤ 9``. CG stops once ``‖Aᵀr‖ ≤ max(rtol·‖Aᵀy‖, 32ε·‖A‖·‖r‖)``; the error ``e`` of ``A⁺y``
lies in range(Aᵀ), where ``‖AᵀA e‖ = ‖Aᵀr‖``, so ``‖e‖ ≤ (rtol + 32ε)·κ²·‖y‖/‖A‖``. Each
identity below applies ``A`` (‖A‖ ≤ 3) and ``A⁺`` at most twice, hence the tolerance
``TOL = 10·κ²·(rtol + 32ε)``: 9.1e-11 in float64, 4.3e-4 in float32 (rtol 1e-6), relative to the
norms of the inputs.

Before the stop rule had its absolute floor, ``A⁺`` of a ``y`` orthogonal to range(A) (which
``project`` meets on every second call with an inconsistent ``y``) ran CG on rounding noise and
returned vectors of norm ~1e17 in float64 (~1e9 in float32); and since ``‖Aᵀy‖²`` over- or
underflowed, ``A⁺y`` was silently 0 for entries beyond ~1e154 or below ~1e-162 in float64
(1e19 and 1e-23 in float32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invkit import Operator

from ._rank_deficient import EXAMPLES, KAPPA2, CircularBlur, RepeatedRows

FLOOR = 32  # the absolute floor of the stop rule, in units of ε·‖A‖·‖r‖
SIGMA_MAX = 3.0


def tolerance(dtype: torch.dtype) -> float:
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    return 10 * KAPPA2 * (rtol + FLOOR * torch.finfo(dtype).eps)


def norm(t: torch.Tensor) -> float:
    return float(t.norm())


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum())


def assert_small(err: torch.Tensor | float, scale: float, tol: float, what: str) -> None:
    err = norm(err) if isinstance(err, torch.Tensor) else abs(err)
    assert err <= tol * scale, f"{what}: {err:.3e} > {tol:.1e} × {scale:.3e}"


def check_cg_pinv(op: Operator, in_shape: tuple[int, ...], g: torch.Generator, batch: int) -> None:
    """Every guarantee of the generic A⁺ on one operator, in float64 and (the ones that matter in
    a sampling loop) float32."""
    t = tolerance(torch.float64)
    x, u = (torch.randn((batch,) + in_shape, generator=g, dtype=torch.float64) for _ in range(2))
    y_shape = op.A(x).shape
    w, z = (torch.randn(y_shape, generator=g, dtype=torch.float64) for _ in range(2))
    P = op.pinv

    # the four Penrose identities, as operator identities on random vectors
    Ax, Au, Pw = op.A(x), op.A(u), P(w)
    PAx, PAu = P(Ax), P(Au)
    assert all(bool(torch.isfinite(v).all()) for v in (Pw, PAx, PAu)), "A⁺ of a finite y is finite"
    assert_small(op.A(PAx) - Ax, norm(x), t, "A A⁺ A = A")
    assert_small(P(op.A(Pw)) - Pw, norm(w), t, "A⁺ A A⁺ = A⁺")
    assert_small(dot(PAx, u) - dot(x, PAu), norm(x) * norm(u), t, "(A⁺A)ᵀ = A⁺A")
    assert_small(dot(op.A(Pw), z) - dot(w, op.A(P(z))), norm(w) * norm(z), t, "(AA⁺)ᵀ = AA⁺")

    # y = A u ∈ range(A): A A⁺ y = y, and A⁺ y is the minimum-norm preimage (⟂ null(A))
    assert_small(op.A(PAu) - Au, norm(Au), t, "A A⁺ y = y for y ∈ range(A)")
    assert_small(dot(PAu, u - PAu), norm(u) ** 2, t, "A⁺ y ⟂ null(A)")

    # the null-space projection N = I − A⁺A: idempotent, annihilated by A, of rank dim null(A)
    def N(v: torch.Tensor) -> torch.Tensor:
        return v - P(op.A(v))

    Nx = x - PAx
    assert_small(N(Nx) - Nx, norm(x), t, "(I − A⁺A)² = I − A⁺A")
    assert_small(op.A(Nx), SIGMA_MAX * norm(x), t, "A (I − A⁺A) = 0")
    n = int(np.prod(in_shape))
    basis = torch.eye(n, dtype=torch.float64).reshape((n,) + in_shape)
    trace = float((N(basis) * basis).sum())
    channels = in_shape[0] if len(in_shape) == 3 else 1  # images: null(A) per channel
    assert abs(trace - op.null_dim * channels) <= t * n, f"trace(I − A⁺A) = {trace} ≠ dim null(A)"

    # project with an inconsistent y is idempotent: its second call meets A q − w ⟂ range(A)
    q = op.project(x, w)
    assert_small(op.project(q, w) - q, norm(x) + norm(w), t, "project(project(x, w), w) = project(x, w)")

    # y ⟂ range(A): A⁺ y = 0 (exactly when Aᵀ y is exactly 0)
    perp = op.orthogonal_to_range(g, batch, in_shape[0])
    if perp is not None:
        assert_small(op.AT(perp), SIGMA_MAX * norm(perp), t, "the test's y is ⟂ range(A)")
        assert_small(P(perp), norm(perp), t, "A⁺ y = 0 for y ⟂ range(A)")
        if isinstance(op, RepeatedRows):
            assert torch.equal(op.AT(perp), torch.zeros_like(x)), "Aᵀ[u; −u] is exactly 0"
            assert torch.equal(P(perp), torch.zeros_like(x)), "A⁺ y is exactly 0 when Aᵀ y is"

    # inside inference_mode (the sampling loop) A⁺ is the same computation
    with torch.inference_mode():
        inside = P(w)
    assert torch.equal(inside, Pw), "pinv under torch.inference_mode() differs"

    # float32: the same guarantees at float32's tolerance, and nothing blows up
    t32 = tolerance(torch.float32)
    x32, w32 = x.float(), w.float()
    q32 = op.project(x32, w32)
    assert q32.dtype == torch.float32
    assert_small(op.project(q32, w32) - q32, norm(x) + norm(w), t32, "float32 project idempotent")
    if perp is not None:
        assert_small(P(perp.float()), norm(perp), t32, "float32 A⁺ y = 0 for y ⟂ range(A)")


cg_settings = settings(max_examples=6, deadline=None)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@cg_settings
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3))
def test_cg_pinv_on_rank_deficient_operators(name, seed, batch):
    op, in_shape = EXAMPLES[name](np.random.default_rng(seed))
    assert type(op).pinv is Operator.pinv and not op.exact_pinv, "the fixture must use the CG fallback"
    check_cg_pinv(op, in_shape, torch.Generator().manual_seed(seed), batch)


@cg_settings
@given(
    k=st.integers(0, 12),
    H=st.integers(2, 8),
    W=st.integers(2, 8),
    C=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_cg_pinv_on_a_circular_blur_with_k_spectral_zeros(k, H, W, C, seed):
    op = CircularBlur.draw(np.random.default_rng(seed), H, W, k)
    assert op.null_dim >= min(k, H * W)
    check_cg_pinv(op, (C, H, W), torch.Generator().manual_seed(seed), 2)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("dtype, exponent", [(torch.float64, 600), (torch.float64, -600), (torch.float32, 70)])
def test_cg_pinv_is_finite_and_homogeneous_at_extreme_magnitudes(name, dtype, exponent):
    """A⁺(c y) = c A⁺ y for c = 2^±600 (‖y‖² over- or underflows float64; 2^70 in float32):
    exactly, since CG rescales each sample by a power of two first; and 1e±300 (not a power of
    two) to rounding."""
    op, in_shape = EXAMPLES[name](np.random.default_rng(0))
    g = torch.Generator().manual_seed(0)
    w = torch.randn(op.A(torch.zeros((2,) + in_shape, dtype=dtype)).shape, generator=g, dtype=dtype)
    c = 2.0**exponent
    out = op.pinv(w * c)
    assert bool(torch.isfinite(out).all()), "A⁺ of a finite y is finite"
    assert torch.equal(out, op.pinv(w) * c)
    if dtype == torch.float64:
        for c in (1e300, 1e-300):
            ratio = op.pinv(w * c) / c
            assert bool(torch.isfinite(ratio).all())
            assert_small(ratio - op.pinv(w), norm(w), tolerance(dtype), f"A⁺({c:g} y) = {c:g} A⁺ y")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_cg_pinv_stop_rule(name):
    """On return ``‖Aᵀ(y − A x)‖ ≤ max(rtol·‖Aᵀy‖, 32ε·‖A‖·‖y − A x‖)`` per sample (the recursive
    residual CG tests drifts from the true one by rounding, hence the factor 2)."""
    for seed in range(4):
        op, in_shape = EXAMPLES[name](np.random.default_rng(seed))
        g = torch.Generator().manual_seed(seed)
        y_shape = op.A(torch.zeros((3,) + in_shape, dtype=torch.float64)).shape
        w = torch.randn(y_shape, generator=g, dtype=torch.float64)
        for rtol in (None, 1e-3):
            op.cg_rtol = rtol
            x = op.pinv(w)
            r = w - op.A(x)
            normal = op.AT(r).reshape(3, -1).norm(dim=1)
            bound = torch.maximum(
                (rtol or 1e-12) * op.AT(w).reshape(3, -1).norm(dim=1),
                FLOOR * torch.finfo(torch.float64).eps * SIGMA_MAX * r.reshape(3, -1).norm(dim=1),
            )
            assert bool((normal <= 2 * bound).all()), f"‖Aᵀr‖ = {normal.tolist()} > {bound.tolist()}"


class Counting(RepeatedRows):
    calls = 0

    def A(self, x):
        type(self).calls += 1
        return super().A(x)


def test_cg_pinv_iteration_cap_and_mixed_batches():
    """``cg_maxiter`` bounds the work (one ``A`` and one autograd ``Aᵀ`` per iteration, plus the
    first ``Aᵀy``); in a batch each sample stops on its own: a ``y ⟂ range(A)`` stays exactly 0
    while its neighbours iterate, and each result equals the sample's own."""
    op = Counting.draw(np.random.default_rng(1), 6, 9)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(2, 12, generator=g, dtype=torch.float64)
    op.cg_maxiter = 3
    Counting.calls = 0
    capped = op.pinv(w)
    assert Counting.calls <= 1 + 2 * 3 and bool(torch.isfinite(capped).all())
    op.cg_maxiter = Operator.cg_maxiter
    batch = torch.cat([op.orthogonal_to_range(g, 1, 1), w, torch.zeros(1, 12, dtype=torch.float64)])
    x = op.pinv(batch)
    assert torch.equal(x[0], torch.zeros(9, dtype=torch.float64))
    assert torch.equal(x[3], torch.zeros(9, dtype=torch.float64))
    assert torch.allclose(x[1:3], op.pinv(w), rtol=0, atol=1e-13)
    assert not torch.allclose(capped, x[1:3], rtol=0, atol=1e-6), "3 iterations cannot converge on rank 6"
