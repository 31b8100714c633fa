r"""Inverters: one step *up* the diffusion, from timestep ``t`` to ``t_next > t``.

A recipe with an inverter starts at ``x = A⁺y`` (the "clean" state at ``t = 0``) and walks its
inverter up the inversion list to ``t0 − 1`` (SSD, Liu et al. IJCAI 2024, spec ``ssd.md`` §2).
With ``a = ᾱ_t``, ``a_n = ᾱ_{t_next}`` and the respaced beta ``b = 1 − a_n/a``:

- :class:`DA` (Distortion-Adaptive inversion, SSD's ``q_sample_ddim``)::

      x0     = clamp((x − √(1−a)·ε)/√a, −1, 1)
      x_next = √a_n·x0 + √(1 − a_n − η·b)·ε + √(η·b)·z,        z ~ N(0, I)

  η is the fraction of the step's incremental variance ``b`` replaced by fresh noise.
- :class:`DDIM` is ``DA(eta=0)``: the deterministic DDIM inversion ``√a_n·x0 + √(1−a_n)·ε``.
- :class:`DDPM` is the forward noising step ``q(x_next | x) = N(√(1−b)·x, b·I)``. It needs no
  network call (SDEdit); ``DA(eta=1, clamp=False)`` equals it in exact arithmetic because
  ``1 − a_n − b = a_n(1 − a)/a`` cancels the ε terms.

The shared loop in :mod:`invkit.sampling` makes the network call (so the NFE is counted in one
place) and hands ``eps`` to :meth:`Inverter.step`; an inverter with ``needs_eps = False`` gets
``eps=None`` and costs no call.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import attrs
import torch

from . import rng
from .validators import boolean, unit_interval

__all__ = ["Inverter", "InverterStep", "DA", "DDIM", "DDPM", "predict_x0"]


class InverterStep(NamedTuple):
    """What one inversion step returns: the new state and the clean estimate it used (or None)."""

    x: torch.Tensor
    x0: torch.Tensor | None


def predict_x0(x: torch.Tensor, eps: torch.Tensor, abar: float, clamp: bool) -> torch.Tensor:
    r"""Tweedie/DDIM clean estimate ``x̂0 = (x − √(1−ᾱ)·ε)/√ᾱ``, optionally clamped to [−1, 1]."""
    x0 = (x - math.sqrt(1.0 - abar) * eps) / math.sqrt(abar)
    return x0.clamp(-1.0, 1.0) if clamp else x0


class Inverter:
    """Base class: ``step(x, eps, abar, abar_next, generator) -> InverterStep``.

    ``abar``/``abar_next`` are ᾱ at the current and the next (higher) timestep as Python floats;
    ``eps`` is the network's output at the current timestep, or None when ``needs_eps`` is False.
    """

    needs_eps: ClassVar[bool] = True

    def step(
        self,
        x: torch.Tensor,
        eps: torch.Tensor | None,
        abar: float,
        abar_next: float,
        generator: torch.Generator,
    ) -> InverterStep:  # pragma: no cover - abstract
        raise NotImplementedError


_ETA_HINT = " (0 = DDIM inversion, 1 = DDPM forward noising)"


def _da_step(
    x: torch.Tensor, eps: torch.Tensor, abar: float, abar_next: float, eta: float, clamp: bool,
    generator: torch.Generator,
) -> InverterStep:
    b = 1.0 - abar_next / abar
    x0 = predict_x0(x, eps, abar, clamp)
    # max(0, ·) guards the η = 1 case, where the exact value a_n(1−a)/a may round below zero
    c_eps = math.sqrt(max(0.0, 1.0 - abar_next - eta * b))
    c_z = math.sqrt(max(0.0, eta * b))
    x_next = math.sqrt(abar_next) * x0 + c_eps * eps
    if c_z > 0.0:
        x_next = x_next + c_z * rng.randn_like(x, generator)
    return InverterStep(x_next, x0)


@attrs.frozen
class DA(Inverter):
    r"""SSD's Distortion-Adaptive inversion (``ssd.md`` §2)::

        x_next = √a_n·x0 + √(1 − a_n − η·b)·ε + √(η·b)·z,   b = 1 − a_n/a

    ``eta`` ∈ [0, 1]: 0 is DDIM inversion, 1 the DDPM forward step. SSD uses 0.4 (SR, deblur,
    inpainting) and 0.8 (colorization). ``clamp`` clips x0 to [−1, 1] as SSD does; turn it off
    for data outside that range (e.g. the GMM vectors).
    """

    eta: float = attrs.field(default=0.4, validator=unit_interval(_ETA_HINT))
    clamp: bool = attrs.field(default=True, validator=boolean)

    def step(self, x, eps, abar, abar_next, generator):  # noqa: ANN001 - see Inverter.step
        return _da_step(x, eps, abar, abar_next, float(self.eta), self.clamp, generator)


@attrs.frozen
class DDIM(Inverter):
    r"""Deterministic DDIM inversion ``x_next = √a_n·x0 + √(1−a_n)·ε`` (≡ ``DA(eta=0)``)."""

    clamp: bool = attrs.field(default=True, validator=boolean)

    def step(self, x, eps, abar, abar_next, generator):  # noqa: ANN001 - see Inverter.step
        return _da_step(x, eps, abar, abar_next, 0.0, self.clamp, generator)


@attrs.frozen
class DDPM(Inverter):
    r"""The forward noising step ``x_next = √(1−b)·x + √b·z``, ``b = 1 − a_n/a`` (no network call).

    Composed over a list of timesteps it samples ``q(x_{t0−1} | x_0)`` exactly; SDEdit
    (Meng et al. 2022) starts its generation from that.
    """

    needs_eps: ClassVar[bool] = False

    def step(self, x, eps, abar, abar_next, generator):  # noqa: ANN001 - see Inverter.step
        b = 1.0 - abar_next / abar
        return InverterStep(math.sqrt(1.0 - b) * x + math.sqrt(b) * rng.randn_like(x, generator), None)
