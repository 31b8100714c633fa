r"""Noise schedules (betas → ᾱ_t) and timestep lists.

Discrete VP diffusion with ``T`` steps and 0-based timesteps ``t = 0..T-1``:
``ᾱ_t = Π_{s≤t} (1 − β_s)`` (Ho et al., NeurIPS 2020, eq. 4). ᾱ is computed in float64 and cast
where used, as guided-diffusion does.

Two spacings pick the timesteps a sampler visits:

- ``uniform`` (SSD's spacing): ``n`` steps spread over ``[0, t0 − 1]`` with
  a float stride ``(t0 − 1)/(n − 1)`` and Python's round-half-to-even. t0 = 550, n = 5 gives
  ``[0, 137, 274, 412, 549]``.
- ``leading`` (DDIM/DDRM/DDNM): ``skip = t0 // n`` and ``[0, skip, …, (n − 1)·skip]``.
  DDRM with 20 steps over T = 1000 gives ``[0, 50, …, 950]``.
- ``quadratic`` (DDIM's "quad" skip, Song et al. ICLR 2021, App. D.2, anchored at both ends):
  ``round((k/(n − 1))²·(t0 − 1))``, dense near t = 0.
- ``karras`` (Karras et al., NeurIPS 2022, eq. 5 with ρ = 7): the VE noise levels
  ``σ_k = (σ_max^{1/ρ} + k/(n − 1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`` between
  ``σ_min = σ(0)`` and ``σ_max = σ(t0 − 1)``, ``σ(t) = √((1 − ᾱ_t)/ᾱ_t)``, each mapped to the
  timestep of nearest log σ.

Both new spacings start at 0 and end at ``t0 − 1`` (so SSD's two lists still meet there);
where rounding makes two equal, the later ones move up one timestep at a time (then, if that
overshoots ``t0 − 1``, down), so the list is always ``n`` strictly increasing integers.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
import numpy as np
import torch

from .errors import ConfigError, InvalidInputError

__all__ = ["NoiseSchedule", "timesteps", "Spacing"]

Spacing = Literal["uniform", "leading", "quadratic", "karras"]

#: Karras et al.'s ρ for the ``karras`` spacing.
KARRAS_RHO = 7.0


def _linear_betas(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    # scaled so that other T keep the T=1000 endpoints' meaning (guided-diffusion's convention)
    scale = 1000.0 / T
    return np.linspace(scale * beta_start, scale * beta_end, T, dtype=np.float64)


def _cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal 2021, eq. 17: ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2), β clipped at 0.999."""

    def f(t: float) -> float:
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    return np.array([min(1 - f(i + 1) / f(i), max_beta) for i in range(T)], dtype=np.float64)


def _as_betas(b: object) -> np.ndarray:
    if isinstance(b, torch.Tensor):
        b = b.detach().cpu().double().numpy() if not b.is_complex() else b
    try:
        return np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"betas must be a 1-D array of numbers in (0, 1), got {type(b).__name__}") from None


def _check_T(T: object) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ConfigError(f"T must be an integer >= 1, got {T!r}")
    return int(T)


