r"""Guidance: what keeps each generation step consistent with the measurement ``y``.

The one generation loop (``invkit.Recipe.run``) does, at every step ``t → t′`` (``t′ = −1``
after the last one, where ᾱ_{−1} = 1):

    ε  = model(x, t)
    x0 = (x − √(1−ᾱ)·ε)/√ᾱ, optionally clamped to [−1, 1]
    x0 = guidance.x0(x0, step, ctx)                    # e.g. back projection
    x′ = guidance.update(x, x0, ε, step, ctx, g)       # default: the DDIM-η update below

The default update is DDNM/SSD's DDIM form (DDNM, Wang et al., ICLR 2023, and SSD
§3.3 with η = 0.8; not Song et al.'s σ_t):

    x′ = √ᾱ′·x0 + √(1−η²)·√(1−ᾱ′)·ε + η·√(1−ᾱ′)·z

so at the last step (ᾱ′ = 1) it returns the guided ``x0``. ε is never recomputed after the
clamp or the correction. Spectral methods (DDRM, DDNM+) override ``update``; DPS sets
``needs_grad`` and differentiates through ``x0(x_t)``. A guidance that cannot work with an
operator raises ``invkit.errors.CapabilityError`` from ``Guidance.start``, which the recipe
calls before the first network call.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import attrs
import torch

from . import rng
from .errors import CapabilityError, ConfigError
from .operator import Operator, SVDView
from ._compat import deprecated_names
from .validators import boolean, nonneg_number, optional, unit_interval

if TYPE_CHECKING:  # annotations only; the step plan lives in invkit.plan
    from .plan import Context, GenStep

__all__ = [
    "Guidance",
    "NoGuidance",
    "BackProj",
    "StagedBackProj",
    "DDNMPlus",
    "DPS",
    "DDRM",
    "ddim_update",
]


def _mix(
    a: float, x0: torch.Tensor, eps: torch.Tensor, sigma: float, eta: float, generator: torch.Generator
) -> torch.Tensor:
    """``a·x0 + √(1−η²)·σ·ε + η·σ·z``; zero coefficients are skipped (and draw no noise)."""
    x = a * x0
    c_eps = math.sqrt(1.0 - eta * eta) * sigma
    c_z = eta * sigma
    if c_eps != 0.0:
        x = x + c_eps * eps
    if c_z != 0.0:
        x = x + c_z * rng.randn_like(x0, generator)
    return x


def ddim_update(
    x0: torch.Tensor, eps: torch.Tensor, step: GenStep, eta: float, generator: torch.Generator
) -> torch.Tensor:
    r"""``x′ = √ᾱ′·x0 + √(1−η²)·√(1−ᾱ′)·ε + η·√(1−ᾱ′)·z`` (DDNM's DDIM form; SSD uses η = 0.8).

    Zero coefficients are skipped and draw no noise, so η = 0 (or the last step, ᾱ′ = 1) uses
    no randomness.

    Args:
        x0: the (guided) clean estimate.
        eps: the network's ε at the current step (not recomputed after the guidance).
        step: the step, with ``sqrt_abar_next`` = √ᾱ′ and ``sigma_next`` = √(1−ᾱ′).
        eta: η ∈ [0, 1], the share of fresh noise.
        generator: the source of ``z`` (one generator or one per sample).

    Returns:
        The state at the next timestep.
    """
    return _mix(step.sqrt_abar_next, x0, eps, step.sigma_next, eta, generator)


def _need_svd(guidance: "Guidance", op: Operator, y: torch.Tensor) -> SVDView:
    view = op.svd_for(y)
    if view is None:
        raise CapabilityError(
            f"{type(guidance).__name__} works in the operator's spectral domain and needs an SVD view, "
            f"but {type(op).__name__} has none (svd_for(y) is None); give the operator an svd() or use "
            f"BackProj / DDNMPlus"
        )
    return view


class Guidance:
    """Base class: no correction and the default DDIM-η update. Override the hooks you need.

    - ``start`` validates the operator (typed errors) and precomputes per-run data;
    - ``init`` turns the starting noise into ``x_T`` for recipes that start from noise;
    - ``x0`` corrects the clean estimate;
    - ``update`` makes the next state (override it to own the update).

    ``needs_grad = True`` makes the loop run the network with autograd on and ``x`` requiring
    grad, so ``update`` may differentiate ``x0`` with respect to ``x``. Every other guidance runs
    inside ``torch.inference_mode()``.

    Attributes:
        needs_grad: run each step with autograd on (DPS).

    Examples:
        A guidance that back-projects only every other step:

        ```python
        import attrs
        from invkit import Guidance

        @attrs.frozen
        class EveryOther(Guidance):
            def x0(self, x0, step, ctx):
                return ctx.op.project(x0, ctx.y) if step.i % 2 == 0 else x0
        ```
    """

    needs_grad: ClassVar[bool] = False
    uses_eta: ClassVar[bool] = True  # False: the step has no generation η (a Recipe then takes none)

    def start(self, ctx: Context) -> Context:
        """Check the operator and precompute per-run data, before the first network call.

        Args:
            ctx: the run's operator, ``y``, ``t0`` and number of generation steps.

        Returns:
            ``ctx``, or a copy (``attrs.evolve(ctx, extra=...)``) carrying what the other hooks
            need in ``extra``.

        Raises:
            CapabilityError: the operator lacks something this guidance needs (e.g. an SVD view).
        """
        return ctx

    def init(self, z: torch.Tensor, step: GenStep, ctx: Context) -> torch.Tensor:
        """The starting state ``x_T`` of a recipe without an inverter.

        Args:
            z: standard normal noise shaped like the input (``op.input_shape(y.shape)``).
            step: the first generation step.
            ctx: the context ``start`` returned.

        Returns:
            ``x_T``; the default is ``z`` itself.
        """
        return z

    def x0(self, x0: torch.Tensor, step: GenStep, ctx: Context) -> torch.Tensor:
        """Correct the clean estimate at one generation step.

        Args:
            x0: the network's clean estimate (clamped if the recipe clamps).
            step: the current step.
            ctx: the context ``start`` returned.

        Returns:
            The corrected estimate; the default returns ``x0`` unchanged.
        """
        return x0

    def update(
        self, x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, step: GenStep, ctx: Context,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The state at the next timestep.

        Args:
            x: the current state (requires grad when ``needs_grad``).
            x0: the clean estimate after ``x0``.
            eps: the network's ε at this step.
            step: the current step (``step.eta`` is the recipe's η).
            ctx: the context ``start`` returned.
            generator: the source of fresh noise (one generator or one per sample).

        Returns:
            The next state; the default is ``ddim_update(x0, eps, step, step.eta, generator)``.
        """
        return ddim_update(x0, eps, step, step.eta, generator)


@attrs.frozen
class NoGuidance(Guidance):
    """Unconditional generation: the DDIM-η update with no correction (SDEdit, the SSD ablations)."""


@attrs.frozen
class BackProj(Guidance):
    r"""Back projection ``x0 ← x0 − A⁺(A x0 − y)`` at every step (SSD, §3.3 eq. 17; DDNM).

    No step size and no σ_y term; with an exact ``A⁺`` the result satisfies ``A x0 = y``
    (SSD eq. 18). It takes no arguments. With noisy ``y`` it reproduces the noise: use
    ``StagedBackProj``, ``DDNMPlus`` or ``DDRM`` there.
    """

    def x0(self, x0, step, ctx):  # noqa: ANN001 - see Guidance.x0
        return ctx.op.project(x0, ctx.y)


@attrs.frozen
class StagedBackProj(Guidance):
    r"""SSD+ (Liu et al., IJCAI 2024, §3.4): back projection for the first ``stop_idx`` generation steps only,

    ``stop_idx = int((t0 − t_stop)/t0 · B)``, then plain DDIM-η steps (the texture stage), so the
    output is the unprojected x0 at t = 0. t0 = 550, B = 85 projects at s ∈ {549 … 203} and
    stops at s ≤ 196; B = 25 projects down to 229 and stops from 206.

    Args:
        t_stop: the timestep below which back projection stops (SSD+ uses 200).

    Raises:
        ConfigError: ``t_stop`` is not an integer ≥ 0.
    """

    t_stop: int = attrs.field(default=200)

    @t_stop.validator
    def _check(self, attribute, value):  # noqa: ANN001 - attrs validator signature
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"StagedBackProj.t_stop must be an integer timestep >= 0, got {value!r}")

    def start(self, ctx):  # noqa: ANN001 - see Guidance.start
        stop_idx = max(0, int((ctx.t0 - self.t_stop) / ctx.t0 * ctx.steps))
        return attrs.evolve(ctx, extra=ctx.steps - stop_idx)  # lowest list index still projected

    def x0(self, x0, step, ctx):  # noqa: ANN001 - see Guidance.x0
        return ctx.op.project(x0, ctx.y) if step.i >= ctx.extra else x0


