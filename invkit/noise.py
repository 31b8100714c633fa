r"""Measurement noise, kept separate from the operator: ``y = noise(A x)``.

Units: images live in [-1, 1] inside invkit, so a Gaussian of standard deviation σ in [0, 1]
pixel units is ``Gaussian(2σ)`` here. DDRM and DDNM double their CLI ``sigma_y`` for the same
reason; ``Gaussian.from_unit_range`` does the conversion for you.

Every noise draws only from the ``generator`` its caller passes (one, or a list with one per
sample, see ``invkit.rng``), so a measurement is reproducible and independent of torch's global
RNG.
"""

from __future__ import annotations

import io

import attrs
import numpy as np
import torch

from . import rng
from .errors import InvalidDTypeError, InvalidInputError
from .operator import Operator, check_tensor
from .validators import nonneg_number

__all__ = ["Noise", "NoNoise", "Gaussian", "UniformGaussian", "JPEG", "Measurement"]


def _measurement(y: object, *, ndim: int | None = None) -> torch.Tensor:
    """A real floating-point, batched, non-empty ``y`` (typed errors otherwise)."""
    y = check_tensor(y, "y", ndim=ndim, min_ndim=1)
    if y.is_complex():
        raise InvalidDTypeError(f"y is complex ({y.dtype}); measurement noise is defined for real tensors")
    if y.numel() == 0:
        raise InvalidInputError(f"y has no values (shape {tuple(y.shape)})")
    return y