def _check_beta(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < value < 1:
        raise ConfigError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


@attrs.frozen(eq=False)
class NoiseSchedule:
    """A discrete VP schedule. Build with ``linear()`` or ``cosine()``, or from ``betas``.

    Args:
        betas: the ``T`` values β_t, each in (0, 1) (stored as a float64 array).
        name: a label shown in ``repr`` (``"linear"``, ``"cosine"``, ``"custom"``).

    Raises:
        ConfigError: ``betas`` is not a non-empty 1-D array of values in (0, 1).

    Examples:
        ```python
        from invkit import NoiseSchedule

        s = NoiseSchedule.linear()             # T = 1000, β from 1e-4 to 0.02
        s.abar_at(549) ** 0.5                  # 0.215: √ᾱ where SSD's generation starts
        s.timesteps(5, t0=550)                 # [0, 137, 274, 412, 549]
        ```
    """

    betas: np.ndarray = attrs.field(converter=_as_betas)
    name: str = "custom"

    def __attrs_post_init__(self) -> None:
        b = self.betas
        if b.ndim != 1 or b.size < 1 or not np.all(np.isfinite(b) & (b > 0) & (b < 1)):
            raise ConfigError("betas must be a 1-D array of values in (0, 1)")

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """Ho et al.'s linear schedule (1e-4 … 0.02 at T = 1000), the one every checkpoint here uses.

        Args:
            T: the number of timesteps. For ``T ≠ 1000`` both ends are scaled by ``1000/T``, as
                guided-diffusion does, so the schedule keeps its meaning.
            beta_start: β_0 at T = 1000.
            beta_end: β_{T−1} at T = 1000.

        Returns:
            The schedule, named ``"linear"``.

        Raises:
            ConfigError: ``T`` is not an integer >= 1, or a β end is not in (0, 1).
        """
        T = _check_T(T)
        start, end = _check_beta("beta_start", beta_start), _check_beta("beta_end", beta_end)
        return cls(_linear_betas(T, start, end), name="linear")

    @classmethod
    def cosine(cls, T: int = 1000) -> "NoiseSchedule":
        """Nichol & Dhariwal's cosine schedule (guided-diffusion's 64×64 model).

        ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2) with s = 0.008 and β clipped at 0.999 (Nichol &
        Dhariwal, ICML 2021, eq. 17).

        Args:
            T: the number of timesteps.

        Returns:
            The schedule, named ``"cosine"``.

        Raises:
            ConfigError: ``T`` is not an integer >= 1.
        """
        return cls(_cosine_betas(_check_T(T)), name="cosine")

    @property
    def T(self) -> int:
        """The number of timesteps."""
        return int(self.betas.size)

    @property
    def abar(self) -> np.ndarray:
        """ᾱ_t for t = 0..T−1 (float64)."""
        return np.cumprod(1.0 - self.betas)

    def abar_at(self, t: int) -> float:
        """ᾱ_t as a Python float, with the convention ᾱ_{−1} = 1 (the clean image)."""
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not -1 <= t < self.T:
            raise InvalidInputError(f"timestep must be an integer in -1..{self.T - 1} (-1: the clean image), got {t!r}")
        if t < 0:
            return 1.0
        return float(self.abar[t])

    def abar_tensor(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        """ᾱ_t for t = 0..T−1 as a tensor.

        Args:
            dtype: the tensor's dtype.
            device: the tensor's device.

        Returns:
            A ``(T,)`` tensor.
        """
        return torch.as_tensor(self.abar, dtype=dtype, device=device)

    def timesteps(self, n: int, t0: int | None = None, spacing: Spacing = "uniform") -> list[int]:
        """``n`` increasing timesteps in ``[0, t0 − 1]`` (``t0`` defaults to T). See module doc.

        Args:
            n: the number of timesteps.
            t0: one past the highest timestep (``None``: ``T``).
            spacing: ``"uniform"`` (SSD) or ``"leading"`` (DDIM/DDRM/DDNM).

        Returns:
            The increasing list, as ``timesteps(n, t0, spacing, T=self.T)``.
        """
        return timesteps(n, self.T if t0 is None else t0, spacing, T=self.T, abar=self.abar)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoiseSchedule) and np.array_equal(self.betas, other.betas)

    def __hash__(self) -> int:
        return hash(self.betas.tobytes())

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.name}, T={self.T})"


def _distinct(values: list[int], t0: int) -> list[int]:
    """``values`` (non-decreasing, in [0, t0 − 1], n ≤ t0) made strictly increasing in place."""
    out = list(values)
    for k in range(1, len(out)):
        out[k] = max(out[k], out[k - 1] + 1)
    out[-1] = min(out[-1], t0 - 1)
    for k in range(len(out) - 2, -1, -1):
        out[k] = min(out[k], out[k + 1] - 1)
    return out