class _Spectral(NamedTuple):
    view: SVDView
    uty: torch.Tensor  # Uᵀy at the spectral positions (zero where s = 0)
    ybar: torch.Tensor  # s⁺ ⊙ Uᵀy = Vᵀ A⁺ y


def _spectral(view: SVDView, y: torch.Tensor) -> _Spectral:
    uty = view.Ut(y)
    return _Spectral(view, uty, view.s_pinv(uty) * uty)


@attrs.frozen
class DDNMPlus(Guidance):
    r"""DDNM+ (Wang et al., ICLR 2023): noise-aware range–null-space correction (the paper's DDNM+ for noisy measurements).

    With ``a = √ᾱ′``, ``σ_t = √(1−ᾱ′)`` for the step to t′ and y's noise ``σ_y`` ([−1, 1] units):

    **Spectral form** (the operator has an SVD view, ``op.svd_for(y)``), per component with singular value s:
    ``λ = s·σ_t·√(1−η²)/(a·σ_y)`` where ``s·σ_t < a·σ_y``, else 1, and:

        x0′ = x0 − V Λ Vᵀ A⁺(A x0 − y)
        x′  = a·x0′ + V(d1 ⊙ z + d2 ⊙ Vᵀε)

    with (d1, d2) = (σ_t·η, σ_t·√(1−η²)) on the null space, (σ_t·η, 0) where y is the noisier,
    and (√(σ_t² − a²σ_y²/s²), 0) where the step is (z is drawn in the spectral domain, which is
    the same law since V is orthogonal).

    **Scalar form** (any operator), the paper's simplified λ_t/γ_t that treats A⁺ as
    non-amplifying (exact for masks and denoising): λ = 1 and γ = √(σ_t² − a²σ_y²) if
    ``σ_t ≥ a·σ_y``, else λ = σ_t/(a·σ_y) and γ = 0; then
    ``x0′ = x0 − λ·A⁺(A x0 − y)`` and ``x′ = a·x0′ + γ·(η·z + √(1−η²)·ε)``. Unlike DDNM's
    ``simplified_ddnm_plus`` we use σ_t = √(1−ᾱ′) (not √(1−ᾱ′²)), compare with √ᾱ′·σ_y (not
    ᾱ′·σ_y) and apply γ once (not on top of the √(1−ᾱ′) factors), so σ_y = 0 is exactly DDNM.

    Args:
        sigma_y: the noise level σ_y of ``y`` in [−1, 1] units (0: plain DDNM).
        eta: the noise mix η, or ``None`` to use the recipe's ``eta``.
        spectral: use the spectral form when the operator has an SVD view; ``False`` forces the
            scalar form.

    Raises:
        ConfigError: ``sigma_y`` negative or not finite, ``eta`` outside [0, 1], or ``spectral``
            not a bool.
    """

    sigma_y: float = attrs.field(default=0.0, validator=nonneg_number())
    eta: float | None = attrs.field(default=None, validator=optional(unit_interval()))
    spectral: bool = attrs.field(default=True, validator=boolean)

    def start(self, ctx):  # noqa: ANN001 - see Guidance.start
        view = ctx.op.svd_for(ctx.y) if self.spectral else None
        return attrs.evolve(ctx, extra=None if view is None else _spectral(view, ctx.y))

    def _eta(self, step: GenStep) -> float:
        return step.eta if self.eta is None else float(self.eta)

    def _scalar(self, step: GenStep) -> tuple[float, float]:
        a, st, sy = step.sqrt_abar_next, step.sigma_next, float(self.sigma_y)
        if sy == 0.0:
            return 1.0, st
        if st >= a * sy:
            return 1.0, math.sqrt(st * st - (a * sy) ** 2)
        return st / (a * sy), 0.0

    def _masks(self, s: torch.Tensor, step: GenStep) -> tuple[torch.Tensor, torch.Tensor]:
        """(range, noisier): s > 0, and s > 0 with s·σ_t ≥ a·σ_y (the step noisier than y)."""
        in_range = s > 0
        return in_range, in_range & (s * step.sigma_next >= step.sqrt_abar_next * float(self.sigma_y))

    def x0(self, x0, step, ctx):  # noqa: ANN001 - see Guidance.x0
        sp: _Spectral | None = ctx.extra
        if sp is None:
            lam, _ = self._scalar(step)
            r = ctx.op.pinv(ctx.op.A(x0) - ctx.y)
            return x0 - r if lam == 1.0 else x0 - lam * r
        s = sp.view.s_like(x0)
        c = sp.view.Vt(x0)
        resid = sp.view.s_pinv(c) * (s * c - sp.uty)  # Vᵀ A⁺(A x0 − y)
        if self.sigma_y > 0:
            in_range, noisier = self._masks(s, step)
            eta = self._eta(step)
            lam_small = s * step.sigma_next * math.sqrt(1.0 - eta * eta) / (step.sqrt_abar_next * float(self.sigma_y))
            resid = torch.where(noisier | ~in_range, resid, lam_small * resid)
        return x0 - sp.view.V(resid)

    def update(self, x, x0, eps, step, ctx, generator):  # noqa: ANN001 - see Guidance.update
        sp: _Spectral | None = ctx.extra
        eta = self._eta(step)
        if sp is None:
            _, gamma = self._scalar(step)
            return _mix(step.sqrt_abar_next, x0, eps, gamma, eta, generator)
        x_next = step.sqrt_abar_next * x0
        st = step.sigma_next
        if st == 0.0:
            return x_next
        s = sp.view.s_like(x0)
        in_range, noisier = self._masks(s, step)
        s_safe = torch.where(in_range, s, torch.ones_like(s))
        sy = float(self.sigma_y)
        d1_noisier = (st * st - (step.sqrt_abar_next * sy / s_safe) ** 2).clamp_min(0.0).sqrt()
        d1 = torch.where(noisier, d1_noisier, torch.full_like(s, st * eta))
        d2 = torch.where(in_range, torch.zeros_like(s), torch.full_like(s, st * math.sqrt(1.0 - eta * eta)))
        noise = d1 * rng.randn_like(x0, generator) + d2 * sp.view.Vt(eps)
        return x_next + sp.view.V(noise)


