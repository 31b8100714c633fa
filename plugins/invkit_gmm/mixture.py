r"""A Gaussian mixture prior with its exact diffusion score, denoiser and posterior.

Prior :math:`p_0(x) = \sum_k w_k\,\mathcal N(x; \mu_k, S_k)`. Under the VP forward process
:math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon` every component stays
Gaussian (spec ``gmm.md`` §3.1):

.. math::  p_t(x) = \sum_k w_k\,\mathcal N(x;\ m_k, C_k),\quad
           m_k = \sqrt{\bar\alpha}\,\mu_k,\quad C_k = \bar\alpha S_k + (1-\bar\alpha) I,

so the score, the noise prediction ``eps = −√(1−ᾱ)·∇log p_t`` (the convention of MCGdiff's
``EpsilonNetFromScore`` and TMPD), Tweedie's ``E[x_0 | x_t]`` and the posterior for a linear
Gaussian measurement are closed forms. That makes the mixture the ground truth against which the
recipes are measured (Cardoso et al., "Monte Carlo guided diffusion", ICLR 2024, §5.1).

Every covariance is stored by its eigendecomposition ``S_k = Q_k diag(λ_k) Q_kᵀ``: ``Q`` is
``None`` (axis-aligned: identity or diagonal covariances), one ``(d, d)`` basis shared by all
components (the posterior of an identity-covariance prior), or ``(K, d, d)``. Diffusion only
changes the eigenvalues, ``λ ↦ ᾱλ + 1 − ᾱ``, and the shared cases cost ``O(B·K·d)`` per call
through matrix products, which keeps d = 800 cheap.

Maths is done in the mixture's dtype (float64 by default) whatever the input's: in d = 800 the
log-densities are of order 10⁵ and their differences decide the responsibilities.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from invkit.models import Backbone, as_timestep_tensor
from invkit.errors import CapabilityError, InvalidInputError
from invkit.operator import Operator
from invkit.rng import resolve
from invkit.schedule import NoiseSchedule

__all__ = ["GaussianMixture"]

_LOG_2PI = math.log(2 * math.pi)


def _as_tensor(v: object, name: str, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        if not (v.is_floating_point() or v.dtype in (torch.int32, torch.int64)):
            raise InvalidInputError(f"{name} must be a real tensor, got dtype {v.dtype}")
        return v.detach().to(dtype=dtype, device=device)
    try:
        return torch.as_tensor(v, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{name} must be a tensor or a nested list of numbers: {exc}") from None


def _eig_of_covs(covs: torch.Tensor | None, K: int, d: int, dtype, device) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(Q, λ)`` of the covariances given as None (identity), ``(K, d)`` diagonals, ``(K, d, d)``
    full matrices or one shared ``(d, d)`` matrix."""
    if covs is None:
        return None, torch.ones(1, d, dtype=dtype, device=device)
    if covs.shape == (K, d):
        if not bool((covs > 0).all()):
            raise InvalidInputError("diagonal covariances (K, d) must be > 0 everywhere")
        return None, covs.clone()
    if covs.shape in ((K, d, d), (1, d, d)):
        asym = (covs - covs.transpose(-1, -2)).abs().amax()
        if float(asym) > 1e-8 * max(float(covs.abs().amax()), 1.0):
            raise InvalidInputError("full covariances must be symmetric; symmetrise them with (S + S.mT) / 2")
        lam, Q = torch.linalg.eigh(covs)
        if not bool((lam > 0).all()):
            raise InvalidInputError(
                f"covariances must be positive definite; the smallest eigenvalue is {float(lam.min()):.3g}"
            )
        return (Q[0] if covs.shape[0] == 1 else Q), lam
    raise InvalidInputError(
        f"covs must be None (identity), (K, d) diagonals, (K, d, d) or one shared (1, d, d) matrix with "
        f"K = {K}, d = {d}; got shape {tuple(covs.shape)}"
    )


