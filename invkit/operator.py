r"""Linear degradation operators: ``A``, ``pinv`` (A⁺), ``project``, ``AT`` and an SVD view.

An ``Operator`` is a linear map A from images ``x`` of shape ``(B, *in_shape)`` to
measurements ``y`` of shape ``(B, *out_shape)``. Back projection, the consistency step of SSD
(Liu et al., IJCAI 2024, §3.3, eq. 17) and DDNM (Wang et al., ICLR 2023, the range–null-space
decomposition), is

    project(x, y) = x − A⁺(A x − y) = A⁺y + (I − A⁺A) x.

A subclass implements as much as it knows in closed form:

- only ``A``: the adjoint ``AT`` comes from autograd (``torch.func.vjp``) and ``pinv`` from
  conjugate gradients on the normal equations (see ``Operator.pinv`` for the tolerance);
- ``svd()``: an ``SVDView`` ``A = U diag(s) Vᵀ``; then ``A``, ``AT`` and ``pinv`` all follow
  exactly, and the spectral recipes (DDRM, DDNM+) can run;
- any method it overrides with a faster closed form (average pooling's A⁺ is nearest replication).

Operators are ``torch.nn.Module`` objects: their parameters are buffers, so ``.to(device)`` and
``.double()`` move them, and they never change after construction (a random mask is drawn once,
from the caller's generator, when the operator is built).

Why this module is long (~600 lines): it is one concept, the operator contract, and its parts
depend on one another — ``SVDView`` (the spectral form every exact ``pinv`` goes through), the
generic fallbacks (autograd adjoint, the CGLS pseudo-inverse with its stop rule) that every
A-only operator relies on, and ``compose`` (whose exact pseudo-inverse needs both). Splitting them
would scatter one contract over several files that must always change together.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator, Sequence

import attrs
import torch
from torch import nn

from . import rng
from .errors import ConfigError, InvalidDTypeError, InvalidInputError

__all__ = [
    "Operator",
    "SVDView",
    "Composed",
    "compose",
    "checks_enabled",
    "no_checks",
    "check_tensor",
    "batch_dot",
]

#: The CG pseudo-inverse stops once ``‖Aᵀr‖ ≤ _CG_FLOOR · ε · ‖A‖ · ‖r‖``: below that the normal
#: residual is the rounding error of the product ``Aᵀr`` itself (0.2–10 ε, measured in float32
#: and float64 for y ⟂ range(A) on dense matrices up to 4000 unknowns and on FFT and
#: finite-difference operators on 256² images), and further steps only amplify that noise.
_CG_FLOOR = 32

_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("invkit_checks", default=True)


def checks_enabled() -> bool:
    """Whether value checks that need a device sync (NaN/Inf) are on in this context.

    Returns:
        False inside a ``no_checks()`` block, True otherwise.
    """
    return _CHECKS.get()


@contextlib.contextmanager
def no_checks() -> Iterator[None]:
    """Turn off the NaN/Inf checks inside a hot loop whose inputs were validated once.

    Recipes validate ``y`` when a run starts and then call operators hundreds of times; the
    finiteness check would force a GPU sync on every call. The switch is a context variable, so it
    is local to the thread (and asyncio task) that enters the block.

    Examples:
        ```python
        from invkit.operator import no_checks

        with no_checks():
            for _ in range(100):
                x = op.project(x, y)      # no NaN/Inf scan per call
        ```
    """
    token = _CHECKS.set(False)
    try:
        yield
    finally:
        _CHECKS.reset(token)


def check_tensor(
    t: object,
    name: str,
    *,
    ndim: int | None = None,
    min_ndim: int | None = None,
    channels: int | None = None,
) -> torch.Tensor:
    """Validate a tensor argument and return it.

    Operators call it on their inputs so that a wrong argument fails with a message that names it.

    Args:
        t: the value to check.
        name: the argument's name, used in the error message.
        ndim: the exact number of dimensions required, or None.
        min_ndim: the least number of dimensions required, or None.
        channels: the size dim 1 must have, or None.

    Returns:
        ``t`` itself, unchanged.

    Raises:
        InvalidDTypeError: ``t`` is not a tensor, or is a complex, integer or bool tensor.
        InvalidInputError: ``t`` is empty (no values).
        InvalidInputError: a wrong rank, a wrong channel count (dim 1), or NaN/Inf values (the
            last only while ``checks_enabled()``).
    """
    if not isinstance(t, torch.Tensor):
        raise InvalidDTypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.is_complex():
        raise InvalidDTypeError(
            f"{name} is complex ({t.dtype}); invkit's operators are real: pass the real part "
            f"(t.real) or real and imaginary parts as channels"
        )
    if not t.is_floating_point():
        raise InvalidDTypeError(
            f"{name} has dtype {t.dtype}; invkit works on floating-point tensors in [-1, 1]. "
            f"Convert with x.float() / 127.5 - 1 for uint8 images."
        )
    if t.numel() == 0:
        raise InvalidInputError(f"{name} has no values (shape {tuple(t.shape)}); give at least one sample with values")
    if ndim is not None and t.ndim != ndim:
        raise InvalidInputError(
            f"{name} must have {ndim} dimensions (batch first, e.g. (B, C, H, W)); got shape {tuple(t.shape)}"
        )
    if min_ndim is not None and t.ndim < min_ndim:
        raise InvalidInputError(
            f"{name} must have at least {min_ndim} dimensions (batch first); got shape {tuple(t.shape)}"
        )
    if channels is not None and (t.ndim < 2 or t.shape[1] != channels):
        raise InvalidInputError(
            f"{name} must have {channels} channel(s) in dim 1; got shape {tuple(t.shape)}"
        )
    if _CHECKS.get() and not bool(torch.isfinite(t).all()):
        raise InvalidInputError(f"{name} contains NaN or Inf values")
    return t


def batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product ⟨a_i, b_i⟩ over all non-batch dims, shape ``(B,)``.

    Args:
        a: a batch ``(B, ...)``.
        b: a batch of the same shape.

    Returns:
        The ``(B,)`` tensor of inner products.
    """
    return (a * b).reshape(a.shape[0], -1).sum(dim=1)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def _batch_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean norm over all non-batch dims, shape ``(B,)``."""
    return torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)


def _pow2_normalise(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y / 2ᵉ, 2ᵉ)`` per sample, with ``2ᵉ`` the power of two that brings ``max |y|`` into
    [½, 1) (as far as the dtype's normal range allows; 1 for an all-zero sample)."""
    flat = y.detach().abs().reshape(y.shape[0], -1)
    _, e = torch.frexp(flat.amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0]))
    info = torch.finfo(y.dtype)
    lo, hi = (int(torch.frexp(torch.tensor(v, dtype=y.dtype)).exponent) - 1 for v in (info.tiny, info.max))
    two = torch.tensor(2.0, dtype=y.dtype, device=y.device)
    scale = torch.pow(two, e.clamp(min=lo, max=hi).to(y.dtype))  # 2ᵉ is a normal number
    return y / _bcast(scale, y), scale


