r"""Property tests over **every registered operator**, built-in or third-party, and over the
rank-deficient A-only operators of ``_rank_deficient.py`` (test fixtures, not plugins: they put
the generic adjoint and conjugate-gradient pseudo-inverse on operators with a null space).

Each operator is built by the ``example(rng)`` it was registered with; hypothesis draws the seed
of that ``numpy`` generator (so the parameters and the image size) and the batch size 1–3. All
maths checks run in float64:

- Penrose: ``A A⁺ A = A``, ``A⁺ A A⁺ = A⁺``, ``A⁺A`` and ``AA⁺`` symmetric;
- back projection: ``A(project(x, A z)) = A z`` and ``project`` idempotent;
- the adjoint ``⟨A u, v⟩ = ⟨u, Aᵀ v⟩``;
- the SVD view (where there is one) agrees with ``A``, ``AT``, ``pinv``;
- batch invariance (a batch equals its stacked samples) and dtype invariance (float32 ≈ float64).

Tolerances: ``CLOSED_FORM_TOL`` for closed-form pseudo-inverses; for the conjugate-gradient
fallback ``KAPPA2 · cg_rtol``: CG stops at a normal-equation residual of ``cg_rtol`` (1e-12 in
float64), which bounds the error of ``A⁺`` by about ``cg_rtol · κ(A)²``, and examples must keep
``κ(A)² ≤ KAPPA2``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invkit import Operator
from invkit.plugins import operators_registry

from ._rank_deficient import EXAMPLES as RANK_DEFICIENT

CLOSED_FORM_TOL = 1e-10
KAPPA2 = 1e4
DTYPE_TOL = 1e-4
EXAMPLES = 12

NAMES = operators_registry.names()
CASES = NAMES + sorted(RANK_DEFICIENT)
seeds = st.integers(0, 2**32 - 1)
batches = st.integers(1, 3)
property_settings = settings(max_examples=EXAMPLES, deadline=None)


def build(name: str, seed: int) -> tuple[Operator, tuple[int, ...]]:
    """The operator ``name`` from its registered example, or a test failure if it has none."""
    if name in RANK_DEFICIENT:
        op, in_shape = RANK_DEFICIENT[name](np.random.default_rng(seed))
        return op, tuple(in_shape)
    spec = operators_registry.get(name)
    example = spec.meta.get("example")
    if not callable(example):
        pytest.fail(
            f"operator {name!r} (plugin {spec.plugin!r}) was registered without example=...; "
            f"register it with example(rng) -> (operator, in_shape) so the property tests can run on it"
        )
    op, in_shape = example(np.random.default_rng(seed))
    assert isinstance(op, Operator), f"{name}: example returned {type(op).__name__}, not an Operator"
    return op, tuple(int(d) for d in in_shape)


def tol(op: Operator, dtype: torch.dtype = torch.float64) -> float:
    if op.exact_pinv:
        return CLOSED_FORM_TOL
    rtol = op.cg_rtol if op.cg_rtol is not None else (1e-12 if dtype == torch.float64 else 1e-6)
    return KAPPA2 * rtol


def randn(shape, g: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=g, dtype=dtype)


def setup(name: str, seed: int, batch: int):
    op, in_shape = build(name, seed)
    g = torch.Generator().manual_seed(seed)
    x = randn((batch,) + in_shape, g)
    y_shape = op.A(x).shape
    return op, g, x, y_shape


def norm(t: torch.Tensor) -> float:
    return float(t.norm())


def assert_close(a: torch.Tensor, b: torch.Tensor, tolerance: float, floor: float, what: str) -> None:
    """``‖a − b‖ ≤ tolerance · max(‖b‖, floor)``: relative, with an absolute floor for ``b ≈ 0``."""
    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    err = norm(a - b)
    assert err <= tolerance * max(norm(b), floor), f"{what}: error {err:.3e} vs |b| = {norm(b):.3e}"


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum())


@pytest.mark.parametrize("name", NAMES)
def test_every_operator_is_registered_with_a_working_example(name):
    spec = operators_registry.get(name)
    assert spec.description, f"{name} has no description"
    op, in_shape = build(name, 0)
    x = torch.zeros((2,) + in_shape, dtype=torch.float64)
    y = op.A(x)
    assert y.shape[0] == 2 and y.dtype == torch.float64
    assert tuple(op.input_shape(tuple(y.shape))) == tuple(x.shape)


@pytest.mark.parametrize("name", CASES)
@property_settings
@given(seed=seeds, batch=batches)
def test_penrose(name, seed, batch):
    op, g, x, y_shape = setup(name, seed, batch)
    t = tol(op)
    Ax = op.A(x)
    assert_close(op.A(op.pinv(Ax)), Ax, t, 1e-3 * norm(x), "A A⁺ A = A")
    w = randn(y_shape, g)
    Pw = op.pinv(w)
    assert_close(op.pinv(op.A(Pw)), Pw, t, 1e-3 * norm(w), "A⁺ A A⁺ = A⁺")


@pytest.mark.parametrize("name", CASES)
@property_settings
@given(seed=seeds, batch=batches)
def test_projectors_are_symmetric(name, seed, batch):
    op, g, u, y_shape = setup(name, seed, batch)
    t = tol(op)
    v = randn(u.shape, g)
    lhs, rhs = dot(op.pinv(op.A(u)), v), dot(u, op.pinv(op.A(v)))
    assert abs(lhs - rhs) <= t * norm(u) * norm(v), "⟨A⁺A u, v⟩ = ⟨u, A⁺A v⟩"
    w, z = randn(y_shape, g), randn(y_shape, g)
    lhs, rhs = dot(op.A(op.pinv(w)), z), dot(w, op.A(op.pinv(z)))
    assert abs(lhs - rhs) <= t * norm(w) * norm(z), "⟨AA⁺ w, z⟩ = ⟨w, AA⁺ z⟩"


@pytest.mark.parametrize("name", CASES)
@property_settings
@given(seed=seeds, batch=batches)
def test_project_is_consistent_and_idempotent(name, seed, batch):
    op, g, x, y_shape = setup(name, seed, batch)
    t = tol(op)
    y = op.A(randn(x.shape, g))
    p = op.project(x, y)
    assert p.shape == x.shape
    assert_close(op.A(p), y, t, 1e-3 * norm(x), "A(project(x, A z)) = A z")
    w = randn(y_shape, g)  # idempotence holds for inconsistent measurements too
    q = op.project(x, w)
    assert_close(op.project(q, w), q, t, 1e-3 * norm(x), "project idempotent")


@pytest.mark.parametrize("name", CASES)
@property_settings
@given(seed=seeds, batch=batches)
def test_adjoint(name, seed, batch):
    op, g, u, y_shape = setup(name, seed, batch)
    v = randn(y_shape, g)
    Au, ATv = op.A(u), op.AT(v)
    assert ATv.shape == u.shape
    scale = norm(Au) * norm(v) + norm(u) * norm(ATv)
    assert abs(dot(Au, v) - dot(u, ATv)) <= CLOSED_FORM_TOL * max(scale, 1e-300)


def _view_or_skip(op: Operator, y: torch.Tensor):
    view = op.svd_for(y)
    if view is None:
        assert op.svd() is None, "svd() gives a view but svd_for(y) does not"
        return None
    return view


@pytest.mark.parametrize("name", CASES)
@property_settings
@given(seed=seeds, batch=batches)
def test_svd_view_agrees(name, seed, batch):
    op, g, x, y_shape = setup(name, seed, batch)
    w = randn(y_shape, g)
    view = _view_or_skip(op, w)
    if view is None:
        return
    t = CLOSED_FORM_TOL
    c = view.Vt(x)
    assert c.shape == x.shape, "spectral vectors have the input's shape"
    assert_close(view.V(c), x, t, 0, "V Vᵀ = I")
    assert abs(norm(c) - norm(x)) <= t * norm(x), "Vᵀ is orthogonal"
    s = view.s_like(c)
    assert bool((s >= 0).all()), "singular values are non-negative"
    torch.broadcast_shapes(s.shape, c.shape)
    Ax = op.A(x)
    assert_close(view.A(x), Ax, t, 1e-3 * norm(x), "U s Vᵀ = A")
    assert_close(view.AT(w), op.AT(w), t, 1e-3 * norm(w), "V s Uᵀ = Aᵀ")
    assert_close(view.pinv(w), op.pinv(w), t, 1e-3 * norm(w), "V s⁺ Uᵀ = A⁺")
    cw = view.Ut(w)
    assert cw.shape == x.shape
    assert norm(torch.where(s > 0, torch.zeros_like(cw), cw)) == 0, "Uᵀ y is zero off the range"
    assert_close(view.U(view.Ut(Ax)), Ax, t, 1e-3 * norm(x), "U Uᵀ is the identity on range(A)")
    plain = op.svd()
    if plain is not None:
        assert_close(plain.A(x), Ax, t, 1e-3 * norm(x), "svd() and svd_for(y) agree")


@pytest.mark.parametrize("name", CASES)
@property_settings
@given(seed=seeds, batch=st.integers(2, 3))
def test_batch_invariance(name, seed, batch):
    op, g, x, y_shape = setup(name, seed, batch)
    t = tol(op)
    w = randn(y_shape, g)
    for method, arg in ((op.A, x), (op.AT, w), (op.pinv, w)):
        whole = method(arg)
        stacked = torch.cat([method(arg[i : i + 1]) for i in range(batch)])
        assert_close(whole, stacked, t, 1e-3 * norm(arg), f"{method.__name__} on a batch = stacked samples")


@pytest.mark.parametrize("name", CASES)
@property_settings
@given(seed=seeds, batch=batches)
def test_dtype_invariance(name, seed, batch):
    op, g, x, y_shape = setup(name, seed, batch)
    w = randn(y_shape, g)
    for method, arg in ((op.A, x), (op.AT, w), (op.pinv, w)):
        single, double = method(arg.float()), method(arg)
        assert single.dtype == torch.float32, f"{method.__name__} keeps float32"
        assert_close(single.double(), double, DTYPE_TOL, 1e-3 * norm(arg), f"{method.__name__} float32 ≈ float64")


@pytest.mark.parametrize("name", CASES)
def test_autograd_through_A_after_inference_mode(name):
    """Recipes call operators under torch.inference_mode (filling any caches there); DPS then
    differentiates ‖y − A x‖² through A: ∇ = 2 Aᵀ(A x − y)."""
    for seed in range(2):
        op, in_shape = build(name, seed)
        g = torch.Generator().manual_seed(seed)
        x = randn((2,) + in_shape, g)
        with torch.inference_mode():  # the operator's first calls
            y_shape = op.A(x).shape
            op.pinv(op.A(x))
        y = randn(y_shape, g)
        x.requires_grad_(True)
        loss = (op.A(x) - y).square().sum()
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            expected = 2 * op.AT(op.A(x) - y)
        assert_close(grad, expected, CLOSED_FORM_TOL, 1e-3 * norm(x.detach()), "autograd gradient = 2 Aᵀ(A x − y)")


def test_an_operator_registered_without_example_fails_the_suite():
    from invkit import hookimpl
    from invkit.plugins import register_plugin, unregister_plugin

    class NoExample:
        @hookimpl
        def invkit_register_operators(self, register):
            register("no_example_op", lambda: None, description="registered without an example")

    register_plugin(NoExample(), name="no_example")
    try:
        message = r"'no_example_op' \(plugin 'no_example'\) was registered without example"
        with pytest.raises(pytest.fail.Exception, match=message):
            build("no_example_op", 0)
    finally:
        unregister_plugin("no_example")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", CASES)
def test_cuda_matches_cpu(name):
    for seed in range(3):
        op, g, x, y_shape = setup(name, seed, 2)
        w = randn(y_shape, g)
        expected = {"A": op.A(x), "AT": op.AT(w), "pinv": op.pinv(w)}
        view = op.svd_for(w)
        op.to("cuda")  # in place: buffers (masks, matrices, kernels) move; per-size caches follow the input
        for method, arg in (("A", x), ("AT", w), ("pinv", w)):
            out = getattr(op, method)(arg.cuda())
            assert out.device.type == "cuda"
            assert_close(out.cpu(), expected[method], 1e-8, 1e-3 * norm(arg), f"{method} on CUDA")
        if view is not None:
            gview = op.svd_for(w.cuda())
            assert gview.s_like(x.cuda()).device.type == "cuda"
            assert_close(gview.A(x.cuda()).cpu(), expected["A"], 1e-8, 1e-3 * norm(x), "SVD view on CUDA")