@attrs.frozen
class DDRM(Guidance):
    r"""DDRM (Kawar et al., NeurIPS 2022): the spectral update of its efficient sampler.

    In the variance-exploding view ``x̄ = x/√ᾱ``, ``σ_t = √(1−ᾱ_t)/√ᾱ_t``, with ``a = Vᵀx0``,
    ``e = Vᵀε``, ``ȳ = s⁺ ⊙ Uᵀy``, σ′ = σ_{t′} and σ_y = ``sigma_y`` ([−1, 1] units), each spectral
    component of the next state is

    - s = 0 (null space): ``a + σ′√(1−η²)·e + ησ′·z``;
    - s·σ′ < σ_y (less noisy than y): ``a + σ′√(1−η²)·(Uᵀy − s·a)/σ_y + ησ′·z``;
    - s·σ′ ≥ σ_y (noisier than y): ``η_b·ȳ + (1−η_b)·a + √(σ′² − σ_y²η_b²/s²)·z``;

    and ``x′ = √ᾱ′·V(·)``. Starting from noise z, ``x_T = √ᾱ_T·V(v)`` with
    ``v = ȳ + √(σ_T² − σ_y²/s²)·z`` where ``s·σ_T ≥ σ_y`` and ``σ_T·z`` elsewhere (z read in the
    spectral layout, as DDRM does). DDRM does not clamp x0 (its presets set ``clamp=False``).

    Deviations, both tiny and documented in ``docs/recipes.md``: the reference divides ``V(v)``
    by σ_T instead of multiplying by √ᾱ_T (a factor 1/√(1−ᾱ_T) ≈ 1.00002 at t = 950); and it
    uses strict inequalities, which at the last step with σ_y = 0 (σ′ = 0 = σ_y) send the range to
    the null-space branch and return the unprojected x0. We put the tie in the "noisier" branch,
    so noiseless DDRM ends exactly consistent (``A x̂ = y``), the σ′ → 0 limit of that branch.

    Args:
        sigma_y: the noise level σ_y of ``y`` in [−1, 1] units.
        eta: η, the fresh-noise share in the null space and the less-noisy branch (DDRM 0.85).
        eta_b: η_b, the weight of ``ȳ`` in the noisier branch (DDRM 1.0).

    Raises:
        ConfigError: ``sigma_y`` negative or not finite, ``eta`` or ``eta_b`` outside [0, 1].
        CapabilityError: from ``start``, when the operator has no SVD view for ``y``'s size.
    """

    sigma_y: float = attrs.field(default=0.0, validator=nonneg_number())
    eta: float | None = attrs.field(default=None, validator=optional(unit_interval()))  # None: the recipe's
    eta_b: float = attrs.field(default=1.0, validator=unit_interval())

    def start(self, ctx):  # noqa: ANN001 - see Guidance.start
        return attrs.evolve(ctx, extra=_spectral(_need_svd(self, ctx.op, ctx.y), ctx.y))

    def init(self, z, step, ctx):  # noqa: ANN001 - see Guidance.init
        sp: _Spectral = ctx.extra
        s = sp.view.s_like(z)
        sigma_T = step.sqrt_1m_abar / step.sqrt_abar
        sy = float(self.sigma_y)
        known = (s > 0) & (s * sigma_T >= sy)
        s_safe = torch.where(known, s, torch.ones_like(s))
        v = torch.where(known, sp.ybar + (sigma_T**2 - (sy / s_safe) ** 2).clamp_min(0.0).sqrt() * z, sigma_T * z)
        return step.sqrt_abar * sp.view.V(v)

    def update(self, x, x0, eps, step, ctx, generator):  # noqa: ANN001 - see Guidance.update
        sp: _Spectral = ctx.extra
        view = sp.view
        a = view.Vt(x0)
        s = view.s_like(a)
        sig = step.sigma_next / step.sqrt_abar_next  # σ′ (VE)
        sy, eta_b = float(self.sigma_y), float(self.eta_b)
        eta = step.eta if self.eta is None else float(self.eta)
        in_range = s > 0
        noisier = in_range & (s * sig >= sy)
        less = in_range & ~noisier
        s_safe = torch.where(in_range, s, torch.ones_like(s))
        z = rng.randn_like(a, generator) if sig > 0 else torch.zeros_like(a)
        c_dir = sig * math.sqrt(1.0 - eta * eta)
        null_v = a + c_dir * view.Vt(eps) + eta * sig * z
        noisier_v = eta_b * sp.ybar + (1.0 - eta_b) * a + (sig**2 - (sy * eta_b / s_safe) ** 2).clamp_min(0.0).sqrt() * z
        v = torch.where(noisier, noisier_v, null_v)
        if sy > 0:
            less_v = a + c_dir * (sp.uty - s * a) / sy + eta * sig * z
            v = torch.where(less, less_v, v)
        return step.sqrt_abar_next * view.V(v)


