r"""Rank-deficient operators that define only ``A``: the core derives ``AT`` by autograd and
``pinv`` by conjugate gradients. They are test fixtures, not plugins.

Each has an exact, known structure, so the tests can build vectors orthogonal to its range and
know the dimension of its null space:

- :class:`CircularBlur`: ``F⁻¹(K̂ ⊙ F x)`` with exact zeros in ``K̂`` (a conjugation-symmetric set
  ``Z`` of frequencies): ``null(A)`` and ``range(A)^⊥`` are both the signals supported on ``Z``;
- :class:`GroupSum`: each output is the sum of a group of pixels (a partition of the image):
  full row rank, null space of dimension ``H·W − groups`` per channel;
- :class:`RepeatedRows`: ``y = [B x; B x]``: ``[u; −u]`` is orthogonal to the range and
  ``Aᵀ[u; −u]`` is exactly 0;
- :class:`LowRank`: ``U_r diag(s) V_rᵀ`` with ``r < min(m, n)``; in floating point its trailing
  singular values are ~1e-16 rather than 0, so CG must treat rounding as null.

Every non-zero singular value lies in [1, 3] (in [1, √3] for the group sums, whose groups have
1 to 3 pixels), so ``‖A⁺‖ ≤ 1``, ``‖A‖ ≤ 3`` and ``κ² ≤ KAPPA2 = 9`` on range(Aᵀ).
``EXAMPLES`` maps a name to ``example(rng) -> (operator, in_shape)``, the contract of registered
operators, so the property suite runs on them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from invkit import Operator

KAPPA2 = 9.0


def _gauss(rng: np.random.Generator, *shape: int) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape))


def _orthonormal(rng: np.random.Generator, n: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(_gauss(rng, n, n))
    return q


class CircularBlur(Operator):
    """Per channel, ``A x = irfft2(K̂ ⊙ rfft2 x)`` on ``(B, C, H, W)``; ``K̂`` is the half spectrum
    of a real kernel (magnitude in [1, 3] off its zero set ``Z``, and an odd phase)."""

    def __init__(self, spectrum: torch.Tensor, zeros: torch.Tensor):
        super().__init__()
        self.register_buffer("K_re", spectrum.real.clone())
        self.register_buffer("K_im", spectrum.imag.clone())
        self.register_buffer("zeros", zeros)  # bool (H, W) on the full grid: the set Z

    @classmethod
    def draw(cls, rng: np.random.Generator, H: int, W: int, k: int) -> "CircularBlur":
        """``k`` frequencies drawn at random, with their conjugates, become exact zeros."""
        neg_h, neg_w = (-np.arange(H)) % H, (-np.arange(W)) % W

        def conj(a: np.ndarray) -> np.ndarray:  # a(−ω)
            return a[neg_h][:, neg_w]

        mag = rng.uniform(1.0, 3.0, (H, W))
        mag = (mag + conj(mag)) / 2
        phase = rng.uniform(-np.pi, np.pi, (H, W))
        phase = (phase - conj(phase)) / 2  # odd: the kernel is real
        zeros = np.zeros((H, W), dtype=bool)
        zeros.flat[rng.choice(H * W, size=min(k, H * W), replace=False)] = True
        zeros |= conj(zeros)
        full = np.where(zeros, 0.0, mag * np.exp(1j * phase))
        return cls(torch.from_numpy(full[:, : W // 2 + 1]), torch.from_numpy(zeros))

    @property
    def null_dim(self) -> int:
        """Real dimension of ``null(A)`` per channel: one per frequency in ``Z`` (a pair
        ``±ω`` gives a cosine and a sine)."""
        return int(self.zeros.sum())

    def A(self, x: torch.Tensor) -> torch.Tensor:
        K = torch.complex(self.K_re.to(x.dtype), self.K_im.to(x.dtype))
        return torch.fft.irfft2(torch.fft.rfft2(x) * K, s=x.shape[-2:])

    def orthogonal_to_range(self, g: torch.Generator, batch: int, channels: int) -> torch.Tensor | None:
        """A random real ``y`` whose spectrum lies on ``Z`` (so ``Aᵀ y = 0`` up to rounding)."""
        if self.null_dim == 0:
            return None
        H, W = self.zeros.shape
        spec = torch.randn((batch, channels, H, W), generator=g, dtype=torch.complex128)
        return torch.fft.ifft2(spec * self.zeros).real.contiguous()


class GroupSum(Operator):
    """``y[c, j] = Σ_{p ∈ G_j} x[c, p]`` for a partition ``G_1 … G_m`` of the ``H·W`` pixels into
    groups of 1 to 3 pixels: ``(B, C, H, W) → (B, C, m)``."""

    def __init__(self, groups: torch.Tensor, in_shape: tuple[int, int, int]):
        super().__init__()
        self.register_buffer("groups", groups)  # (H·W,) group label of each pixel
        self.in_shape = in_shape
        self.m = int(groups.max()) + 1

    @classmethod
    def draw(cls, rng: np.random.Generator, C: int, H: int, W: int) -> "GroupSum":
        sizes = []
        while sum(sizes) < H * W:
            sizes.append(int(rng.integers(1, 4)))
        sizes[-1] -= sum(sizes) - H * W
        if sizes[-1] == 0:
            sizes.pop()
        labels = np.repeat(np.arange(len(sizes)), sizes)[rng.permutation(H * W)]
        return cls(torch.from_numpy(labels), (C, H, W))

    @property
    def null_dim(self) -> int:
        return self.in_shape[1] * self.in_shape[2] - self.m

    def A(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        out = flat.new_zeros(x.shape[0], x.shape[1], self.m)
        return out.index_add(2, self.groups, flat)

    def orthogonal_to_range(self, g: torch.Generator, batch: int, channels: int) -> torch.Tensor | None:
        return None  # full row rank: range(A) is everything


class RepeatedRows(Operator):
    """``y = [B x; B x]`` on flat ``(B, n)`` inputs, ``B`` an ``m × n`` matrix of rank ``m ≤ n``."""

    def __init__(self, B: torch.Tensor):
        super().__init__()
        self.register_buffer("B", B)
        self.in_shape = (B.shape[1],)

    @classmethod
    def draw(cls, rng: np.random.Generator, m: int, n: int) -> "RepeatedRows":
        s = torch.from_numpy(rng.uniform(1.0, 3.0, m)) / 2**0.5  # [B; B] has singular values √2·s
        return cls((_orthonormal(rng, m) * s) @ _orthonormal(rng, n)[:, :m].T)

    @property
    def null_dim(self) -> int:
        return self.B.shape[1] - self.B.shape[0]

    def A(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.B.to(x.dtype).T
        return torch.cat([z, z], dim=-1)

    def orthogonal_to_range(self, g: torch.Generator, batch: int, channels: int) -> torch.Tensor:
        """``[u; −u]``: ``Aᵀ`` of it is ``Bᵀu − Bᵀu``, exactly 0."""
        u = torch.randn((batch, self.B.shape[0]), generator=g, dtype=torch.float64)
        return torch.cat([u, -u], dim=-1)


class LowRank(Operator):
    """``y = M x`` on flat ``(B, n)`` inputs, ``M = U_r diag(s) V_rᵀ`` (``m × n``, rank ``r``)."""

    def __init__(self, U: torch.Tensor, s: torch.Tensor, V: torch.Tensor):
        super().__init__()
        self.register_buffer("M", (U * s) @ V.T)
        self.register_buffer("U", U)  # orthonormal basis of range(M), to build y ⟂ range
        self.in_shape = (V.shape[0],)

    @classmethod
    def draw(cls, rng: np.random.Generator, m: int, n: int, r: int) -> "LowRank":
        s = torch.from_numpy(rng.uniform(1.0, 3.0, r))
        return cls(_orthonormal(rng, m)[:, :r], s, _orthonormal(rng, n)[:, :r])

    @property
    def null_dim(self) -> int:
        return self.M.shape[1] - self.U.shape[1]

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.M.to(x.dtype).T

    def orthogonal_to_range(self, g: torch.Generator, batch: int, channels: int) -> torch.Tensor:
        v = torch.randn((batch, self.M.shape[0]), generator=g, dtype=torch.float64)
        return v - (v @ self.U) @ self.U.T


def _blur(rng: np.random.Generator):
    C, H, W = int(rng.integers(1, 3)), int(rng.integers(2, 9)), int(rng.integers(2, 9))
    return CircularBlur.draw(rng, H, W, k=int(rng.integers(1, 5))), (C, H, W)


def _group_sum(rng: np.random.Generator):
    C, H, W = int(rng.integers(1, 3)), int(rng.integers(1, 7)), int(rng.integers(2, 7))
    op = GroupSum.draw(rng, C, H, W)
    return op, op.in_shape


def _repeated_rows(rng: np.random.Generator):
    n = int(rng.integers(1, 13))
    op = RepeatedRows.draw(rng, int(rng.integers(1, n + 1)), n)
    return op, op.in_shape


def _low_rank(rng: np.random.Generator):
    m, n = int(rng.integers(2, 13)), int(rng.integers(2, 13))
    op = LowRank.draw(rng, m, n, int(rng.integers(1, min(m, n))))
    return op, op.in_shape


EXAMPLES: dict[str, Callable[[np.random.Generator], tuple[Operator, tuple[int, ...]]]] = {
    "rank_deficient_circular_blur": _blur,
    "rank_deficient_group_sum": _group_sum,
    "rank_deficient_repeated_rows": _repeated_rows,
    "rank_deficient_low_rank": _low_rank,
}
