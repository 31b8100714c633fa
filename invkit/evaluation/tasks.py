"""Evaluation tasks (a registered operator with fixed parameters and a mask per image) and noise.

:data:`EVAL_TASKS` names the tasks of the SSD paper for 32×32 images; :func:`task_from_operator`
turns any registered operator (third-party ones included) into a task, which is what
``invkit eval --operator NAME --set key=value`` and ``invkit restore`` use.
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping, Sequence

import attrs
import torch

from ..errors import ConfigError, UnknownNameError
from ..noise import JPEG, Gaussian, NoNoise, Noise, UniformGaussian
from ..operator import Operator
from ..plugins import operators_registry
from ..validators import one_of

__all__ = ["Task", "EVAL_TASKS", "get_task", "task_from_operator", "make_noise", "noise_text"]


@attrs.frozen
class Task:
    """An evaluation task: a registered operator with fixed parameters (and a mask per image).

    ``engine_task`` is the task name the recipe presets take (``sr``, ``deblur``, ``inpainting``,
    ``colorization``, ``denoise``; ``None``: the presets' SR numbers). ``mask``: ``"box"`` hides
    a box of half the image's height and width at a top-left corner drawn uniformly per image;
    ``"random"`` keeps each pixel with probability ½ (SSD's ``random_point``). ``default_sigma``
    is the Gaussian noise (σ in [-1, 1] units) used when the caller gives no noise.
    """

    name: str
    operator: str
    engine_task: str | None
    params: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    mask: str | None = attrs.field(default=None, validator=one_of((None, "box", "random")))
    rgb: bool = False
    default_sigma: float = 0.0
    #: the operator takes the image's channel count as ``channels=`` (the DDRM deblur operator)
    pass_channels: bool = False
    description: str = ""

    def masks(self, shape: tuple[int, ...], generators: Sequence[torch.Generator]) -> torch.Tensor:
        """The ``(B, 1, H, W)`` binary masks (1 = observed) of a batch, one per generator."""
        H, W = shape[-2], shape[-1]
        out = torch.ones((len(generators), 1, H, W))
        for b, g in enumerate(generators):
            if self.mask == "box":
                h, w = max(1, H // 2), max(1, W // 2)
                top = int(torch.randint(0, H - h + 1, (1,), generator=g))
                left = int(torch.randint(0, W - w + 1, (1,), generator=g))
                out[b, 0, top : top + h, left : left + w] = 0
            else:
                out[b, 0] = (torch.rand((H, W), generator=g) < 0.5).float()
        return out

    def build(self, shape: tuple[int, ...], generators: Sequence[torch.Generator] | None = None) -> Operator:
        """The operator for a batch of images of per-sample ``shape`` (C, H, W).

        Args:
            shape: ``(C, H, W)`` of one image.
            generators: one CPU generator per image; masked tasks draw each image's mask from it.

        Raises:
            ConfigError: an RGB-only task on other data, or a masked task without generators.
        """
        if self.rgb and shape[0] != 3:
            raise ConfigError(f"task {self.name!r} needs RGB images (3 channels), got {shape[0]} channel(s)")
        params = dict(self.params)
        if self.pass_channels:
            params["channels"] = int(shape[0])
        if self.mask is not None:
            if generators is None:
                raise ConfigError(f"task {self.name!r} draws a mask per image: pass one generator per image")
            params["mask"] = self.masks(shape, generators)
        return operators_registry.build(self.operator, **params)


#: Tasks for 32×32 images (any size the operator allows works; the box is half of each side).
EVAL_TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("sr2", "sr_bicubic", "sr", {"scale": 2}, description="×2 MATLAB-style antialiased bicubic down-sampling (32 → 16 px)"),
        Task("sr4", "sr_bicubic", "sr", {"scale": 4}, description="×4 MATLAB-style antialiased bicubic down-sampling (32 → 8 px)"),
        Task("sr8", "sr_bicubic", "sr", {"scale": 8}, description="×8 bicubic down-sampling (the paper's SR×8 at 256 px; 32 → 4 px)"),
        Task("sr8-avgpool", "sr_avgpool", "sr", {"scale": 8}, description="×8 average pooling (the paper's SSD+ Table 2 at 256 px)"),
        Task("inpaint-box", "inpainting", "inpainting", mask="box",
             description="a box of half the height and width (16×16 on 32 px) hidden at a position drawn per image"),
        Task("inpaint-random", "inpainting", "inpainting", mask="random",
             description="each pixel kept with probability 1/2, drawn per image"),
        Task("deblur", "deblur_gauss", "deblur", {"kernel_size": 9, "sigma": 1.5},
             description="true separable Gaussian blur, sigma 1.5 px, 9 taps (±2.7 sigma), zero boundary"),
        Task("deblur-ddrm", "deblur_gauss_ddrm", "deblur", {"kernel_size": 9, "sigma": 15.0}, pass_channels=True,
             description="the DDRM/DDNM/SSD 'deblur_gauss' operator (9 taps, sigma 15, its quirks); for published rows"),
        Task("denoise", "denoise", "denoise", default_sigma=0.2,
             description="identity plus Gaussian noise (sigma 0.2 in [-1, 1] units unless --noise-sigma)"),
        Task("colorization", "colorization", "colorization", rgb=True,
             description="RGB to grey with weights (0.3333, 0.3334, 0.3333); RGB data only"),
    )
}  # fmt: skip


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``.

    Raises:
        UnknownNameError: ``name`` is not in :data:`EVAL_TASKS` (the message lists them).
    """
    if name not in EVAL_TASKS:
        close = difflib.get_close_matches(str(name), list(EVAL_TASKS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown task {name!r}.{hint} Tasks: {', '.join(EVAL_TASKS)}; or give --operator NAME")
    return EVAL_TASKS[name]


def task_from_operator(name: str, params: Mapping[str, Any] | None = None, *, engine_task: str | None = None) -> Task:
    """A task for any registered operator ``name`` (third-party ones included) with ``params``.

    The recipe presets get ``engine_task``; by default the preset task of a built-in task using
    the same operator (``sr_bicubic`` → ``sr``), else ``None`` (the presets' SR numbers). An
    operator that needs a per-image mask takes one of the named tasks (``inpaint-box``).

    Args:
        name: a name in ``invkit.operators()``.
        params: its factory's keyword arguments (``--set key=value``).
        engine_task: the preset task family, if not the default.

    Returns:
        The :class:`Task`, named ``name`` or ``name(key=value, ...)``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the operators).
    """
    operators_registry.get(name)  # an unknown name fails here, listing the registered ones
    params = dict(params or {})
    if engine_task is None:
        engine_task = next((t.engine_task for t in EVAL_TASKS.values() if t.operator == name), None)
    label = name + (f"({', '.join(f'{k}={v!r}' for k, v in params.items())})" if params else "")
    return Task(label, name, engine_task, params, description=f"registered operator {label}")


def make_noise(task: Task, sigma: float | None = None, jpeg: int | None = None, sigma_max: float | None = None) -> Noise:
    """The measurement noise of an evaluation.

    Args:
        task: gives the default (its ``default_sigma``) when no noise is asked for.
        sigma: Gaussian σ in [-1, 1] units.
        jpeg: JPEG quality.
        sigma_max: Gaussian with σ ~ U[0, σ_max] per image (SSD+'s protocol).

    Raises:
        ConfigError: more than one noise given.
    """
    if sum(v is not None for v in (sigma, jpeg, sigma_max)) > 1:
        raise ConfigError("give at most one noise: a Gaussian sigma, a uniform sigma_max or a JPEG quality")
    if jpeg is not None:
        return JPEG(int(jpeg))
    if sigma_max is not None:
        return UniformGaussian(float(sigma_max))
    if sigma is None:
        sigma = task.default_sigma
    return Gaussian(float(sigma)) if sigma > 0 else NoNoise()


def noise_text(noise: Noise) -> str:
    """A short human description of ``noise`` for tables."""
    if isinstance(noise, NoNoise):
        return "none"
    if isinstance(noise, Gaussian):
        return f"Gaussian sigma {noise.sigma:g} ([-1, 1] units)"
    if isinstance(noise, JPEG):
        return f"JPEG quality {noise.quality}"
    if isinstance(noise, UniformGaussian):
        return f"Gaussian, sigma ~ U[0, {noise.sigma_max:g}] per image ([-1, 1] units)"
    return repr(noise)