@attrs.frozen
class DPS(Guidance):
    r"""Diffusion Posterior Sampling (Chung et al., ICLR 2023; Algorithm 1).

    A DDPM ancestral step with the fixed-small posterior variance, then a gradient step on the
    **un-squared** residual norm, differentiated through ``x0(x_t)`` (network included):

        β = 1 − ᾱ_t/ᾱ_{t′},  β̃ = (1−ᾱ_{t′})/(1−ᾱ_t)·β
        μ = √ᾱ_{t′}·β/(1−ᾱ_t)·x0 + √(1−β)·(1−ᾱ_{t′})/(1−ᾱ_t)·x_t
        x′ = μ + √β̃·z − ζ·∇_{x_t} ‖y − A x0(x_t)‖

    Deviations: ADM's learned variance is not used (β̃ instead: the backbone protocol returns ε
    only); the norm is per sample (the reference takes one norm over the whole batch, which
    couples the samples; both agree at batch size 1). ζ = 0.3 (SR, deblur), 0.5 (inpainting).

    Args:
        zeta: the step size ζ ≥ 0 (DPS's ζ_i, constant over the steps).

    Raises:
        ConfigError: ``zeta`` negative or not finite.
    """

    zeta: float = attrs.field(default=0.3, validator=nonneg_number())

    needs_grad: ClassVar[bool] = True
    uses_eta: ClassVar[bool] = False

    def update(self, x, x0, eps, step, ctx, generator):  # noqa: ANN001 - see Guidance.update
        r = (ctx.op.A(x0) - ctx.y).reshape(x0.shape[0], -1)
        norm = torch.linalg.vector_norm(r, dim=1).sum()
        (grad,) = torch.autograd.grad(norm, x)
        a, an = step.abar, step.abar_next
        beta = 1.0 - a / an
        c_x0 = math.sqrt(an) * beta / (1.0 - a)
        c_x = math.sqrt(1.0 - beta) * (1.0 - an) / (1.0 - a)
        var = (1.0 - an) / (1.0 - a) * beta
        x_next = c_x0 * x0.detach() + c_x * x.detach()
        if var > 0.0:
            x_next = x_next + math.sqrt(var) * rng.randn_like(x_next, generator)
        return x_next - float(self.zeta) * grad


# GenStep and Context moved to invkit.plan (the plan the recipe builds).
__getattr__ = deprecated_names(__name__, {"GenStep": "invkit.plan:GenStep", "Context": "invkit.plan:Context"})
