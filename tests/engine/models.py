"""Analytic test parts: a Gaussian prior with its exact ε, and small linear operators."""

from __future__ import annotations

import math

import torch

from invkit.models import Backbone
from invkit.operator import Operator, SVDView
from invkit.schedule import NoiseSchedule


class GaussianPrior(Backbone):
    r"""The prior N(μ, s²I): its exact noise predictor is
    ``ε(x, t) = √(1−ᾱ)·(x − √ᾱ·μ)/(ᾱ·s² + 1 − ᾱ)`` (the diffused law is N(√ᾱμ, (ᾱs² + 1 − ᾱ)I)).

    Counts its calls (``calls``) and records the timesteps it saw (``seen``). ``image_size``,
    ``size_multiple`` and ``value_range`` set the Backbone attributes the recipe's input checks read.
    """

    def __init__(
        self, mu: float = 0.1, s: float = 0.5, T: int = 1000, channels: int = 3, *,
        image_size: int | None = None, size_multiple: int | None = None,
        value_range: tuple[float, float] | None = (-1.0, 1.0),
    ):  # fmt: skip
        super().__init__()
        self.schedule = NoiseSchedule.linear(T)
        self.mu, self.s2 = mu, s * s
        self.channels = channels
        self.image_size, self.size_multiple, self.value_range = image_size, size_multiple, value_range
        self.calls = 0
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:  # noqa: ANN001
        self.calls += 1
        self.seen.append(int(t))
        a = float(self.schedule.abar[int(t)])
        return math.sqrt(1 - a) * (x - math.sqrt(a) * self.mu) / (a * self.s2 + 1 - a)


class BadAt(GaussianPrior):
    """Returns a broken ε (NaN, or the wrong shape with ``shape=True``) at the timesteps in ``bad``."""

    def __init__(self, bad: set[int], *, shape: bool = False, **kw):  # noqa: ANN003
        super().__init__(**kw)
        self.bad, self.shape = set(bad), shape

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:  # noqa: ANN001
        eps = super().forward(x, t)
        if int(t) in self.bad:
            return eps[:, :1] if self.shape else eps * float("nan")
        return eps


class Gain(Operator):
    """``A x = g·x`` (a large gain g makes a legitimate y far outside [−1, 1]); A⁺ y = y/g."""

    def __init__(self, g: float):
        super().__init__()
        self.g = g

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.g * x

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y / self.g


class Matrix(Operator):
    """``y = x Mᵀ`` on flat vectors ``(B, d)``, with an exact SVD view (spectral shape = x's)."""

    def __init__(self, M: torch.Tensor):
        super().__init__()
        m, d = M.shape
        U, S, Vh = torch.linalg.svd(M)  # full: U (m, m), Vh (d, d)
        self.register_buffer("M", M)
        self.register_buffer("Um", U)
        self.register_buffer("Vh", Vh)
        self.register_buffer("S", torch.cat([S, S.new_zeros(d - S.numel())]))
        self.in_shape = (d,)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.M.T

    def svd(self) -> SVDView:
        m, d = self.M.shape
        return SVDView(
            V=lambda c: c @ self.Vh,
            Vt=lambda x: x @ self.Vh.T,
            U=lambda c: c[:, :m] @ self.Um.T,
            Ut=lambda y: torch.cat([y @ self.Um, y.new_zeros(y.shape[0], d - m)], dim=1),
            s=self.S,
        )


class MatrixNoSVD(Operator):
    """The same map with only ``A``: pinv falls back to conjugate gradients, no SVD view."""

    def __init__(self, M: torch.Tensor):
        super().__init__()
        self.register_buffer("M", M)
        self.in_shape = (M.shape[1],)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.M.T


class Mask(Operator):
    """Inpainting on images ``(B, C, H, W)``: keep pixels where ``mask`` (H, W) is 1; SVD with U = V = I."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.to(torch.float64))

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask.to(x.dtype)

    def svd(self) -> SVDView:
        ident = lambda v: v  # noqa: E731
        return SVDView(V=ident, Vt=ident, U=ident, Ut=lambda y: y * self.mask.to(y.dtype), s=self.mask)


def random_matrix(m: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=g, dtype=torch.float64) / math.sqrt(d)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