class GaussianMixture(Backbone):
    r"""``p_0 = Σ_k w_k N(μ_k, S_k)`` as an exact noise predictor for ``schedule``.

    Args:
        weights: ``(K,)`` non-negative, normalised here.
        means: ``(K, d)``.
        covs: ``None`` (every ``S_k = I``), ``(K, d)`` diagonals, ``(K, d, d)`` full matrices or
            one ``(1, d, d)`` matrix shared by all components; positive definite.
        schedule: the VP schedule ``eps`` is exact for (default ``NoiseSchedule.linear(1000)``,
            1e-4 … 0.02 increasing; MCGdiff's scripts use the reverse, *decreasing*
            ``linspace(0.02, 1e-4, 999)``, a quirk not copied here).
        dtype: the dtype all maths runs in (float64 by default; outputs follow the input's dtype).

    ``model(x, t)`` takes ``x`` of shape ``(B, d)`` (or ``(B, ...)`` with ``d`` entries per sample)
    and the integer timestep ``t`` (int or ``(B,)`` tensor) and returns
    ``eps = −√(1 − ᾱ_t)·∇log p_t(x)``. Methods taking ``t=None`` use the clean prior (ᾱ = 1).
    """

    image_size = None

    def __init__(
        self,
        weights: object,
        means: object,
        covs: object = None,
        *,
        schedule: NoiseSchedule | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        if not dtype.is_floating_point:
            raise InvalidInputError(f"dtype must be a floating-point dtype, got {dtype}")
        w = _as_tensor(weights, "weights", dtype, device)
        mu = _as_tensor(means, "means", dtype, device)
        if mu.ndim != 2 or mu.shape[0] < 1 or mu.shape[1] < 1:
            raise InvalidInputError(f"means must have shape (K, d), got {tuple(mu.shape)}")
        K, d = mu.shape
        if w.shape != (K,):
            raise InvalidInputError(f"weights must have shape ({K},) to match means (K, d) = {tuple(mu.shape)}")
        if not bool(torch.isfinite(w).all() and (w >= 0).all()) or float(w.sum()) <= 0:
            raise InvalidInputError("weights must be finite, >= 0 and not all zero")
        if not bool(torch.isfinite(mu).all()):
            raise InvalidInputError("means contain NaN or Inf values")
        S = None if covs is None else _as_tensor(covs, "covs", dtype, device)
        Q, lam = _eig_of_covs(S, K, d, dtype, device)
        self._setup(torch.log(w) - torch.log(w.sum()), mu, Q, lam, schedule)

    @classmethod
    def _from_eig(
        cls,
        log_weights: torch.Tensor,
        means: torch.Tensor,
        Q: torch.Tensor | None,
        lam: torch.Tensor,
        schedule: NoiseSchedule,
    ) -> "GaussianMixture":
        self = cls.__new__(cls)
        Backbone.__init__(self)
        self._setup(log_weights - torch.logsumexp(log_weights, 0), means, Q, lam, schedule)
        return self

    def _setup(self, log_w, mu, Q, lam, schedule) -> None:
        self.schedule = schedule if schedule is not None else NoiseSchedule.linear(1000)
        if not isinstance(self.schedule, NoiseSchedule):
            raise InvalidInputError(f"schedule must be a NoiseSchedule, got {type(self.schedule).__name__}")
        self.channels = mu.shape[1]
        self.register_buffer("log_weights", log_w)
        self.register_buffer("means", mu)
        self.register_buffer("Q", Q)
        self.register_buffer("lam", lam)

    # -- description ---------------------------------------------------------------------------
    @property
    def d(self) -> int:
        return self.means.shape[1]

    @property
    def K(self) -> int:
        return self.means.shape[0]

    @property
    def weights(self) -> torch.Tensor:
        return self.log_weights.exp()

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def shared_cov(self) -> bool:
        """Whether every component has the same covariance."""
        return self.lam.shape[0] == 1 and (self.Q is None or self.Q.ndim == 2)

    def covariances(self) -> torch.Tensor:
        """The dense covariances ``S_k``, shape ``(K, d, d)`` (builds K·d² numbers)."""
        return self._dense(self.K)

    def _dense(self, n: int) -> torch.Tensor:
        lam = self.lam.expand(n, self.d)
        if self.Q is None:
            return torch.diag_embed(lam)
        Q = self.Q.expand(n, self.d, self.d)
        return (Q * lam[:, None, :]) @ Q.transpose(-1, -2)

    def extra_repr(self) -> str:
        kind = "identity" if self.Q is None and bool((self.lam == 1).all()) else (
            "diagonal" if self.Q is None else ("shared full" if self.Q.ndim == 2 else "full")
        )
        return f"K={self.K}, d={self.d}, covariances={kind}, schedule={self.schedule!r}"

    def _mu_frame(self) -> torch.Tensor:
        """Means in their component's eigenbasis, ``μ̃_k = Q_kᵀ μ_k``."""
        if self.Q is None:
            return self.means
        if self.Q.ndim == 2:
            return self.means @ self.Q
        return torch.einsum("kd,kde->ke", self.means, self.Q)

    # -- the diffused marginal -----------------------------------------------------------------
    def _abar(self, t: int | None) -> float:
        if t is None:
            return 1.0
        if not 0 <= int(t) < self.schedule.T:
            raise InvalidInputError(f"timestep {int(t)} is outside the schedule's range 0..{self.schedule.T - 1}")
        return float(self.schedule.abar[int(t)])

    def diffused(self, t: int | None) -> "GaussianMixture":
        """The marginal ``p_t`` as a mixture: means ``√ᾱ μ_k``, covariances ``ᾱ S_k + (1 − ᾱ) I``."""
        ab = self._abar(t)
        return GaussianMixture._from_eig(
            self.log_weights, math.sqrt(ab) * self.means, self.Q, ab * self.lam + (1 - ab), self.schedule
        )

    def _flat(self, x: object, name: str = "x") -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise InvalidInputError(f"{name} must be a floating-point tensor of shape (B, {self.d})")
        if x.ndim < 2 or x[0].numel() != self.d:
            raise InvalidInputError(f"{name} must have shape (B, {self.d}) (or (B, ...) with {self.d} entries); got {tuple(x.shape)}")
        shape, dt = x.shape, x.dtype
        return x.reshape(x.shape[0], self.d).to(self.dtype), lambda out: out.reshape(shape).to(dt)

    def _by_t(self, x: torch.Tensor, t: int | torch.Tensor | None, fn: Callable[[torch.Tensor, float], torch.Tensor]) -> torch.Tensor:
        """``fn(x_subset, ᾱ)`` over the groups of samples that share a timestep."""
        if t is None:
            return fn(x, 1.0)
        tt = as_timestep_tensor(t, x)
        values = torch.unique(tt)
        if values.numel() == 1:
            return fn(x, self._abar(int(values[0])))
        out = None
        for v in values.tolist():
            idx = (tt == v).nonzero().squeeze(1)
            part = fn(x[idx], self._abar(v))
            if out is None:
                out = part.new_empty((x.shape[0],) + tuple(part.shape[1:]))
            out[idx] = part
        return out

    def _terms(self, x: torch.Tensor, ab: float):
        """Per-component quantities at ``ᾱ``: frame coordinates, ``m̃``, ``c`` (eigenvalues of C_k),
        log-joint ``log w_k + log N(x; m_k, C_k)`` of shape ``(B, K)``."""
        c = ab * self.lam + (1 - ab)
        if bool((c <= 0).any()):
            raise CapabilityError(
                "this mixture has singular covariances (a noiseless posterior) and no density at ᾱ = 1; "
                "evaluate it at a timestep t >= 0 or only sample from it"
            )
        m = math.sqrt(ab) * self._mu_frame()
        cK = c.expand(self.K, self.d)
        if self.Q is None or self.Q.ndim == 2:
            xr = x if self.Q is None else x @ self.Q
            # ‖x − m_k‖²_{C⁻¹} expanded into matrix products: O(B·K·d) without a (B, K, d) tensor
            quad = (xr * xr) @ (1 / cK).T - 2 * xr @ (m / cK).T + (m * m / cK).sum(1)
        else:
            xr = torch.einsum("bd,kde->bke", x, self.Q)
            quad = ((xr - m) ** 2 / cK).sum(-1)
        log_joint = self.log_weights - 0.5 * (quad + torch.log(cK).sum(1) + self.d * _LOG_2PI)
        return xr, m, cK, log_joint

    def _back(self, vr: torch.Tensor, R: torch.Tensor | None = None) -> torch.Tensor:
        """Frame coordinates back to x-space (for per-component frames, summed with weights R)."""
        if self.Q is None:
            return vr
        if self.Q.ndim == 2:
            return vr @ self.Q.T
        return torch.einsum("bk,kde,bke->bd", R, self.Q, vr)

    # -- log density, responsibilities, score, eps, Tweedie --------------------------------------
    def log_prob(self, x: torch.Tensor, t: int | torch.Tensor | None = None) -> torch.Tensor:
        """``log p_t(x)`` per sample, shape ``(B,)`` (``t=None``: the prior ``p_0``)."""
        xf, _ = self._flat(x)
        out = self._by_t(xf, t, lambda v, ab: torch.logsumexp(self._terms(v, ab)[3], 1))
        return out.to(x.dtype)

    def responsibilities(self, x: torch.Tensor, t: int | torch.Tensor | None = None) -> torch.Tensor:
        r"""``r_k(x) = softmax_k[log w_k + log N(x; m_k, C_k)]``, shape ``(B, K)`` (the law of the
        component given ``x_t = x``)."""
        xf, _ = self._flat(x)
        return self._by_t(xf, t, lambda v, ab: torch.softmax(self._terms(v, ab)[3], 1)).to(x.dtype)

    def _score(self, x: torch.Tensor, ab: float) -> torch.Tensor:
        xr, m, c, lj = self._terms(x, ab)
        R = torch.softmax(lj, 1)
        if xr.ndim == 2:
            return self._back(R @ (m / c) - xr * (R @ (1 / c)))
        return self._back((m - xr) / c, R)

    def score(self, x: torch.Tensor, t: int | torch.Tensor | None = None) -> torch.Tensor:
        r"""``∇_x log p_t(x) = Σ_k r_k(x) C_k⁻¹ (m_k − x)``."""
        xf, back = self._flat(x)
        return back(self._by_t(xf, t, self._score))

    def forward(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        r"""``eps(x, t) = −√(1 − ᾱ_t)·∇log p_t(x)`` (exact; 0 at ᾱ = 1)."""
        xf, back = self._flat(x)
        return back(self._by_t(xf, t, lambda v, ab: -math.sqrt(1 - ab) * self._score(v, ab)))

    def _x0_mean(self, x: torch.Tensor, ab: float) -> torch.Tensor:
        xr, m, c, lj = self._terms(x, ab)
        R = torch.softmax(lj, 1)
        mu = self._mu_frame()
        g = self.lam.expand(self.K, self.d) / c  # S_k C_k⁻¹ in the frame
        if xr.ndim == 2:
            return self._back(R @ mu + math.sqrt(ab) * (xr * (R @ g) - R @ (g * m)))
        return self._back(mu + math.sqrt(ab) * g * (xr - m), R)

    def x0_mean(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        r"""``E[x_0 | x_t = x] = Σ_k r_k(x) a_k``, ``a_k = μ_k + √ᾱ S_k C_k⁻¹ (x − √ᾱ μ_k)``.

        The closed form of the conditional law (spec §3.3). Tweedie's formula
        ``(x − √(1−ᾱ) eps)/√ᾱ`` gives the same value; the tests check that they agree.
        """
        xf, back = self._flat(x)
        return back(self._by_t(xf, t, self._x0_mean))

    # -- sampling ------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact samples, shape ``(n, d)``: a component by its weight, then ``μ_k + Q_k √λ_k z``."""
        if not isinstance(n, int) or n < 1:
            raise InvalidInputError(f"the number of samples must be an integer >= 1, got {n!r}")
        g = resolve(generator, self.means.device)
        k = torch.multinomial(self.weights, n, replacement=True, generator=g)
        z = torch.randn((n, self.d), generator=g, dtype=self.dtype, device=self.means.device)
        z = z * self.lam.expand(self.K, self.d)[k].sqrt()
        if self.Q is None:
            return self.means[k] + z
        if self.Q.ndim == 2:
            return self.means[k] + z @ self.Q.T
        out = self.means[k].clone()
        for j in torch.unique(k).tolist():
            idx = (k == j).nonzero().squeeze(1)
            out[idx] += z[idx] @ self.Q[j].T
        return out

    # -- the exact posterior -------------------------------------------------------------------
    def _matrix(self, A: torch.Tensor | Operator) -> torch.Tensor:
        if isinstance(A, Operator):
            # the columns A e_i: works for any linear operator on flat (B, d) vectors
            eye = torch.eye(self.d, dtype=self.dtype, device=self.means.device)
            M = A.A(eye).reshape(self.d, -1).T
        elif isinstance(A, torch.Tensor):
            M = A.to(dtype=self.dtype, device=self.means.device)
        else:
            raise InvalidInputError(f"A must be a (d_y, d) tensor or an Operator, got {type(A).__name__}")
        if M.ndim != 2 or M.shape[1] != self.d:
            raise InvalidInputError(f"A must be a (d_y, {self.d}) matrix, got shape {tuple(M.shape)}")
        return M

    def posterior(self, A: torch.Tensor | Operator, y: torch.Tensor, sigma_y: float) -> "GaussianMixture":
        r"""The exact posterior of ``y = A x + σ_y n``, ``n ~ N(0, I)``, as a mixture (spec §3.4).

        With the SVD ``A = U diag(s) Vᵀ`` restricted to its ``r`` non-zero singular values,
        ``A_r = diag(s_r) V_rᵀ`` and ``y_r = U_rᵀ y`` carry all the information on ``x`` (the rest
        of ``y`` is noise with the same likelihood under every component). Then, per component,

        .. math::  G_k = A_r S_k A_rᵀ + σ_y² I,\quad K_k = S_k A_rᵀ G_k^{-1},\quad
                   μ'_k = μ_k + K_k (y_r − A_r μ_k),\quad S'_k = S_k − K_k A_r S_k,

        .. math::  \log w'_k = \log w_k + \log N(y_r; A_r μ_k, G_k) − \text{logsumexp}.

        This is the precision form ``S'⁻¹ = S⁻¹ + AᵀA/σ²`` rewritten so that ``σ_y = 0`` is exact:
        the prior conditioned on ``{A x = y}`` (then ``y`` must lie in the range of ``A``).
        Eigenvalues of ``S'_k`` below ``10·d·ε·max λ`` are set to 0, so noiseless samples satisfy
        ``A x = y`` to rounding.

        Args:
            A: a ``(d_y, d)`` matrix or an :class:`~invkit.operator.Operator` on ``(B, d)`` vectors.
            y: one measurement, shape ``(d_y,)`` or ``(1, d_y)``.
            sigma_y: the noise standard deviation, ``>= 0``.
        """
        M = self._matrix(A)
        yv = _as_tensor(y, "y", self.dtype, self.means.device).reshape(-1)
        if yv.numel() != M.shape[0]:
            raise InvalidInputError(
                f"y must hold one measurement of {M.shape[0]} entries (shape ({M.shape[0]},) or (1, {M.shape[0]})); "
                f"got shape {tuple(y.shape) if isinstance(y, torch.Tensor) else '?'}"
            )
        sigma = float(sigma_y)
        if not math.isfinite(sigma) or sigma < 0:
            raise InvalidInputError(f"sigma_y must be a finite number >= 0, got {sigma_y!r}")
        U, s, Vh = torch.linalg.svd(M, full_matrices=False)
        eps = torch.finfo(self.dtype).eps
        r = int((s > max(M.shape) * eps * (float(s[0]) if s.numel() else 0.0)).sum())
        if r == 0:
            return GaussianMixture._from_eig(self.log_weights, self.means, self.Q, self.lam, self.schedule)
        Ar = s[:r, None] * Vh[:r]
        yr = U[:, :r].T @ yv
        if sigma == 0:
            resid = float((yv - U[:, :r] @ yr).norm())
            if resid > 1e-8 * max(float(yv.norm()), 1.0):
                raise InvalidInputError(
                    f"y is not in the range of A (residual {resid:.3g}), so a noiseless posterior does not exist; "
                    f"pass the noise level sigma_y > 0"
                )
        S = self._dense(1 if self.shared_cov else self.K)
        SAt = S @ Ar.T  # (K|1, d, r)
        G = Ar @ SAt + sigma**2 * torch.eye(r, dtype=self.dtype, device=M.device)
        L = torch.linalg.cholesky(G)
        gain = torch.cholesky_solve(SAt.transpose(-1, -2), L).transpose(-1, -2)  # S Aᵀ G⁻¹
        resid = yr - self.means @ Ar.T  # (K, r)
        means = self.means + (gain @ resid.unsqueeze(-1)).squeeze(-1)
        z = torch.linalg.solve_triangular(L, resid.unsqueeze(-1), upper=False).squeeze(-1)
        log_det = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        log_ev = -0.5 * ((z * z).sum(-1) + log_det + r * _LOG_2PI)
        S_post = S - gain @ SAt.transpose(-1, -2)
        lam, Q = torch.linalg.eigh(0.5 * (S_post + S_post.transpose(-1, -2)))
        top = lam.amax(-1, keepdim=True)
        lam = torch.where(lam > 10 * self.d * eps * top, lam, torch.zeros_like(lam))
        Q = Q[0] if self.shared_cov else Q
        return GaussianMixture._from_eig(self.log_weights + log_ev, means, Q, lam, self.schedule)
