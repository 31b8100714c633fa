r"""``invkit train``: train a DDPM backbone (or the FID feature classifier) on Fashion-MNIST.

The diffusion objective is Ho et al. (2020), eq. 14 ("L_simple"): draw ``x0`` from the data,
``t ~ U{0..T−1}`` and ``ε ~ N(0, I)``, form ``x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε`` and minimise
``‖ε − ε_θ(x_t, t)‖²`` (mean over pixels). The network is the ddim repository's ``Model``
(``invkit_ddpm.model.DDPMUNet``), the schedule the linear one (1e-4 … 0.02, T = 1000), the
optimiser Adam with gradient-norm clipping, a linear warm-up then a constant learning rate (so
stopping early leaves a model trained exactly as the longer run would have been at that step),
and an exponential moving average of the weights (decay ``min(ema, (1 + n)/(10 + n))`` after
``n`` updates, TensorFlow's ``ExponentialMovingAverage(num_updates=n)``, so the average is not
stuck at the initial weights in a short run).

Every random draw (batch indices, flips, t, ε, dropout) comes from one ``torch.Generator``
seeded with ``--seed``. A checkpoint holds the model, the EMA, the optimiser, the generator state
and the step, so ``--resume`` continues bit-identically (on CPU) to an uninterrupted run. A
``manifest.json`` next to it records every knob, the data, the versions, the step and the wall
time. ``--export PATH`` writes the EMA weights as safetensors plus ``PATH.json`` (the config).

``--what classifier`` trains the small CNN whose penultimate features define
:func:`invkit.metrics.fid_fashion` and exports its weights the same way.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np
import torch
from torch import nn

from .. import __version__
from ..checkpoint import save_state_dict, write_atomic
from ..data import fashion_mnist, fashion_mnist_dir
from ..errors import CheckpointError, ConfigError, MissingFileError, PluginError
from ..schedule import NoiseSchedule

__all__ = [
    "DDPMTrainConfig",
    "DDPMTrainer",
    "ClassifierTrainConfig",
    "train_classifier",
    "export_classifier",
    "add_arguments",
    "run",
]

CHECKPOINT = "ckpt.pt"
MANIFEST = "manifest.json"


def _positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value <= 0:
        raise ConfigError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value < 0:
        raise ConfigError(f"{attribute.name} must be >= 0, got {value!r}")


def _unit_interval(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{attribute.name} must be in [0, 1), got {value!r}")


def _int_tuple(v: Any) -> tuple[int, ...]:
    return tuple(int(i) for i in v)


@attrs.frozen
class DDPMTrainConfig:
    """Every knob of a DDPM training run; the architecture fields are the ddim config's.

    The defaults are the shipped fashion32 model's (1.2 M parameters, sized for a shared 2-core CPU).
    """

    steps: int = attrs.field(default=6000, validator=_non_negative)
    batch_size: int = attrs.field(default=32, validator=_positive)
    lr: float = attrs.field(default=4e-4, validator=_positive)
    warmup: int = attrs.field(default=200, validator=_non_negative)
    ema: float = attrs.field(default=0.999, validator=_unit_interval)
    grad_clip: float = attrs.field(default=1.0, validator=_positive)
    flip: bool = True
    seed: int = 0
    T: int = attrs.field(default=1000, validator=_positive)
    ch: int = attrs.field(default=32, validator=_positive)
    ch_mult: tuple[int, ...] = attrs.field(default=(1, 1, 2, 2), converter=_int_tuple)
    num_res_blocks: int = attrs.field(default=1, validator=_positive)
    attn_resolutions: tuple[int, ...] = attrs.field(default=(8,), converter=_int_tuple)
    dropout: float = attrs.field(default=0.0, validator=_unit_interval)
    image_size: int = attrs.field(default=32, validator=_positive)
    channels: int = attrs.field(default=1, validator=_positive)
    save_every: int = attrs.field(default=200, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ConfigError(f"ch_mult must be a non-empty list of positive ints, got {self.ch_mult}")
        if self.image_size % 2 ** (len(self.ch_mult) - 1):
            raise ConfigError(
                f"image_size {self.image_size} must be divisible by 2^(len(ch_mult) - 1) = {2 ** (len(self.ch_mult) - 1)}"
            )

    def net_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``DDPMUNet`` (the ddim config's ``model:`` section)."""
        return dict(
            ch=self.ch,
            out_ch=self.channels,
            ch_mult=list(self.ch_mult),
            num_res_blocks=self.num_res_blocks,
            attn_resolutions=list(self.attn_resolutions),
            dropout=self.dropout,
            resamp_with_conv=True,
            in_channels=self.channels,
            resolution=self.image_size,
        )

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``warmup`` steps, then constant."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        return self.lr

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items()}


