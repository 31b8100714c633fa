r"""The Fashion-MNIST classifier whose penultimate features define :func:`invkit.metrics.fid_fashion`.

The plugin registers it as the ``"fashion"`` feature extractor (hook ``invkit_register_metrics``);
:func:`invkit.metrics.load_fashion_classifier` finds it there, so the core never imports this
package. ``invkit train --what classifier`` trains it (:func:`train_classifier`) and exports its
weights (:func:`export_classifier`); the trained weights ship as ``classifier.safetensors``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from invkit.checkpoint import load_state_dict, save_state_dict, write_atomic
from invkit.errors import CheckpointError, MissingFileError
from invkit.validators import positive_int, positive_number

__all__ = [
    "FashionClassifier",
    "load_classifier",
    "ClassifierTrainConfig",
    "train_classifier",
    "export_classifier",
    "CLASSIFIER_FILE",
    "WEIGHTS",
]

CLASSIFIER_FILE = "classifier.safetensors"
WEIGHTS = Path(__file__).resolve().parent / CLASSIFIER_FILE


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class FashionClassifier(nn.Module):
    """A small CNN (≈ 0.2 M parameters) for 32×32 Fashion-MNIST in ``[-1, 1]``.

    ``[conv16 ×2, pool] → [conv32 ×2, pool] → [conv64, pool] → 1024 → fc128 + ReLU → fc10``
    (3×3 convolutions with batch norm and ReLU). :meth:`features` is the 128-d penultimate layer
    used by :func:`invkit.metrics.fid_fashion`. Trained by ``invkit train --what classifier``.
    """

    def __init__(self, classes: int = 10, width: int = 16, features: int = 128):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            *_conv(1, w), *_conv(w, w), nn.MaxPool2d(2),
            *_conv(w, 2 * w), *_conv(2 * w, 2 * w), nn.MaxPool2d(2),
            *_conv(2 * w, 4 * w), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        self.fc = nn.Linear(4 * w * 16, features)
        self.head = nn.Linear(features, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(self.body(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def load_classifier(
    weights: str | os.PathLike | None = None, *, device: torch.device | str | None = None
) -> FashionClassifier:
    """The trained :class:`FashionClassifier` (eval mode), loaded strictly from a weights file.

    Args:
        weights: a ``.safetensors`` (or torch) weights file; default: the shipped ``classifier.safetensors``.
        device: where to put the network (default CPU).

    Raises:
        MissingFileError: no file at ``weights``.
        CheckpointError: the file is unreadable or holds other weights.
    """
    path = Path(weights).expanduser() if weights is not None else WEIGHTS
    if not path.is_file():
        raise MissingFileError(
            f"classifier weights not found at {path}; train them with `invkit train --what classifier --out DIR`"
        )
    net = FashionClassifier()
    state = load_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = str(exc).splitlines()[0]
        raise CheckpointError(f"{path} does not hold FashionClassifier weights: {detail}") from exc
    return net.to(device or "cpu").eval()


@attrs.frozen
class ClassifierTrainConfig:
    """Knobs of the Fashion-MNIST classifier behind :func:`invkit.metrics.fid_fashion`."""

    epochs: int = attrs.field(default=4, validator=positive_int())
    batch_size: int = attrs.field(default=128, validator=positive_int())
    lr: float = attrs.field(default=2e-3, validator=positive_number())
    flip: bool = True
    seed: int = 0


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: ClassifierTrainConfig = ClassifierTrainConfig(),
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> nn.Module:
    """Train :class:`FashionClassifier` with Adam and cross-entropy.

    Each epoch visits the images in a permutation drawn from a generator seeded with
    ``config.seed``; the learning rate decays as a cosine to 0 over all steps.

    Args:
        images: ``(N, 1, 32, 32)`` in ``[-1, 1]``.
        labels: ``(N,)`` class indices.
        config: the training knobs.
        device: where to train.
        progress: show a progress bar.

    Returns:
        The trained network in eval mode.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    g = torch.Generator(device).manual_seed(config.seed)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        net = FashionClassifier().to(device)
    images, labels = images.to(device), labels.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    n = images.shape[0]
    per_epoch = math.ceil(n / config.batch_size)
    total = config.epochs * per_epoch
    net.train()
    bar = tqdm(total=total, desc="train classifier", disable=not progress, mininterval=10)
    step = 0
    for _ in range(config.epochs):
        perm = torch.randperm(n, generator=g, device=device)
        for i in range(per_epoch):
            idx = perm[i * config.batch_size : (i + 1) * config.batch_size]
            x = images[idx]
            if config.flip:
                flip = torch.rand(x.shape[0], generator=g, device=device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            for group in opt.param_groups:
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = nn.functional.cross_entropy(net(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
    bar.close()
    return net.eval()


def export_classifier(net: nn.Module, path: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Classifier weights → ``path`` (safetensors) and ``info`` → ``path`` with suffix ``.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_state_dict({k: v.float() for k, v in net.state_dict().items()}, path)
    write_atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))
    return path