def _karras(n: int, t0: int, abar: np.ndarray, rho: float = KARRAS_RHO) -> list[int]:
    log_sigma = 0.5 * np.log((1.0 - abar[:t0]) / abar[:t0])  # increasing in t
    lo, hi = math.exp(log_sigma[0]) ** (1 / rho), math.exp(log_sigma[-1]) ** (1 / rho)
    target = np.log(np.linspace(lo, hi, n) ** rho)
    idx = np.clip(np.searchsorted(log_sigma, target), 1, t0 - 1)
    nearer_below = (target - log_sigma[idx - 1]) <= (log_sigma[idx] - target)
    t = np.where(nearer_below, idx - 1, idx).astype(int).tolist()
    t[0], t[-1] = 0, t0 - 1
    return _distinct(t, t0)


def timesteps(
    n: int, t0: int, spacing: Spacing = "uniform", *, T: int | None = None, abar: np.ndarray | None = None
) -> list[int]:
    """``n`` increasing integer timesteps in ``[0, t0 − 1]``.

    ``uniform``: ``round(k·(t0 − 1)/(n − 1))`` accumulated as a float stride, half to even
    (SSD). ``leading``: ``k·(t0 // n)`` (DDIM/DDRM/DDNM). ``quadratic`` and ``karras``: see
    the module doc (both from 0 to ``t0 − 1``, strictly increasing).

    Args:
        n: the number of timesteps.
        t0: one past the highest timestep allowed.
        spacing: ``"uniform"``, ``"leading"``, ``"quadratic"`` or ``"karras"``.
        T: the schedule's number of timesteps, to check ``t0 <= T`` (``None``: not checked).
        abar: the schedule's ᾱ for ``karras`` (``None``: the linear schedule with ``T``
            timesteps, or 1000; every checkpoint here uses it).

    Returns:
        ``n`` increasing integers in ``[0, t0 − 1]``.

    Raises:
        ConfigError: ``n < 1``, ``t0 < 1``, ``t0 > T``, more steps than timesteps, or an
            unknown ``spacing``.

    Examples:
        ```python
        from invkit import timesteps

        timesteps(5, 550)                      # [0, 137, 274, 412, 549]   (SSD-30 inversion)
        timesteps(20, 1000, "leading")         # [0, 50, ..., 950]         (DDRM-20)
        ```
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"the number of steps must be an integer >= 1, got {n!r}")
    if isinstance(t0, bool) or not isinstance(t0, (int, np.integer)) or t0 < 1:
        raise ConfigError(f"t0 must be an integer >= 1, got {t0!r}")
    if T is not None and t0 > T:
        raise ConfigError(f"t0 = {t0} exceeds the schedule's T = {T}")
    if n > t0:
        raise ConfigError(f"{n} steps do not fit in the {t0} timesteps [0, {t0 - 1}]")
    if spacing == "uniform":
        if n == 1:
            return [t0 - 1]
        stride = (t0 - 1) / (n - 1)
        out, cur = [], 0.0
        for _ in range(n):
            out.append(int(round(cur)))
            cur += stride
        return out
    if spacing == "leading":
        skip = t0 // n
        return [k * skip for k in range(n)]
    if spacing == "quadratic":
        if n == 1:
            return [t0 - 1]
        return _distinct([int(round((k / (n - 1)) ** 2 * (t0 - 1))) for k in range(n)], t0)
    if spacing == "karras":
        if n == 1:
            return [t0 - 1]
        if abar is None:
            abar = np.cumprod(1.0 - _linear_betas(T or 1000, 1e-4, 0.02))
        abar = np.asarray(abar, dtype=np.float64)
        if abar.size < t0:
            raise ConfigError(f"karras spacing: the schedule has {abar.size} timesteps, fewer than t0 = {t0}")
        return _karras(n, t0, abar)
    raise ConfigError(f"unknown spacing {spacing!r}; use 'uniform', 'leading', 'quadratic' or 'karras'")
