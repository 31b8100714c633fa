r"""Image-quality metrics as the SSD paper computed them, consistency, and the Fréchet distance.

Images are ``(B, C, H, W)`` tensors in ``[-1, 1]``. PSNR and SSIM are computed per image on the
**uint8-quantised** images, as SSD saved them (``trainer/utils.py::tensor2img``:
``x·0.5 + 0.5``, ``×255``, clip to ``[0, 255]``, ``astype(uint8)``, which truncates) and as the
IQA script read them back (``calc_metrics.py``: skimage ``peak_signal_noise_ratio(data_range=255)``
and ``structural_similarity(multichannel=True)``). Averaging over a dataset is the caller's
``.mean()``.

SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, eq. 13) with local statistics from a window ``w``:

``SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))``,
``C1 = (0.01·255)²``, ``C2 = (0.03·255)²``,

averaged over the positions whose window lies inside the image (skimage crops ``(win − 1)/2``
pixels from each border before averaging, so the padding mode never matters), then over
channels. Two windows:

- ``window="uniform"`` (the default, **the variant behind the paper's numbers**: skimage's
  default): a 7×7 box, with the sample-covariance factor ``N/(N − 1)``, ``N = 49``, on the
  variances and covariance (skimage ``use_sample_covariance=True``).
- ``window="gaussian"``: Wang et al.'s 11-tap Gaussian, σ = 1.5 (skimage
  ``gaussian_weights=True``, whose ``truncate=3.5`` gives radius 5), without the sample
  correction by default (skimage's recipe for reproducing Wang et al.:
  ``gaussian_weights=True, use_sample_covariance=False``).

FID for Fashion-MNIST uses a small CNN classifier trained here instead of InceptionV3:
:func:`fid_fashion` is the Fréchet distance between the Gaussians fitted to its 128-d
penultimate features. The classifier and its weights belong to the ``fashion32`` plugin, which
registers it as the ``"fashion"`` feature extractor (hook ``invkit_register_metrics``); this
module finds it there by name (:func:`load_features`).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ._compat import _warn
from .errors import ConfigError, InvalidInputError, PluginError, UnknownNameError
from .operator import Operator, check_tensor

__all__ = [
    "to_uint8",
    "psnr",
    "ssim",
    "consistency",
    "feature_stats",
    "frechet_distance",
    "fid_from_features",
    "load_features",
    "load_fashion_classifier",
    "fashion_features",
    "classifier_accuracy",
    "fid_fashion",
    "CLASSIFIER_FILE",
    "FASHION_FEATURES",
]

CLASSIFIER_FILE = "classifier.safetensors"


def __getattr__(name: str) -> Any:
    # the classifier moved into the fashion32 plugin; found through the metrics registry (by its
    # registered "net" class path) so that this core module names no plugin package
    if name == "FashionClassifier":
        from .plugins import metrics_registry, resolve_target

        try:
            spec = metrics_registry.get(FASHION_FEATURES)
        except UnknownNameError as exc:
            raise AttributeError(f"invkit.metrics.FashionClassifier is unavailable: {exc}") from None
        path = spec.meta.get("net")
        _warn("invkit.metrics.FashionClassifier", str(path).replace(":", "."))
        return resolve_target(path, "metric 'fashion'")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` → uint8 as SSD saves images: ``clip((x·0.5 + 0.5)·255, 0, 255)`` truncated."""
    return ((x * 0.5 + 0.5) * 255).clamp(0, 255).to(torch.uint8)


def _pair(x: torch.Tensor, y: torch.Tensor) -> None:
    check_tensor(x, "x", min_ndim=2)
    check_tensor(y, "y", min_ndim=2)
    if x.shape != y.shape:
        raise InvalidInputError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
    r"""Per-image PSNR in dB, ``10·log10(255² / MSE)``, on uint8 images (``(B,)`` float64).

    ``quantize=False`` skips the uint8 step and uses ``255·(x·0.5 + 0.5)`` as is. Identical
    images give ``inf`` (as skimage does).
    """
    _pair(x, y)
    a, b = _to_255(x, quantize), _to_255(y, quantize)
    mse = (a - b).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse)


