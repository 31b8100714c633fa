r"""Inverters: one step *up* the diffusion, from timestep ``t`` to ``t_next > t``.

A recipe with an inverter starts at ``x = A⁺y`` (the "clean" state at ``t = 0``) and walks its
inverter up the inversion list to ``t0 − 1`` (SSD, Liu et al., IJCAI 2024, §3.1–3.2).
With ``a = ᾱ_t``, ``a_n = ᾱ_{t_next}`` and the respaced beta ``b = 1 − a_n/a``:

- ``DA`` (Distortion-Adaptive inversion, SSD eq. 11):

      x0     = clamp((x − √(1−a)·ε)/√a, −1, 1)
      x_next = √a_n·x0 + √(1 − a_n − η·b)·ε + √(η·b)·z,        z ~ N(0, I)

  η is the fraction of the step's incremental variance ``b`` replaced by fresh noise.
- ``DDIM`` is ``DA(eta=0)``: the deterministic DDIM inversion ``√a_n·x0 + √(1−a_n)·ε`` (SSD eq. 9).
- ``DDPM`` is the forward noising step (SSD eq. 10) ``q(x_next | x) = N(√(1−b)·x, b·I)``. It needs no
  network call (SDEdit); ``DA(eta=1, clamp=False)`` equals it in exact arithmetic because
  ``1 − a_n − b = a_n(1 − a)/a`` cancels the ε terms.

The shared loop in ``invkit.sampling`` makes the network call (so the NFE is counted in one
place) and hands ``eps`` to ``Inverter.step``; an inverter with ``needs_eps = False`` gets
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
    """What one inversion step returns: the new state and the clean estimate it used (or None).

    Attributes:
        x: the state at the next (higher) timestep.
        x0: the clean estimate the step used, or ``None`` (``DDPM`` uses none).
    """

    x: torch.Tensor
    x0: torch.Tensor | None


def predict_x0(x: torch.Tensor, eps: torch.Tensor, abar: float, clamp: bool) -> torch.Tensor:
    r"""Tweedie/DDIM clean estimate ``x̂0 = (x − √(1−ᾱ)·ε)/√ᾱ``, optionally clamped to [−1, 1].

    The DDIM prediction of x₀ (Song et al., ICLR 2021, eq. 12); only ``x0`` is clamped, ``eps``
    is never recomputed from the clamped value (as SSD, DDNM and DDRM do).

    Args:
        x: the state at the current timestep.
        eps: the network's noise prediction at that timestep.
        abar: ᾱ at that timestep (a Python float in (0, 1]).
        clamp: clip the estimate to [−1, 1].

    Returns:
        The clean estimate, shaped like ``x``.
    """
    x0 = (x - math.sqrt(1.0 - abar) * eps) / math.sqrt(abar)
    return x0.clamp(-1.0, 1.0) if clamp else x0


class Inverter:
    """Base class: ``step(x, eps, abar, abar_next, generator) -> InverterStep``.

    ``abar``/``abar_next`` are ᾱ at the current and the next (higher) timestep as Python floats;
    ``eps`` is the network's output at the current timestep, or None when ``needs_eps`` is False.
    Subclasses are ``attrs.frozen`` value objects whose fields are validated at construction
    (``invkit.validators``).

    Attributes:
        needs_eps: whether the step uses the network's ε at the current timestep (each step then
            costs one network call, counted in ``RunResult.nfe``).
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
        """One step up, from the current timestep to the next (higher) one.

        Args:
            x: the state at the current timestep.
            eps: the network's output at the current timestep, or ``None`` when ``needs_eps``
                is False.
            abar: ᾱ at the current timestep.
            abar_next: ᾱ at the next timestep (smaller than ``abar``).
            generator: the source of any fresh noise (one generator or one per sample).

        Returns:
            The new state and the clean estimate it used.
        """
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
    r"""SSD's Distortion-Adaptive inversion (Liu et al., IJCAI 2024, §3.2, eq. 11):

        x_next = √a_n·x0 + √(1 − a_n − η·b)·ε + √(η·b)·z,   b = 1 − a_n/a

    η is the fraction of the step's incremental variance ``b`` replaced by fresh noise.

    Args:
        eta: η ∈ [0, 1]: 0 is DDIM inversion, 1 the DDPM forward step. SSD uses 0.4 (SR,
            deblur, inpainting) and 0.8 (colorization).
        clamp: clip x0 to [−1, 1] as SSD does; turn it off for data outside that range (e.g.
            the Gaussian-mixture vectors).

    Raises:
        ConfigError: ``eta`` outside [0, 1] or ``clamp`` not a bool.

    Examples:
        ```python
        from invkit import DA, BackProj, Recipe

        ssd30 = Recipe(inverter=DA(eta=0.4), guidance=BackProj(), t0=550,
                       inversion_steps=5, generation_steps=25)     # 4 + 25 = 29 network calls
        ```
    """

    eta: float = attrs.field(default=0.4, validator=unit_interval(_ETA_HINT))
    clamp: bool = attrs.field(default=True, validator=boolean)

    def step(self, x, eps, abar, abar_next, generator):  # noqa: ANN001 - see Inverter.step
        return _da_step(x, eps, abar, abar_next, float(self.eta), self.clamp, generator)


@attrs.frozen
class DDIM(Inverter):
    r"""Deterministic DDIM inversion ``x_next = √a_n·x0 + √(1−a_n)·ε`` (≡ ``DA(eta=0)``).

    SSD eq. 9 (Liu et al., IJCAI 2024): the reverse of the DDIM update; SSD's ablation
    (Table S2) shows it alone gives faithful but unrealistic restorations.

    Args:
        clamp: clip x0 to [−1, 1].
    """

    clamp: bool = attrs.field(default=True, validator=boolean)

    def step(self, x, eps, abar, abar_next, generator):  # noqa: ANN001 - see Inverter.step
        return _da_step(x, eps, abar, abar_next, 0.0, self.clamp, generator)


@attrs.frozen
class DDPM(Inverter):
    r"""The forward noising step ``x_next = √(1−b)·x + √b·z``, ``b = 1 − a_n/a`` (no network call).

    Composed over a list of timesteps it samples ``q(x_{t0−1} | x_0)`` exactly; SDEdit
    (Meng et al., ICLR 2022) starts its generation from that. SSD eq. 10 writes it as "DDPM
    inversion". It takes no arguments and makes no network call (``needs_eps`` is False).
    """

    needs_eps: ClassVar[bool] = False

    def step(self, x, eps, abar, abar_next, generator):  # noqa: ANN001 - see Inverter.step
        b = 1.0 - abar_next / abar
        return InverterStep(math.sqrt(1.0 - b) * x + math.sqrt(b) * rng.randn_like(x, generator), None)
