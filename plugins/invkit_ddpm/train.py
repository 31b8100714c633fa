r"""``invkit train``: train a DDPM backbone (or the FID feature classifier) on Fashion-MNIST.

The command belongs to the DDPM plugin (registered through ``invkit_register_commands``); the
classifier it trains with ``--what classifier`` belongs to the fashion32 plugin
(:mod:`invkit_fashion32.classifier`).

The diffusion objective is Ho et al. (2020), eq. 14 ("L_simple"): draw ``x0`` from the data,
``t ~ U{0..T−1}`` and ``ε ~ N(0, I)``, form ``x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε`` and minimise
``‖ε − ε_θ(x_t, t)‖²`` (mean over pixels). The network is the ddim repository's ``Model``
(:class:`invkit_ddpm.model.DDPMUNet`, the registered backbone ``"ddpm"``), the schedule the linear one (1e-4 … 0.02, T = 1000), the
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

Checkpoints and exports name the architecture by its registered backbone name
(``"backbone": "ddpm"``), not by a class path, so they stay loadable wherever the class lives
(:func:`invkit.checkpoint.backbone_from_export`).

``--what classifier`` trains the small CNN whose penultimate features define
:func:`invkit.metrics.fid_fashion` and exports its weights the same way.

Why this module is long (~680 lines): one command — its config (every knob validated before
any work), the training loop, the resumable checkpoint and the export — whose parts share the
config and the checkpoint format; the classifier trainer lives with the fashion32 plugin.
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

from invkit import __version__
from invkit.checkpoint import load_state_dict, save_state_dict, write_atomic
from invkit.cli import check_output_dir, check_output_file, parse_device
from invkit.data import fashion_mnist, fashion_mnist_dir
from invkit.errors import CheckpointError, ConfigError, MissingFileError, PluginError

__all__ = [
    "DDPMTrainConfig",
    "DDPMTrainer",
    "ClassifierTrainConfig",
    "train_classifier",
    "export_classifier",
    "add_arguments",
    "run",
    "BACKBONE",
]

CHECKPOINT = "ckpt.pt"
MANIFEST = "manifest.json"
#: the registered backbone name that exports and manifests record as the architecture
BACKBONE = "ddpm"


def __getattr__(name: str) -> Any:
    # the classifier trainer lives with the classifier in the fashion32 plugin; kept reachable here
    # because `invkit train --what classifier` is this command
    if name in ("ClassifierTrainConfig", "train_classifier", "export_classifier"):
        return getattr(_classifier_module(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _classifier_module():
    from invkit.plugins import metrics_registry

    if "fashion" not in metrics_registry:
        raise PluginError(
            "--what classifier trains the Fashion-MNIST classifier of the fashion32 plugin, which is not "
            "loaded (see `invkit plugins`; check INVKIT_DISABLE_PLUGINS)"
        )
    import invkit_fashion32.classifier

    return invkit_fashion32.classifier


def _positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not value > 0:  # written so that NaN fails too
        raise ConfigError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not value >= 0:
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
        visited = [self.image_size // 2**i for i in range(len(self.ch_mult))]
        unused = [r for r in self.attn_resolutions if r not in visited]
        if unused:
            raise ConfigError(
                f"attn_resolutions {unused} are never visited by the net (it works at {visited}): they would add no attention"
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
    from .model import DDPMUNet

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
        from invkit.schedule import NoiseSchedule

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

        if self.step:
            raise ConfigError(f"--init-from applies to a new run only; this one is at step {self.step}")
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"--init-from: no weights file at {path} (expected a .safetensors written by --export)")
        try:
            tensors = load_state_dict(path, device=self.device)
        except CheckpointError as exc:
            raise CheckpointError(f"--init-from: {exc}") from None
        try:
            self.net.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise CheckpointError(f"--init-from: {path} does not match the configured network {self.config.net_kwargs()}: {detail}") from None
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
            "net": {"backbone": BACKBONE, "kwargs": self.config.net_kwargs(), "params": self.params},
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
        state = _load_training_state(path, device)
        saved = dict(state["config"])
        for k, v in (overrides or {}).items():
            if k in _RESUMABLE:
                saved[k] = v
            elif v != saved.get(k):
                raise ConfigError(
                    f"--resume keeps the checkpoint's {k} = {saved.get(k)!r}; got {v!r}. "
                    f"Only {', '.join(_RESUMABLE)} may change on resume"
                )
        try:
            config = DDPMTrainConfig(**saved)
        except TypeError as exc:
            raise CheckpointError(f"{path}: its config is not a DDPM training config ({exc})") from None
        trainer = cls(config, images, out, device=device, data_info=data_info, net_factory=net_factory)
        try:
            trainer.net.load_state_dict(state["model"], strict=True)
            trainer.ema.load_state_dict(state["ema"], strict=True)
            trainer.opt.load_state_dict(state["optimizer"])
            trainer.generator.set_state(state["generator"].cpu())
            trainer.step = int(state["step"])
            trainer.seconds = float(state["seconds"])
            trainer.loss_avg = state["loss_avg"]
            trainer.history = list(state["history"])
            trainer.init_from = json.loads(state.get("init_from") or "null")
        except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise CheckpointError(f"{path} does not hold a resumable state of this run ({type(exc).__name__}: {detail})") from None
        return trainer

    def export(self, path: str | os.PathLike) -> Path:
        """EMA weights → ``path`` (safetensors) and the config → ``path`` with suffix ``.json``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.float() for k, v in self.ema.state_dict().items()}
        save_state_dict(tensors, path, metadata={"format": "pt", "step": str(self.step)})
        meta = {
            "backbone": BACKBONE,
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


def _load_training_state(path: Path, device: torch.device | str) -> dict[str, Any]:
    """``ckpt.pt`` read safely (tensors and plain containers only), with every key resume needs."""
    import pickle

    try:
        state = torch.load(path, map_location=torch.device(device), weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: not a training checkpoint written by `invkit train` (or corrupt): {detail}") from None
    except Exception as exc:  # truncated zip, random bytes, ...: torch raises many types here
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: not a readable training checkpoint ({type(exc).__name__}: {detail})") from None
    need = ("config", "step", "seconds", "loss_avg", "history", "model", "ema", "optimizer", "generator")
    if not isinstance(state, dict) or any(k not in state for k in need) or not isinstance(state["config"], dict):
        have = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a training checkpoint of `invkit train` (it needs {', '.join(need)}; it has {have}); "
            f"choose another --out or drop --resume"
        )
    return state


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
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint (ddpm)")
    parser.add_argument("--steps", type=int, help="total optimiser steps (ddpm; default 6000)")
    parser.add_argument("--epochs", type=int, help="epochs (classifier; default 4)")
    parser.add_argument("--batch-size", type=int, help="batch size (ddpm 32, classifier 128)")
    parser.add_argument("--lr", type=float, help="Adam learning rate after warm-up (ddpm 4e-4, classifier 2e-3)")
    parser.add_argument("--warmup", type=int, help="linear warm-up steps (ddpm; default 200)")
    parser.add_argument("--ema", type=float, help="EMA decay in [0, 1) (ddpm; default 0.999)")
    parser.add_argument("--ch", type=int, help="base channels (ddpm; default 32)")
    parser.add_argument("--ch-mult", type=_ints, help="channel multipliers per level (ddpm; default 1,1,2,2)")
    parser.add_argument("--res-blocks", type=int, help="residual blocks per level (ddpm; default 1)")
    parser.add_argument("--attn", type=_ints,
                        help="attention resolutions in pixels, each one the net visits (32, 16, ...), e.g. 8 or 16,8 or none (ddpm; default 8)")
    parser.add_argument("--dropout", type=float, help="dropout in [0, 1) (ddpm; default 0)")
    parser.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    parser.add_argument("--seed", type=int, help="seed of the run's torch.Generator (default 0)")
    parser.add_argument("--save-every", type=int, help="checkpoint every N steps (ddpm; default 200)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads for torch (default 1, as eval: fastest on a shared CPU; raise it on a free machine)",
    )
    parser.add_argument("--data-dir", help="folder of the Fashion-MNIST idx files (default $INVKIT_FASHION_MNIST_DIR or Debian's)")
    parser.add_argument("--limit", type=int, help="use only the first N >= 1 training images (quick runs, tests)")
    parser.add_argument(
        "--init-from",
        metavar="PATH",
        help="warm start a new ddpm run from weights written by --export (same architecture); fresh optimiser",
    )
    parser.add_argument("--export", help="write the EMA (ddpm) or trained (classifier) weights to this .safetensors path")
    parser.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bar")


# flags that mean something for one --what only: given for the other, they would be ignored silently
_DDPM_ONLY = ("resume", "steps", "warmup", "ema", "ch", "ch_mult", "res_blocks", "attn", "dropout", "save_every", "init_from")
_CLASSIFIER_ONLY = ("epochs",)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_args(args: argparse.Namespace) -> torch.device:
    """Every check that needs no data and no network: values, flags that would be ignored, the
    device and whether ``--out``/``--export`` can be written. Returns the device."""
    ignored = _DDPM_ONLY if args.what == "classifier" else _CLASSIFIER_ONLY
    given = [_flag(k) for k in ignored if getattr(args, k) not in (None, False)]
    if given:
        raise ConfigError(f"{', '.join(given)} do(es) not apply to --what {args.what}; drop it")
    for key in ("steps", "epochs", "batch_size", "ch", "res_blocks", "save_every", "limit", "threads"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise ConfigError(f"{_flag(key)} must be an integer >= 1, got {value}")
    for key in ("warmup", "seed"):
        value = getattr(args, key)
        if value is not None and value < 0:
            raise ConfigError(f"{_flag(key)} must be >= 0, got {value}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ConfigError(f"--lr must be a finite number > 0, got {args.lr}")
    for key in ("ema", "dropout"):
        value = getattr(args, key)
        if value is not None and not (math.isfinite(value) and 0 <= value < 1):
            raise ConfigError(f"{_flag(key)} must be a number in [0, 1), got {value}")
    if args.ch_mult is not None and (not args.ch_mult or min(args.ch_mult) < 1):
        raise ConfigError(f"--ch-mult must be positive integers like 1,2,2, got {','.join(map(str, args.ch_mult)) or 'none'}")
    if args.attn and args.what == "ddpm":
        mult = args.ch_mult or DDPMTrainConfig().ch_mult
        size = DDPMTrainConfig().image_size
        visited = [size // 2**i for i in range(len(mult))]
        bad = [r for r in args.attn if r not in visited]
        if bad:
            raise ConfigError(
                f"--attn {','.join(map(str, bad))}: the net never works at that resolution, so it would get no "
                f"attention; choose among {','.join(map(str, visited))} (or none)"
            )
    if args.init_from and args.resume:
        raise ConfigError("--init-from starts a new ddpm run; it cannot be combined with --resume")
    device = parse_device(args.device)
    check_output_dir(args.out, "--out")
    if args.export:
        check_output_file(args.export, "--export")
    return device


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
    device = check_args(args)
    # one thread by default, as `invkit eval`: on a shared CPU more threads wait on each other
    torch.set_num_threads(args.threads or 1)
    if args.what == "classifier":
        return _run_classifier(args, device)
    overrides = _ddpm_overrides(args)
    if not args.resume:
        if (Path(args.out) / CHECKPOINT).exists():
            raise ConfigError(f"{Path(args.out) / CHECKPOINT} exists; pass --resume to continue it or choose another --out")
        config = DDPMTrainConfig(**overrides)  # bad values fail here, before the data is read
    images, _ = fashion_mnist("train", root=args.data_dir, limit=args.limit)
    info = _data_info(args, "train")
    if args.resume:
        trainer = DDPMTrainer.resume(args.out, images, overrides=overrides, device=device, data_info=info)
    else:
        trainer = DDPMTrainer(config, images, args.out, device=device, data_info=info)
        if args.init_from:
            trainer.init_weights(args.init_from)
    print(f"ddpm: {trainer.params:,} parameters, step {trainer.step} -> {trainer.config.steps}, out {args.out}", flush=True)
    trainer.train(progress=not args.quiet)
    if args.export:
        print(f"exported EMA weights at step {trainer.step} to {trainer.export(args.export)}", flush=True)
    return 0


def _run_classifier(args: argparse.Namespace, device: torch.device) -> int:
    from invkit.metrics import classifier_accuracy

    cls = _classifier_module()
    fields = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    config = cls.ClassifierTrainConfig(**{k: v for k, v in fields.items() if v is not None}, flip=not args.no_flip)
    x, y = fashion_mnist("train", root=args.data_dir, limit=args.limit)
    start = time.perf_counter()
    net = cls.train_classifier(x, y, config, device=device, progress=not args.quiet)
    seconds = time.perf_counter() - start
    xt, yt = fashion_mnist("test", root=args.data_dir)
    acc = classifier_accuracy(net, xt, yt)
    info = {
        "what": "classifier",
        "metric": "fashion",
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
    write_atomic(out / MANIFEST, lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))
    path = cls.export_classifier(net, args.export or out / "classifier.safetensors", info)
    print(f"classifier: test accuracy {acc:.4f}, {seconds:.0f} s, weights {path}", flush=True)
    return 0