@attrs.frozen
class SVDView:
    r"""A singular value decomposition ``A = U diag(s) Vᵀ`` given as callables.

    Spectral vectors have the same shape as the input ``x`` (``(B, *in_shape)``), so separable
    operators keep a Kronecker layout and never build a (HW)×(HW) matrix. Then
    ``A x = U(s ⊙ Vt x)``, ``Aᵀ y = V(s ⊙ Ut y)`` and ``A⁺ y = V(s⁺ ⊙ Ut y)`` with ``s⁺ = 1/s``
    where ``s > 0`` and 0 elsewhere (the factorisation DDRM, Kawar et al., NeurIPS 2022, works
    in).

    Attributes:
        V: maps spectral coefficients back to input space (the inverse of ``Vt``).
        Vt: the spectral coefficients of ``x`` (an orthogonal change of basis).
        U: maps a spectral vector to measurement space, reading only positions with ``s > 0``.
        Ut: the coefficients of ``y`` on the left singular vectors, placed at the spectral
            positions of their singular values (zero where ``s == 0``).
        s: the singular values, broadcastable to the spectral shape (a leading batch dim allowed
            for per-sample operators). Zeros mark the null space of ``A``.

    Examples:
        A per-pixel mask is its own SVD (``U = V = I``, ``s`` = the mask):

        ```python
        import torch
        from invkit import SVDView

        mask = (torch.rand(1, 1, 8, 8) > 0.5).float()
        ident = lambda z: z
        view = SVDView(V=ident, Vt=ident, U=lambda c: c * mask, Ut=lambda y: y * mask, s=mask)
        ```
    """

    V: Callable[[torch.Tensor], torch.Tensor]
    Vt: Callable[[torch.Tensor], torch.Tensor]
    U: Callable[[torch.Tensor], torch.Tensor]
    Ut: Callable[[torch.Tensor], torch.Tensor]
    s: torch.Tensor

    def s_like(self, z: torch.Tensor) -> torch.Tensor:
        """``s`` in ``z``'s dtype, broadcastable against ``z``.

        Args:
            z: a spectral vector (its real dtype and device are used).

        Returns:
            ``s`` on ``z``'s device, with leading singleton dims added up to ``z.ndim``.
        """
        s = self.s.to(device=z.device, dtype=z.real.dtype if z.is_complex() else z.dtype)
        return s if s.ndim == z.ndim else s.reshape((1,) * (z.ndim - s.ndim) + tuple(s.shape))

    def s_pinv(self, z: torch.Tensor) -> torch.Tensor:
        """``s⁺``: ``1/s`` where ``s > 0`` and 0 elsewhere, as :meth:`s_like`.

        Args:
            z: a spectral vector (its real dtype and device are used).

        Returns:
            The pseudo-inverted singular values, broadcastable against ``z``.
        """
        s = self.s_like(z)
        return torch.where(s > 0, 1.0 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """``A x = U(s ⊙ Vᵀx)``."""
        return self.U(self.s_like(x) * self.Vt(x))

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᵀ y = V(s ⊙ Uᵀy)``."""
        c = self.Ut(y)
        return self.V(self.s_like(c) * c)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """``A⁺ y = V(s⁺ ⊙ Uᵀy)``: exact, including rank-deficient ``A``."""
        c = self.Ut(y)
        return self.V(self.s_pinv(c) * c)


class Operator(nn.Module):
    r"""A linear operator ``A``; subclass it and define ``A`` (and whatever else you know).

    The minimum is ``A`` (or ``svd()``); everything else has a generic fallback. An operator
    whose output shape differs from its input shape must also say what input shape a
    measurement comes from (``in_shape``, or ``input_shape()`` when it depends on the image
    size); see [Writing a plugin](../plugin-guide.md#shapes).

    Attributes:
        in_shape: the per-sample input shape ``(C, H, W)``, when ``A`` changes the shape and the
            generic adjoint/pinv must know it (default ``None``: inferred as the shape of ``y``,
            i.e. ``A`` is assumed shape-preserving, and checked).
        cg_rtol: relative tolerance of the generic (CGLS) pseudo-inverse used when the
            operator has neither an SVD view nor its own ``pinv`` (``None``: 1e-12 in float64,
            1e-6 in float32/16); an absolute floor stops it on rank-deficient operators too
            (see [the generic pseudo-inverse](../operators.md)).
        cg_maxiter: the most CGLS iterations per ``pinv`` call.

    Examples:
        ```python
        import torch
        from invkit import Operator

        class Shift(Operator):  # a cyclic shift by one pixel along the width
            def A(self, x):
                return x.roll(1, dims=-1)

        op = Shift()
        x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
        y = op.A(x)
        torch.allclose(op.pinv(y), x)          # CG pseudo-inverse: a shift is invertible
        ```
    """

    in_shape: tuple[int, ...] | None = None
    cg_rtol: float | None = None  # None: 1e-12 in float64, 1e-6 in float32/16
    cg_maxiter: int = 2000

    # -- the maths ---------------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:
        """The forward map ``y = A x``.

        The default evaluates the SVD view; a subclass without ``svd()`` must override it.

        Args:
            x: a batch ``(B, *in_shape)``.

        Returns:
            The measurement ``(B, *out_shape)``.

        Raises:
            NotImplementedError: the subclass defines neither ``A`` nor ``svd()``.
        """
        view = self.svd()
        if view is None:
            raise NotImplementedError(f"{type(self).__name__} must define A(x) or svd()")
        return view.A(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def svd(self) -> SVDView | None:
        """An exact SVD of ``A`` (needed by DDRM and spectral DDNM+), or ``None``.

        Returns:
            An ``SVDView`` valid for every input size the operator accepts, or ``None`` (the
            default). Operators whose singular values depend on the image size return ``None``
            here and implement ``svd_for``.
        """
        return None

    def svd_for(self, y: torch.Tensor) -> SVDView | None:
        """The SVD view for measurements shaped like ``y`` (inputs of shape ``input_shape(y.shape)``),
        with ``s`` on ``y``'s device, or ``None``.

        Separable operators (SR, blur) work at any image size, but their singular values depend
        on it, so a size-free ``svd()`` cannot exist for them; spectral recipes call this at
        run start, once ``y`` is known. The default returns ``svd()``.

        Args:
            y: a measurement batch; only its shape, dtype and device are used.

        Returns:
            The ``SVDView`` for that size, or ``None`` when there is none.
        """
        return self.svd()

    @property
    def has_svd(self) -> bool:
        """True when ``svd()`` gives a size-free SVD view."""
        return self.svd() is not None

    @property
    def exact_pinv(self) -> bool:
        """True when ``pinv`` is a closed form (SVD or overridden), False for the CG fallback.

        Callers that need an exact ``A⁺`` (tight consistency checks, the property tests) read it
        before trusting ``A A⁺ A = A`` beyond the CG tolerance.
        """
        return self.has_svd or type(self).pinv is not Operator.pinv

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        """The adjoint ``Aᵀ y``: from the SVD view if there is one, else by autograd (VJP)."""
        view = self.svd()
        if view is not None:
            return view.AT(y)
        shape = self.input_shape(tuple(y.shape))
        x0 = torch.zeros(shape, dtype=y.dtype, device=y.device)
        with torch.inference_mode(False), torch.enable_grad():
            out, vjp = torch.func.vjp(self.A, x0)
            if out.shape != y.shape:
                raise InvalidInputError(
                    f"{type(self).__name__}: A maps inputs of shape {tuple(shape)} to {tuple(out.shape)}, "
                    f"not to y's shape {tuple(y.shape)}; set in_shape=(C, H, W) on the operator or "
                    f"override input_shape() so the generic adjoint knows the input shape"
                )
            (g,) = vjp(y.clone())
        return g

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The full input shape that maps onto a measurement of shape ``y_shape``.

        Override it when the input shape depends on the measurement's size (an ×s
        super-resolution maps ``(B, C, H, W)`` onto ``(B, C, H/s, W/s)``, so its input shape is
        ``(B, C, s·H, s·W)``). The generic adjoint, the CG pseudo-inverse and the recipes that
        start from noise all call it.

        Args:
            y_shape: the full measurement shape, batch first.

        Returns:
            The full input shape, batch first: ``(B, *in_shape)`` when ``in_shape`` is set, else
            ``y_shape`` (a shape-preserving ``A``).
        """
        if self.in_shape is not None:
            return (y_shape[0],) + tuple(self.in_shape)
        return tuple(y_shape)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        r"""The Moore–Penrose pseudo-inverse ``A⁺ y``.

        From the SVD view when there is one (exact). Otherwise conjugate gradients on the normal
        equations ``AᵀA x = Aᵀy`` (CGLS) started at 0: the iterates stay in range(Aᵀ), so the
        limit is the minimum-norm least-squares solution, which is ``A⁺ y``, for any ``A``
        (rank-deficient included). Per sample, with ``r = y − A x``, it stops when

        - ``‖Aᵀr‖ ≤ rtol·‖Aᵀy‖`` (``rtol`` = ``cg_rtol``, default 1e-12 in float64 and 1e-6
          otherwise), or
        - ``‖Aᵀr‖ ≤ 32 ε ‖A‖ ‖r‖``, the absolute floor: the rounding level of ``Aᵀr`` (``ε`` the
          dtype's machine epsilon, ``‖A‖`` a running lower bound from the iterations); a ``y``
          orthogonal to range(A) stops here, with ``x = 0`` exactly when ``Aᵀy = 0``, or
        - the curvature ``‖A p‖ ≤ √ε ‖A‖ ‖p‖`` of the search direction is rounding noise, or
        - after ``cg_maxiter`` iterations (one ``A`` and one autograd ``Aᵀ`` each).

        On the first two rules the error is at most about ``(rtol + 32ε)·κ²·‖y‖/‖A‖`` (``κ`` =
        largest over smallest non-zero singular value), so the Penrose identities hold to about
        ``(rtol + 32ε)·κ²`` relative; the third fires only on noise or when ``κ > 1/√ε``, beyond
        what this precision can resolve. The output is finite for finite ``y`` of any magnitude,
        and each sample of a batch stops on its own. Details: the operators guide, "The generic
        pseudo-inverse (A-only operators)".
        """
        view = self.svd()
        if view is not None:
            return view.pinv(y)
        return self._cg_pinv(y)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Back projection ``x − A⁺(A x − y)``: the point of ``{A x = y}`` (if consistent) nearest to ``x``
        along the null space.

        This is SSD's consistency step (Liu et al., IJCAI 2024, §3.3, eq. 17) and DDNM's
        range–null-space rectification (Wang et al., ICLR 2023): ``A⁺y + (I − A⁺A) x``.

        Args:
            x: the current estimate ``(B, *in_shape)``.
            y: the measurement ``(B, *out_shape)``.

        Returns:
            The projected estimate; ``A`` of it equals ``y`` up to the accuracy of ``pinv``.
        """
        r = self.A(x)
        if r.shape != y.shape:
            raise InvalidInputError(
                f"project: A(x) has shape {tuple(r.shape)} but y has {tuple(y.shape)}; x must have the "
                f"shape op.input_shape(y.shape) = {tuple(self.input_shape(tuple(y.shape)))}"
            )
        return x - self.pinv(r - y)

    # -- the generic fallbacks -----------------------------------------------------------------
    def _cg_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """CGLS (Hestenes & Stiefel 1952; Björck, "Numerical Methods for Least Squares Problems",
        SIAM 1996, ch. 7): CG on ``AᵀA x = Aᵀy`` that keeps the residual ``r = y − A x`` and forms
        ``Aᵀr`` from it, from ``x = 0``, per sample, with the stop rule documented in :meth:`pinv`."""
        rtol = self.cg_rtol
        if rtol is None:
            rtol = 1e-12 if y.dtype == torch.float64 else 1e-6
        eps, tiny = torch.finfo(y.dtype).eps, torch.finfo(y.dtype).tiny
        floor, curvature = _CG_FLOOR * eps, eps**0.5
        # A power-of-two scale per sample is exact (it commutes with rounding) and keeps the norms
        # below from overflowing or underflowing whatever the magnitude of y.
        y, scale = _pow2_normalise(y)
        r = y  # the residual y − A x
        p = self.AT(r)  # the search direction, first the normal residual s = Aᵀr
        x = torch.zeros_like(p)
        s_norm, r_norm = _batch_norm(p), _batch_norm(r)
        s0_norm = s_norm
        sigma = s_norm / r_norm.clamp_min(tiny)  # ‖Aᵀr‖/‖r‖ ≤ ‖A‖: a running lower bound on ‖A‖
        done = torch.zeros_like(s_norm, dtype=torch.bool)
        for _ in range(self.cg_maxiter):
            # Aᵀy = 0 (y ⟂ range(A)) stops here at once, with x = 0 exactly
            done = done | (s_norm <= rtol * s0_norm) | (s_norm <= floor * sigma * r_norm)
            if bool(done.all()):
                break
            q = self.A(p)
            p_norm, q_norm = _batch_norm(p), _batch_norm(q)
            sigma = torch.maximum(sigma, q_norm / p_norm.clamp_min(tiny))
            # the floor again, with the sharper ‖A‖ estimate (on the first iteration it is the one
            # that sees a y ⟂ range(A)); ‖A p‖ ≪ ‖A‖‖p‖: p is rounding noise in null(A), and a step
            # along it would divide by ~0
            done = done | (s_norm <= floor * sigma * r_norm) | (q_norm <= curvature * sigma * p_norm)
            if bool(done.all()):
                break
            alpha = torch.where(done, 0.0, (s_norm / q_norm.clamp_min(tiny)) ** 2)
            x = x + _bcast(alpha, x) * p
            r = r - _bcast(alpha, r) * q
            s = self.AT(r)
            s_new_norm, r_norm = _batch_norm(s), _batch_norm(r)
            sigma = torch.maximum(sigma, s_new_norm / r_norm.clamp_min(tiny))
            beta = torch.where(done, 0.0, (s_new_norm / s_norm.clamp_min(tiny)) ** 2)
            p = s + _bcast(beta, p) * p
            s_norm = torch.where(done, s_norm, s_new_norm)
        return x * _bcast(scale, x)

    # -- conveniences ----------------------------------------------------------------------------
    def __matmul__(self, other: "Operator") -> "Composed":
        """``B @ A`` is the composition ``x ↦ B(A(x))`` (``compose(A, B)``)."""
        if not isinstance(other, Operator):
            return NotImplemented
        return compose(other, self)

    def check_pinv(
        self,
        x_shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> float:
        """Relative error of ``A A⁺ A u = A u`` on a random ``u`` of shape ``x_shape``.

        Use it to check that a composition (or a new operator) has a valid pseudo-inverse.

        Args:
            x_shape: the full input shape, batch first, e.g. ``(2, 3, 16, 16)``.
            generator: the source of ``u``; ``None`` uses a fresh generator seeded with 0 (no
                global RNG), so the check is reproducible either way.
            dtype: the dtype of ``u`` (float64 by default, for a tight check).
            device: where ``u`` lives.

        Returns:
            ``‖A A⁺ A u − A u‖ / ‖A u‖`` as a Python float.

        Examples:
            ```python
            import torch, invkit

            op = invkit.compose(invkit.operator("colorization"), invkit.operator("sr_avgpool", scale=2))
            op.check_pinv((2, 3, 16, 16), generator=torch.Generator().manual_seed(0))  # ~1e-16
            ```
        """
        g = rng.resolve(generator, "cpu" if device is None else device)
        u = torch.randn(tuple(x_shape), generator=g, dtype=dtype, device=device)
        Au = self.A(u)
        err = (self.A(self.pinv(Au)) - Au).norm() / Au.norm().clamp_min(torch.finfo(dtype).tiny)
        return float(err)


class Composed(Operator):
    r"""The composition ``A = A_n ∘ … ∘ A_1`` of operators applied left to right.

    ``pinv`` is ``A_1⁺ ∘ … ∘ A_n⁺``. That equals the true ``(A_n ⋯ A_1)⁺`` only under a range
    condition (Greville 1966: ``(BC)⁺ = C⁺B⁺`` iff ``B⁺B CCᵀ Bᵀ = CCᵀ Bᵀ`` and
    ``CC⁺ BᵀB C = BᵀB C``), which holds e.g. when each inner factor has full row rank with
    ``CCᵀ ∝ I`` (colorization, average pooling, masks). It is **not** checked symbolically: call
    ``check_pinv`` on a sample shape (the property tests do) before trusting it; ``exact=False``
    makes ``pinv`` use conjugate gradients on the whole composition instead.

    Args:
        *ops: the operators, applied first to last.
        exact: compose the factors' pseudo-inverses (True) or run CG on the composition (False).

    Raises:
        ConfigError: no operators, or something that is not an ``Operator``.
    """

    def __init__(self, *ops: Operator, exact: bool = True):
        super().__init__()
        if not ops:
            raise ConfigError("compose() needs at least one operator")
        for op in ops:
            if not isinstance(op, Operator):
                raise ConfigError(f"compose() takes Operators, got {type(op).__name__}")
        self.ops = nn.ModuleList(ops)
        self.exact = exact

    def A(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op.A(x)
        return x

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.ops):
            y = op.AT(y)
        return y

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        if not self.exact:
            return self._cg_pinv(y)
        for op in reversed(self.ops):
            y = op.pinv(y)
        return y

    @property
    def exact_pinv(self) -> bool:
        """True when ``exact`` and every factor's ``pinv`` is a closed form."""
        return self.exact and all(op.exact_pinv for op in self.ops)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        for op in reversed(self.ops):
            y_shape = op.input_shape(y_shape)
        return y_shape


def compose(*ops: Operator, exact: bool = True) -> Composed:
    """``compose(A1, A2, A3)`` applies ``A1`` first: ``x ↦ A3(A2(A1(x)))``. See ``Composed``.

    Args:
        *ops: the operators, applied first to last.
        exact: see ``Composed``.

    Returns:
        The ``Composed`` operator.

    Examples:
        ```python
        import invkit

        # colour to grey, then ×2 average pooling: y is (B, 1, H/2, W/2)
        op = invkit.compose(invkit.operator("colorization"), invkit.operator("sr_avgpool", scale=2))
        ```
    """
    return Composed(*ops, exact=exact)