def _to_255(x: torch.Tensor, quantize: bool) -> torch.Tensor:
    if quantize:
        return to_uint8(x).to(torch.float64)
    return (x.to(torch.float64) * 0.5 + 0.5) * 255


def _window(kind: str, win_size: int, sigma: float) -> torch.Tensor:
    if kind == "uniform":
        return torch.full((win_size,), 1.0 / win_size, dtype=torch.float64)
    if kind == "gaussian":
        r = torch.arange(win_size, dtype=torch.float64) - (win_size - 1) / 2
        g = torch.exp(-(r**2) / (2 * sigma**2))
        return g / g.sum()
    raise ConfigError(f"unknown SSIM window {kind!r}; use 'uniform' (the paper's) or 'gaussian'")


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    window: Literal["uniform", "gaussian"] = "uniform",
    win_size: int | None = None,
    sigma: float = 1.5,
    sample_covariance: bool | None = None,
    quantize: bool = True,
) -> torch.Tensor:
    r"""Per-image SSIM (``(B,)`` float64) of ``(B, C, H, W)`` images in ``[-1, 1]``; see the module doc.

    ``win_size`` defaults to 7 (uniform) or 11 (gaussian, ``2·⌊3.5σ + 0.5⌋ + 1``);
    ``sample_covariance`` to True (uniform) or False (gaussian).
    """
    _pair(x, y)
    if x.ndim != 4:
        raise InvalidInputError(f"ssim needs (B, C, H, W) images, got shape {tuple(x.shape)}")
    if win_size is None:
        win_size = 7 if window == "uniform" else 2 * int(3.5 * sigma + 0.5) + 1
    if sample_covariance is None:
        sample_covariance = window == "uniform"
    if win_size < 2 or win_size % 2 == 0:
        raise ConfigError(f"win_size must be an odd integer >= 3, got {win_size}")
    H, W = x.shape[-2:]
    if min(H, W) < win_size:
        raise InvalidInputError(f"images of {H}×{W} are smaller than the {win_size}×{win_size} SSIM window")
    w = _window(window, win_size, sigma).to(x.device)
    a, b = _to_255(x, quantize), _to_255(y, quantize)
    B, C = a.shape[:2]

    def filt(t: torch.Tensor) -> torch.Tensor:
        # separable 'valid' filtering = skimage's filtered map cropped by (win − 1)/2 on each side
        t = t.reshape(B * C, 1, H, W)
        t = nn.functional.conv2d(t, w.view(1, 1, -1, 1))
        t = nn.functional.conv2d(t, w.view(1, 1, 1, -1))
        return t.reshape(B, C, *t.shape[-2:])

    ux, uy = filt(a), filt(b)
    uxx, uyy, uxy = filt(a * a), filt(b * b), filt(a * b)
    n = win_size**2
    cov_norm = n / (n - 1) if sample_covariance else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    S = (2 * ux * uy + C1) * (2 * vxy + C2) / ((ux**2 + uy**2 + C1) * (vx + vy + C2))
    return S.flatten(2).mean(2).mean(1)