class Noise:
    """Corrupts a clean measurement ``A x``; call it as ``noise(y, generator=g)``.

    Every noise raises :class:`~invkit.errors.InvalidDTypeError` for a ``y`` that is not a real
    floating-point tensor and :class:`~invkit.errors.InvalidInputError` for an empty one.

    Subclass it (an ``attrs.frozen`` class, like the built-ins) and implement ``__call__``.

    Attributes:
        sigma: the standard deviation in [-1, 1] units when it is known and the same for every
            sample, else ``None``. Evaluation passes it to noise-aware guidance (DDNM+, DDRM)
            as their ``sigma_y``.
    """

    #: standard deviation in [-1, 1] units when known and the same for every sample, else None
    sigma: float | None = 0.0

    def __call__(self, y: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return a corrupted copy of ``y``.

        Args:
            y: the clean measurement ``A x``, batch first.
            generator: one ``torch.Generator`` or a list with one per sample, on ``y``'s
                device; ``None`` uses a fresh generator seeded with 0.

        Returns:
            The noisy measurement, same shape, dtype and device as ``y``.
        """
        raise NotImplementedError


@attrs.frozen
class NoNoise(Noise):
    """No noise: ``y = A x`` exactly."""

    sigma: float = 0.0

    def __call__(self, y: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return _measurement(y)


@attrs.frozen
class Gaussian(Noise):
    r"""Additive white Gaussian noise ``y + σ n``, ``n ~ N(0, I)``, σ in **[-1, 1] units**.

    Args:
        sigma: the standard deviation σ ≥ 0 in [-1, 1] units (0 returns ``y`` unchanged).

    Raises:
        InvalidInputError: ``sigma`` is negative, infinite or not a number.

    Examples:
        ```python
        import torch
        from invkit import Gaussian

        noise = Gaussian.from_unit_range(0.05)        # σ = 0.05 in [0, 1] units = 0.1 here
        y_noisy = noise(y, generator=torch.Generator().manual_seed(0))
        ```
    """

    sigma: float = attrs.field(validator=nonneg_number(error=InvalidInputError))

    @classmethod
    def from_unit_range(cls, sigma01: float) -> "Gaussian":
        """σ given in [0, 1] pixel units (as DDRM/DDNM's ``--sigma_y``): ``Gaussian(2·σ)``.

        Args:
            sigma01: the standard deviation in [0, 1] pixel units.

        Returns:
            ``Gaussian(2·sigma01)``.
        """
        return cls(2.0 * float(sigma01))

    def __call__(self, y: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        y = _measurement(y)
        if self.sigma == 0:
            return y
        g = rng.resolve(generator, y.device, y.shape[0])
        return y + self.sigma * rng.randn_like(y, g)


@attrs.frozen
class UniformGaussian(Noise):
    r"""Gaussian noise whose σ is drawn per sample from U[0, σ_max] ([-1, 1] units).

    This is SSD+'s protocol (Liu et al., IJCAI 2024, §4.3 and Table 2: σ ~ U[0, 0.2] in [-1, 1]
    units, i.e. U[0, 0.1] in [0, 1] units). Its ``sigma`` is ``None``: a solver is not told the
    per-sample σ.

    Args:
        sigma_max: the upper end of the uniform range, in [-1, 1] units.

    Raises:
        InvalidInputError: ``sigma_max`` is negative or not a finite number.
    """

    sigma_max: float = attrs.field(default=0.2, validator=nonneg_number(error=InvalidInputError))
    sigma = None  # per-sample, unknown to a solver

    def __call__(self, y: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        y = _measurement(y)
        g = rng.resolve(generator, y.device, y.shape[0])
        s = rng.rand((y.shape[0],), g, dtype=y.dtype, device=y.device) * self.sigma_max
        return y + s.reshape((-1,) + (1,) * (y.ndim - 1)) * rng.randn_like(y, g)


@attrs.frozen
class JPEG(Noise):
    """JPEG compression at ``quality`` (Pillow, baseline 4:2:0), as SSD+'s JPEG experiments (q = 60).

    ``y`` must be image-shaped ``(B, C, H, W)`` in [-1, 1]; it is quantised to uint8, encoded and
    decoded per sample (RGB for C = 3, each channel as greyscale otherwise) and mapped back. It
    draws no randomness (the generator is accepted for a uniform interface). SSD+ (Liu et al.,
    IJCAI 2024, Table 2) used quality 60 through a different encoder (basicsr's DiffJPEG), so the
    compressed values are close to, not identical with, the paper's.

    Args:
        quality: the JPEG quality, an integer in 1..100.

    Raises:
        InvalidInputError: ``quality`` is outside 1..100 or not an integer.
    """

    quality: int = attrs.field(default=60)

    @quality.validator
    def _check_quality(self, attribute, value):  # noqa: ANN001
        if not (isinstance(value, int) and 1 <= value <= 100):
            raise InvalidInputError(f"JPEG quality must be an integer in 1..100, got {value!r}")

    sigma = None

    def __call__(self, y: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        from PIL import Image

        y = _measurement(y, ndim=4)
        u8 = ((y.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
        out = np.empty(u8.shape, dtype=np.uint8)
        for b in range(u8.shape[0]):
            planes = [u8[b].transpose(1, 2, 0)] if u8.shape[1] == 3 else [u8[b, c] for c in range(u8.shape[1])]
            decoded = []
            for plane in planes:
                buf = io.BytesIO()
                Image.fromarray(plane, mode="RGB" if plane.ndim == 3 else "L").save(buf, format="JPEG", quality=self.quality)
                buf.seek(0)
                decoded.append(np.asarray(Image.open(buf).convert("RGB" if plane.ndim == 3 else "L")))
            out[b] = decoded[0].transpose(2, 0, 1) if u8.shape[1] == 3 else np.stack(decoded)
        return torch.from_numpy(out).to(device=y.device, dtype=y.dtype) / 127.5 - 1


@attrs.frozen
class Measurement:
    """An operator and the noise that corrupts its output: ``sample(x) = noise(A x)``.

    Args:
        op: the degradation ``A``.
        noise: what corrupts ``A x`` (no noise by default).

    Examples:
        ```python
        import torch, invkit
        from invkit import Gaussian, Measurement

        m = Measurement(invkit.operator("sr_bicubic", scale=4), Gaussian(0.1))
        y = m.sample(x, generator=torch.Generator().manual_seed(0))
        ```
    """

    op: Operator
    noise: Noise = attrs.field(factory=NoNoise)

    def sample(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Simulate a measurement of ``x`` (without autograd).

        Args:
            x: clean images ``(B, ...)`` in [-1, 1].
            generator: the noise's source (one generator or one per sample).

        Returns:
            ``noise(A x)``.
        """
        check_tensor(x, "x", min_ndim=2)
        with torch.no_grad():
            return self.noise(self.op.A(x), generator=generator)