# Knobs that may change on --resume without changing what is being trained.
_RESUMABLE = ("steps", "save_every")


def _ddpm_unet(kwargs: dict[str, Any]) -> nn.Module:
    try:
        from invkit_ddpm.model import DDPMUNet
    except ImportError as exc:  # pragma: no cover - the plugin ships with invkit
        raise PluginError(f"the DDPM backbone plugin (invkit_ddpm) is not importable: {exc}; reinstall invkit") from exc
    try:
        return DDPMUNet(**kwargs)
    except ValueError as exc:  # e.g. GroupNorm's 32 groups need ch to be a multiple of 32
        raise ConfigError(f"invalid DDPM UNet configuration {kwargs}: {exc}") from exc


def _versions() -> dict[str, str]:
    return {
        "invkit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class DDPMTrainer:
    r"""State of a DDPM training run: net, EMA copy, Adam, generator, step; see the module doc.

    ``images``: ``(N, C, H, W)`` in ``[-1, 1]``. ``data_info`` goes into the manifest.
    """

    def __init__(
        self,
        config: DDPMTrainConfig,
        images: torch.Tensor,
        out: str | os.PathLike,
        *,
        device: torch.device | str = "cpu",
        data_info: dict[str, Any] | None = None,
        net_factory: Callable[[dict[str, Any]], nn.Module] = _ddpm_unet,
    ):
        if images.ndim != 4 or images.shape[1:] != (config.channels, config.image_size, config.image_size):
            raise ConfigError(
                f"images must be (N, {config.channels}, {config.image_size}, {config.image_size}), got {tuple(images.shape)}"
            )
        self.config = config
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.out = Path(out)
        self.data_info = dict(data_info or {}, n=int(images.shape[0]))
        self.schedule = NoiseSchedule.linear(config.T)
        abar = self.schedule.abar_tensor(torch.float64, self.device)
        self._sqrt_abar = abar.sqrt().float()
        self._sqrt_1m_abar = (1 - abar).sqrt().float()
        # torch's initialisers draw from the global RNG: seed it inside a fork (all devices, since
        # manual_seed reseeds CUDA too) so the caller's global state is left as it was
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.net = net_factory(config.net_kwargs()).to(self.device)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        self.step = 0
        self.seconds = 0.0
        self.loss_avg: float | None = None
        self.history: list[dict[str, float]] = []
        self.init_from: dict[str, Any] | None = None

    def init_weights(self, path: str | os.PathLike) -> None:
        """Warm start: load exported weights (``--export`` of an earlier run) into the net and the EMA.

        Only a fresh run (step 0) may be warm-started. The optimiser starts fresh (its warm-up
        applies again); the source's path, sha256 and training record go into the manifest and
        the export, so the lineage of the weights stays on record.
        """
        import hashlib

        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if self.step:
            raise ConfigError(f"--init-from applies to a new run only; this one is at step {self.step}")
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"--init-from: no weights file at {path} (expected a .safetensors written by --export)")
        try:
            tensors = load_file(str(path), device=str(self.device))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"--init-from: {path} is not a readable safetensors file: {exc}") from exc
        try:
            self.net.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"--init-from: {path} does not match the configured network {self.config.net_kwargs()}: {exc}") from exc
        self.ema.load_state_dict(self.net.state_dict(), strict=True)
        meta_path = path.with_suffix(".json")
        record: dict[str, Any] = {}
        if meta_path.is_file():
            try:
                record = json.loads(meta_path.read_text()).get("training", {})
            except (json.JSONDecodeError, AttributeError):
                record = {}
        prior = int(record.get("total_steps", record.get("step", 0)) or 0)
        self.init_from = {
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "step": prior,
            "wall_seconds": record.get("total_wall_seconds", record.get("wall_seconds")),
            "training": record or None,
        }

    @property
    def total_steps(self) -> int:
        """Steps of this run plus those of the weights it was warm-started from."""
        return self.step + (self.init_from["step"] if self.init_from else 0)

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    # ---- one step -------------------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, g = self.config, self.generator
        idx = torch.randint(self.images.shape[0], (c.batch_size,), generator=g, device=self.device)
        x0 = self.images[idx]
        if c.flip:
            flip = torch.rand(c.batch_size, generator=g, device=self.device) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(c.T, (c.batch_size,), generator=g, device=self.device)
        eps = torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
        x_t = self._sqrt_abar[t].view(-1, 1, 1, 1) * x0 + self._sqrt_1m_abar[t].view(-1, 1, 1, 1) * eps
        return x_t, t, eps

    def train_step(self) -> float:
        """One Adam step on ``‖ε − ε_θ(x_t, t)‖²`` and one EMA update; returns the loss."""
        c = self.config
        self.net.train()
        x_t, t, eps = self._batch()
        for group in self.opt.param_groups:
            group["lr"] = c.lr_at(self.step)
        if c.dropout > 0:
            # dropout draws from torch's global RNG: seed it from our generator inside a fork
            seed = int(torch.randint(2**62, (1,), generator=self.generator, device=self.device).item())
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                loss = (self.net(x_t, t) - eps).pow(2).mean()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
        else:
            loss = (self.net(x_t, t) - eps).pow(2).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), c.grad_clip)
        self.opt.step()
        self.step += 1
        decay = min(c.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.net.parameters()):
                pe.lerp_(p, 1 - decay)
            for be, b in zip(self.ema.buffers(), self.net.buffers()):
                be.copy_(b)
        value = float(loss.detach())
        self.loss_avg = value if self.loss_avg is None else 0.99 * self.loss_avg + 0.01 * value
        return value

    def train(self, *, progress: bool = True) -> None:
        """Train until ``config.steps``, saving every ``save_every`` steps and at the end."""
        from tqdm.auto import tqdm

        c = self.config
        if self.step >= c.steps:
            return
        bar = tqdm(total=c.steps, initial=self.step, desc="train ddpm", disable=not progress, mininterval=10, smoothing=0.05)
        start = time.perf_counter()
        try:
            while self.step < c.steps:
                self.train_step()
                bar.update(1)
                if self.step % 20 == 0:
                    bar.set_postfix(loss=f"{self.loss_avg:.4f}", lr=f"{c.lr_at(self.step):.2e}", refresh=False)
                if self.step % c.save_every == 0 or self.step == c.steps:
                    self.seconds += time.perf_counter() - start
                    start = time.perf_counter()
                    self.history.append({"step": self.step, "loss_avg": self.loss_avg, "seconds": round(self.seconds, 1)})
                    self.save()
        finally:
            bar.close()

    # ---- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.as_dict(),
            "step": self.step,
            "seconds": self.seconds,
            "loss_avg": self.loss_avg,
            "history": self.history,
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.generator.get_state(),
            "init_from": json.dumps(self.init_from),
        }

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        # a run killed mid-save keeps its previous checkpoint
        write_atomic(self.out / CHECKPOINT, lambda p: torch.save(state, p))
        write_atomic(self.out / MANIFEST, lambda p: p.write_text(json.dumps(self.manifest(), indent=2) + "\n"))

    def manifest(self) -> dict[str, Any]:
        return {
            "what": "ddpm",
            "objective": "eps-prediction MSE (Ho et al. 2020, L_simple), linear schedule",
            "config": self.config.as_dict(),
            "net": {"class": "invkit_ddpm.model.DDPMUNet", "kwargs": self.config.net_kwargs(), "params": self.params},
            "data": self.data_info,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
            "versions": _versions(),
            "command": sys.argv,
            "step": self.step,
            "wall_seconds": round(self.seconds, 1),
            "loss_avg": self.loss_avg,
            "history": self.history,
            "init_from": self.init_from,
            "total_steps": self.total_steps,
            "checkpoint": CHECKPOINT,
        }

    @classmethod
    def resume(
        cls,
        out: str | os.PathLike,
        images: torch.Tensor,
        *,
        overrides: dict[str, Any] | None = None,
        device: torch.device | str = "cpu",
        data_info: dict[str, Any] | None = None,
        net_factory: Callable[[dict[str, Any]], nn.Module] = _ddpm_unet,
    ) -> "DDPMTrainer":
        """Rebuild a run from ``out/ckpt.pt``; ``overrides`` may change only ``steps``/``save_every``."""
        path = Path(out) / CHECKPOINT
        if not path.is_file():
            raise MissingFileError(f"no checkpoint to resume at {path}; start a run with --out {out} first")
        state = torch.load(path, map_location=torch.device(device), weights_only=True)
        saved = state["config"]
        for k, v in (overrides or {}).items():
            if k in _RESUMABLE:
                saved[k] = v
            elif v != saved.get(k):
                raise ConfigError(
                    f"--resume keeps the checkpoint's {k} = {saved.get(k)!r}; got {v!r}. "
                    f"Only {', '.join(_RESUMABLE)} may change on resume"
                )
        trainer = cls(DDPMTrainConfig(**saved), images, out, device=device, data_info=data_info, net_factory=net_factory)
        try:
            trainer.net.load_state_dict(state["model"], strict=True)
            trainer.ema.load_state_dict(state["ema"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} does not match the configured network: {exc}") from exc
        trainer.opt.load_state_dict(state["optimizer"])
        trainer.generator.set_state(state["generator"])
        trainer.step = int(state["step"])
        trainer.seconds = float(state["seconds"])
        trainer.loss_avg = state["loss_avg"]
        trainer.history = list(state["history"])
        trainer.init_from = json.loads(state.get("init_from") or "null")
        return trainer

    def export(self, path: str | os.PathLike) -> Path:
        """EMA weights → ``path`` (safetensors) and the config → ``path`` with suffix ``.json``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.float() for k, v in self.ema.state_dict().items()}
        save_state_dict(tensors, path, metadata={"format": "pt", "step": str(self.step)})
        meta = {
            "arch": "invkit_ddpm.model.DDPMUNet",
            "model": self.config.net_kwargs(),
            "schedule": {"name": "linear", "T": self.config.T, "beta_start": 1e-4, "beta_end": 0.02},
            "image_size": self.config.image_size,
            "channels": self.config.channels,
            "prediction": "eps",
            "params": self.params,
            "weights": "EMA",
            "training": {
                "step": self.step,
                "wall_seconds": round(self.seconds, 1),
                "total_steps": self.total_steps,
                "total_wall_seconds": round(self.seconds + float((self.init_from or {}).get("wall_seconds") or 0.0), 1),
                "init_from": self.init_from,
                "loss_avg": self.loss_avg,
                "config": self.config.as_dict(),
                "data": self.data_info,
                "versions": _versions(),
            },
        }
        write_atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
        return path


# ---- the FID feature classifier ----------------------------------------------------------


@attrs.frozen
class ClassifierTrainConfig:
    """Knobs of the Fashion-MNIST classifier behind :func:`invkit.metrics.fid_fashion`."""

    epochs: int = attrs.field(default=4, validator=_positive)
    batch_size: int = attrs.field(default=128, validator=_positive)
    lr: float = attrs.field(default=2e-3, validator=_positive)
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
    """Train :class:`invkit.metrics.FashionClassifier` with Adam and cross-entropy.

    Each epoch visits the images in a permutation drawn from a generator seeded with
    ``config.seed``; the learning rate decays as a cosine to 0 over all steps.
    """
    from tqdm.auto import tqdm

    from ..metrics import FashionClassifier

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


# ---- command line --------------------------------------------------------------------------


def _ints(text: str) -> tuple[int, ...]:
    text = text.strip()
    if not text or text.lower() == "none":
        return ()
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,2, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser, name: str = "train") -> None:
    parser.add_argument("--what", choices=("ddpm", "classifier"), default="ddpm", help="what to train (default ddpm)")
    parser.add_argument("--out", required=True, help="run folder: checkpoint, manifest (and the classifier's weights)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--steps", type=int, help="total optimiser steps (ddpm; default 6000)")
    parser.add_argument("--epochs", type=int, help="epochs (classifier; default 4)")
    parser.add_argument("--batch-size", type=int, help="batch size (ddpm 32, classifier 128)")
    parser.add_argument("--lr", type=float, help="Adam learning rate after warm-up (ddpm 4e-4, classifier 2e-3)")
    parser.add_argument("--warmup", type=int, help="linear warm-up steps (default 200)")
    parser.add_argument("--ema", type=float, help="EMA decay (default 0.999)")
    parser.add_argument("--ch", type=int, help="base channels (default 32)")
    parser.add_argument("--ch-mult", type=_ints, help="channel multipliers per level (default 1,1,2,2)")
    parser.add_argument("--res-blocks", type=int, help="residual blocks per level (default 1)")
    parser.add_argument("--attn", type=_ints, help="attention resolutions in pixels, e.g. 8 or 16,8 or none (default 8)")
    parser.add_argument("--dropout", type=float, help="dropout (default 0)")
    parser.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    parser.add_argument("--seed", type=int, help="seed of the run's torch.Generator (default 0)")
    parser.add_argument("--save-every", type=int, help="checkpoint every N steps (default 200)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's choice; 1 is faster on a busy shared CPU)"
    )
    parser.add_argument("--data-dir", help="folder of the Fashion-MNIST idx files (default $INVKIT_FASHION_MNIST_DIR or Debian's)")
    parser.add_argument("--limit", type=int, help="use only the first N training images (quick runs, tests)")
    parser.add_argument(
        "--init-from",
        metavar="PATH",
        help="warm start a new ddpm run from weights written by --export (same architecture); fresh optimiser",
    )
    parser.add_argument("--export", help="write the EMA (ddpm) or trained (classifier) weights to this .safetensors path")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _ddpm_overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup": args.warmup,
        "ema": args.ema,
        "ch": args.ch,
        "ch_mult": args.ch_mult,
        "num_res_blocks": args.res_blocks,
        "attn_resolutions": args.attn,
        "dropout": args.dropout,
        "seed": args.seed,
        "save_every": args.save_every,
        "flip": False if args.no_flip else None,
    }
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in pairs.items() if v is not None}


def _data_info(args: argparse.Namespace, split: str) -> dict[str, Any]:
    return {
        "name": "fashion-mnist",
        "split": split,
        "root": str(fashion_mnist_dir(args.data_dir)),
        "pad": 2,
        "range": "[-1, 1]",
        "limit": args.limit,
    }


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.what == "classifier":
        return _run_classifier(args)
    images, _ = fashion_mnist("train", root=args.data_dir, limit=args.limit)
    info = _data_info(args, "train")
    overrides = _ddpm_overrides(args)
    if args.init_from and (args.resume or args.what != "ddpm"):
        raise ConfigError("--init-from starts a new ddpm run; it cannot be combined with --resume")
    if args.resume:
        trainer = DDPMTrainer.resume(args.out, images, overrides=overrides, device=args.device, data_info=info)
    else:
        if (Path(args.out) / CHECKPOINT).exists():
            raise ConfigError(f"{Path(args.out) / CHECKPOINT} exists; pass --resume to continue it or choose another --out")
        trainer = DDPMTrainer(DDPMTrainConfig(**overrides), images, args.out, device=args.device, data_info=info)
        if args.init_from:
            trainer.init_weights(args.init_from)
    print(f"ddpm: {trainer.params:,} parameters, step {trainer.step} -> {trainer.config.steps}, out {args.out}", flush=True)
    trainer.train(progress=not args.no_progress)
    if args.export:
        print(f"exported EMA weights at step {trainer.step} to {trainer.export(args.export)}", flush=True)
    return 0


def _run_classifier(args: argparse.Namespace) -> int:
    from ..metrics import classifier_accuracy

    fields = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    config = ClassifierTrainConfig(**{k: v for k, v in fields.items() if v is not None}, flip=not args.no_flip)
    x, y = fashion_mnist("train", root=args.data_dir, limit=args.limit)
    start = time.perf_counter()
    net = train_classifier(x, y, config, device=args.device, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    xt, yt = fashion_mnist("test", root=args.data_dir)
    acc = classifier_accuracy(net, xt, yt)
    info = {
        "what": "classifier",
        "arch": "invkit.metrics.FashionClassifier",
        "params": sum(p.numel() for p in net.parameters()),
        "config": attrs.asdict(config),
        "data": _data_info(args, "train"),
        "test_accuracy": acc,
        "wall_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "versions": _versions(),
        "command": sys.argv,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")
    path = export_classifier(net, args.export or out / "classifier.safetensors", info)
    print(f"classifier: test accuracy {acc:.4f}, {seconds:.0f} s, weights {path}", flush=True)
    return 0
