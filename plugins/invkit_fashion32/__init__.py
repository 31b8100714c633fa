"""The embedded ``fashion32`` model: a small DDPM trained by this project on Fashion-MNIST.

Backbone registered: ``fashion32`` — a ddim-repo DDPM UNet (``invkit_ddpm``) for 1×32×32 images
in ``[-1, 1]`` (Fashion-MNIST padded 28 → 32 with background), ε-prediction, linear schedule
1e-4..0.02 with T = 1000. Its EMA weights (``fashion32.safetensors``) and config
(``fashion32.json``) ship inside this package, so ``invkit.backbone("fashion32")`` needs no path
and no download. Training: ``invkit train`` (see ``docs/fashion32.md`` for the exact command).

The package also ships ``classifier.safetensors``, the Fashion-MNIST CNN (:mod:`.classifier`) whose
features define :func:`invkit.metrics.fid_fashion`; it is registered as the ``"fashion"`` feature
extractor (hook ``invkit_register_metrics``).

This module stays light (no torch at import): ``invkit --help`` imports every plugin to list
commands. The network code lives in :mod:`.classifier`, imported when first used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invkit import hookimpl
from invkit.errors import ConfigError, MissingFileError, UnknownNameError

if TYPE_CHECKING:
    import torch

    from invkit.models import NetBackbone

__all__ = ["fashion32", "WEIGHTS", "CONFIG", "CLASSIFIER", "config", "FashionClassifier", "load_classifier"]

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "fashion32.safetensors"
CONFIG = HERE / "fashion32.json"
CLASSIFIER = HERE / "classifier.safetensors"


def config() -> dict[str, Any]:
    """The shipped ``fashion32.json``: net kwargs, schedule, training record."""
    if not CONFIG.is_file():
        raise MissingFileError(f"{CONFIG} is missing; reinstall invkit (the file ships with the invkit_fashion32 plugin)")
    try:
        return json.loads(CONFIG.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{CONFIG} is unreadable ({exc}); reinstall invkit") from None


def fashion32(
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> NetBackbone:
    """The embedded Fashion-MNIST 32×32 DDPM (1 channel, linear schedule, T = 1000), loaded strictly.

    ``checkpoint`` swaps in other weights of the same architecture (e.g. a later export of
    ``invkit train``); by default the shipped EMA weights are used.
    """
    cfg = config()
    if cfg.get("schedule", {}).get("name") != "linear" or cfg["schedule"].get("T") != 1000:
        raise ConfigError(f"{CONFIG}: fashion32 expects the linear T=1000 schedule, found {cfg.get('schedule')}")
    path = Path(checkpoint) if checkpoint is not None else WEIGHTS
    if not path.is_file():
        raise MissingFileError(f"fashion32 weights not found at {path}; reinstall invkit or pass checkpoint=PATH")
    try:
        from invkit import backbone
        # built by the DDPM plugin's factory: same strict loader, dtype and device handling
        model = backbone("ddpm", checkpoint=path, device=device, dtype=dtype, **cfg["model"])
    except UnknownNameError as exc:
        raise ConfigError(f"fashion32 needs the 'ddpm' backbone of the invkit_ddpm plugin, which is not loaded: {exc}") from exc
    if model.image_size != cfg["image_size"] or model.channels != cfg["channels"]:
        raise ConfigError(f"{CONFIG}: model built as {model.image_size} px × {model.channels} ch, config says otherwise")
    return model


def _params() -> int | None:
    try:
        return int(config()["params"])
    except (MissingFileError, KeyError, ValueError):
        return None


def __getattr__(name: str) -> Any:
    # the classifier imports torch; resolved on first use so that importing the plugin stays light
    if name in ("FashionClassifier", "load_classifier", "classifier"):
        from . import classifier

        return classifier if name == "classifier" else getattr(classifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _load_features(weights: str | os.PathLike | None = None, *, device: Any = None) -> Any:
    """The Fashion-MNIST classifier (eval mode) whose ``features`` give the 128-d FID features."""
    from .classifier import load_classifier  # torch is imported only when the metric is used

    return load_classifier(weights, device=device)


@hookimpl
def invkit_register_metrics(register):
    register(
        "fashion",
        _load_features,
        description="128-d penultimate features of the Fashion-MNIST classifier (FID on 1×32×32 images)",
        net="invkit_fashion32.classifier:FashionClassifier",
        dim=128,
        shape=(1, 32, 32),
        weights=str(CLASSIFIER),
    )


@hookimpl
def invkit_register_backbones(register):
    register(
        "fashion32",
        fashion32,
        description="embedded Fashion-MNIST 32×32 DDPM (1 channel), trained by invkit; no download",
        checkpoint="embedded",
        params=_params(),
    )
