r"""Second-order multistep generation: DPM-Solver++(2M) composed with any x0-guidance.

DPM-Solver++(2M) (Lu et al., "DPM-Solver++", arXiv 2211.01095, Algorithm 2) integrates the
probability-flow ODE in the data-prediction form with ``λ_t = log(√ᾱ_t/√(1−ᾱ_t))``: from step
``t`` (current) to ``t′`` (next), with ``h = λ_{t′} − λ_t``, the previous step's
``h₋ = λ_t − λ_{t₋}`` and ``r = h₋/h``,

    D  = (1 + 1/(2r))·x0_t − 1/(2r)·x0_{t₋}
    x′ = (σ_{t′}/σ_t)·x − α_{t′}(e^{−h} − 1)·D,       α = √ᾱ, σ = √(1−ᾱ)

Writing ``x = α_t·x0 + σ_t·ε`` this is the DDIM step ``α_{t′}·D̃ + σ_{t′}·ε`` on the
extrapolated estimate ``D̃ = x0 + w·(x0 − x0_{t₋})`` with ``w = (1 − e^{−h})/(2r)``. That is how
it composes here: the inner guidance corrects (e.g. back-projects) each x0 **before** the
extrapolation, and the recipe's usual update runs on ``D̃`` with the network's ε (as SSD's update
never recomputes ε). ``D̃`` is an affine combination (weights 1 + w and −w) of two consistent
estimates, so ``A·D̃ = y`` whenever both satisfy ``A x0 = y``, and the last step (ᾱ′ = 1, where
λ′ = ∞) is taken first-order, returning the guided x0 itself: back projection stays exact.

With the recipe's noise mix η > 0 the same extrapolation is SDE-DPM-Solver++(2M) (Lu et al.,
§5, the midpoint form) whose per-step noise level ``η_s`` satisfies ``e^{−η_s·h} = √(1−η²)``:
``w = (1 − √(1−η²)·e^{−h})/(2r)`` and the update is the DDNM-style
``α′·D̃ + √(1−η²)σ′·ε + ησ′·z``. η = 0 is the deterministic DPM-Solver++(2M); the first step
(no history), a step right after DDNM time travel and the last step are first order (DDIM).

Why a guidance wrapper rather than a new loop or a Recipe field: the multistep rule needs only
the previous step's guided x0 and λ, which it keeps in the run's ``Context.extra`` (created
afresh by ``start`` for every run), so the one generation loop stays untouched.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import torch

from .errors import ConfigError
from .guidance import BackProj, Guidance, ddim_update
from .validators import instance_of

__all__ = ["DPMSolver2M", "log_snr"]


def log_snr(abar: float) -> float:
    """``λ = log(√ᾱ/√(1−ᾱ)) = ½·log(ᾱ/(1−ᾱ))``, DPM-Solver's half log-SNR (∞ at ᾱ = 1)."""
    if abar >= 1.0:
        return math.inf
    return 0.5 * math.log(abar / (1.0 - abar))


class _History:
    """The previous generation step's guided x0, λ and timestep (mutable, one per run)."""

    __slots__ = ("inner", "x0", "lam", "t")

    def __init__(self, inner: Any):
        self.inner = inner  # the wrapped guidance's own Context
        self.x0: torch.Tensor | None = None
        self.lam = 0.0
        self.t = -1


def _plain_update(instance, attribute, value):  # noqa: ANN001 - attrs validator signature
    if value.needs_grad or type(value).update is not Guidance.update:
        raise ConfigError(
            f"DPMSolver2M replaces the generation update, so it wraps only guidances that correct x0 "
            f"(BackProj, StagedBackProj, NoGuidance, …); {type(value).__name__} has its own update"
        )


@attrs.frozen
class DPMSolver2M(Guidance):
    r"""DPM-Solver++(2M) generation steps around an x0-guidance (module doc for the maths).

    Args:
        guidance: the x0 correction applied before the extrapolation (default ``BackProj()``);
            it must not override ``update`` (DDRM, DDNM+ and DPS do and are refused).

    Raises:
        ConfigError: ``guidance`` is not a Guidance, or owns its update.

    Examples:
        ```python
        from invkit import Recipe, DA, BackProj
        from invkit.multistep import DPMSolver2M

        ssd_2m = Recipe(inverter=DA(eta=0.4), guidance=DPMSolver2M(BackProj()), t0=550,
                        inversion_steps=3, generation_steps=8, eta=0.8)      # 10 network calls
        ```
    """

    guidance: Guidance = attrs.field(
        factory=BackProj,
        validator=[instance_of(Guidance, "a Guidance that corrects x0 (BackProj, StagedBackProj, NoGuidance)"), _plain_update],
    )

    needs_grad: ClassVar[bool] = False

    def start(self, ctx):  # noqa: ANN001 - see Guidance.start
        return attrs.evolve(ctx, extra=_History(self.guidance.start(ctx)))

    def init(self, z, step, ctx):  # noqa: ANN001 - see Guidance.init
        return self.guidance.init(z, step, ctx.extra.inner)

    def x0(self, x0, step, ctx):  # noqa: ANN001 - see Guidance.x0
        return self.guidance.x0(x0, step, ctx.extra.inner)

    def update(self, x, x0, eps, step, ctx, generator):  # noqa: ANN001 - see Guidance.update
        hist: _History = ctx.extra
        lam = log_snr(step.abar)
        d = x0
        # second order only with a previous step just above this one and a finite λ′
        if hist.x0 is not None and step.t < hist.t and step.abar_next < 1.0:
            h = log_snr(step.abar_next) - lam
            h_prev = lam - hist.lam
            c = math.sqrt(1.0 - step.eta * step.eta)
            w = (1.0 - c * math.exp(-h)) * h / (2.0 * h_prev)
            d = x0 + w * (x0 - hist.x0)
        hist.x0, hist.lam, hist.t = x0, lam, step.t
        return ddim_update(d, eps, step, step.eta, generator)