def consistency(op: Operator, x_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample data consistency ``‖A x̂ − y‖₂`` (``(B,)``, in ``[-1, 1]`` units)."""
    r = op.A(x_hat) - y
    return r.flatten(1).norm(dim=1)


# ---- Fréchet distance ---------------------------------------------------------------------------


def feature_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ``N − 1``) covariance of ``(N, D)`` features, in float64."""
    f = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    f = f.astype(np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise InvalidInputError(f"features must be (N, D) with N >= 2, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrt_psd(S: np.ndarray) -> np.ndarray:
    lam, Q = np.linalg.eigh((S + S.T) / 2)
    return (Q * np.sqrt(np.clip(lam, 0, None))) @ Q.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    r"""Fréchet (2-Wasserstein²) distance between ``N(μ1, Σ1)`` and ``N(μ2, Σ2)`` (Dowson & Landau 1982):

    ``d² = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^{1/2}``.

    ``tr (Σ1 Σ2)^{1/2}`` is computed as ``tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}`` (the same eigenvalues),
    a symmetric PSD matrix whose eigenvalues come from ``eigh`` and are clipped at 0. This avoids
    the complex round-off and singular-product failures of ``scipy.linalg.sqrtm(Σ1 Σ2)`` (which
    pytorch-fid patches with an ``ε·I`` offset) when features are rank deficient (N < D).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    D = mu1.shape[0]
    if mu2.shape != (D,) or s1.shape != (D, D) or s2.shape != (D, D):
        raise InvalidInputError(
            f"Fréchet distance needs means (D,) and covariances (D, D); got {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}"
        )
    r1 = _sqrt_psd(s1)
    M = r1 @ s2 @ r1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((M + M.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def fid_from_features(fa: np.ndarray | torch.Tensor, fb: np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between the Gaussians fitted to two ``(N, D)`` feature sets."""
    return frechet_distance(*feature_stats(fa), *feature_stats(fb))


# ---- feature extractors for FID (registered by plugins) ----------------------------------------

#: the registered feature extractor behind the Fashion-MNIST FID (provided by the fashion32 plugin)
FASHION_FEATURES = "fashion"


def load_features(name: str, weights: str | os.PathLike | None = None, *, device: torch.device | str | None = None) -> nn.Module:
    """The feature network registered as ``name`` (hook ``invkit_register_metrics``), in eval mode.

    Args:
        name: the registered feature extractor (``"fashion"`` for the Fashion-MNIST FID).
        weights: another weights file of the same network (default: the plugin's own).
        device: where to put the network.

    Raises:
        PluginError: no loaded plugin registers ``name`` (the message names a disabled provider).
    """
    from .plugins import metrics_registry

    try:
        spec = metrics_registry.get(name)
    except UnknownNameError as exc:
        raise PluginError(f"FID features {name!r} are not available: {exc}") from None
    return spec.factory(weights, device=device)


def load_fashion_classifier(
    weights: str | os.PathLike | None = None, *, device: torch.device | str | None = None
) -> nn.Module:
    """The trained Fashion-MNIST classifier (eval mode) whose ``features`` define :func:`fid_fashion`.

    It is the ``"fashion"`` feature extractor registered by the fashion32 plugin; ``weights``
    loads other weights of the same network (e.g. from ``invkit train --what classifier``).

    Raises:
        PluginError: the fashion32 plugin is disabled or not installed.
        MissingFileError: no weights file at ``weights``.
        CheckpointError: the file holds other weights.
    """
    return load_features(FASHION_FEATURES, weights, device=device)


def _check_fashion_images(x: torch.Tensor, name: str) -> None:
    check_tensor(x, name, ndim=4, channels=1)
    if x.shape[-2:] != (32, 32):
        raise InvalidInputError(f"{name} must be (N, 1, 32, 32) Fashion-MNIST images in [-1, 1], got {tuple(x.shape)}")


@torch.no_grad()
def fashion_features(images: torch.Tensor, net: nn.Module, *, batch_size: int = 256) -> torch.Tensor:
    """128-d penultimate features of ``(N, 1, 32, 32)`` images, ``(N, 128)`` float64 on the CPU."""
    _check_fashion_images(images, "images")
    device = next(net.parameters()).device
    out = [
        net.features(images[i : i + batch_size].to(device, torch.float32)).double().cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(out)


@torch.no_grad()
def classifier_accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``net`` on labelled images."""
    net.eval()
    device = next(net.parameters()).device
    correct = 0
    for i in range(0, images.shape[0], batch_size):
        pred = net(images[i : i + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == labels[i : i + batch_size].cpu()).sum())
    return correct / images.shape[0]


def fid_fashion(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    weights: str | os.PathLike | None = None,
) -> float:
    """FID between two sets of ``(N, 1, 32, 32)`` images in ``[-1, 1]`` on the classifier's features.

    Not comparable with Inception FIDs in papers: it measures distance in the feature space of
    the ``"fashion"`` feature extractor (see ``docs/fashion32.md`` for its floor, train vs test).
    """
    _check_fashion_images(images_a, "images_a")
    _check_fashion_images(images_b, "images_b")
    net = load_fashion_classifier(weights, device=device)
    fa = fashion_features(images_a, net, batch_size=batch_size)
    fb = fashion_features(images_b, net, batch_size=batch_size)
    return fid_from_features(fa, fb)
