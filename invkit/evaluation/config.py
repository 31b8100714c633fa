"""The evaluation's configuration (every knob, recorded verbatim) and its measured result."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import attrs
import numpy as np
import torch

from ..errors import ConfigError
from ..io import sha256_bytes
from ..noise import Noise
from ..validators import nonneg_int, one_of, optional, positive_int
from .loading import DTYPES
from .methods import parse_method
from .sweep import NFESweep
from .tasks import Task, get_task, task_from_operator

__all__ = ["EvalConfig", "EvalResult", "config_dict", "run_settings", "settings_hash"]


def _sweep(value: Any) -> NFESweep | None:
    if value is None or isinstance(value, NFESweep):
        return value
    families, nfes = value  # the (families, nfes) pair
    return NFESweep(families, nfes)


def _finite_sigma(instance: Any, attribute: Any, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
        raise ConfigError(f"{attribute.name} must be a finite number >= 0 ([-1, 1] units), got {value!r}")


@attrs.frozen
class EvalConfig:
    """Every knob of an evaluation (recorded verbatim in ``results.json``).

    The task is a named one (``task``, see :data:`EVAL_TASKS`) or any registered operator with
    parameters (``operator``, ``operator_params``; ``task`` is then ``None``). With ``sweep``
    (an :class:`NFESweep`), ``methods`` must hold the sweep's methods.
    """

    operator: str | None = None
    operator_params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    task: str | None = attrs.field(default=attrs.Factory(lambda self: None if self.operator else "sr4", takes_self=True))
    methods: tuple[str, ...] = attrs.field(default=("input", "ssd-30", "ddnm-30", "ddrm-30"), converter=tuple)
    backbone: str = "fashion32"
    checkpoint: str | None = None
    backbone_options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    dataset: str = "fashion-test"
    n: int = attrs.field(default=100, validator=positive_int())
    offset: int = attrs.field(default=0, validator=nonneg_int())
    seed: int = attrs.field(default=0, validator=nonneg_int())
    batch_size: int = attrs.field(default=16, validator=positive_int())
    device: str = "cpu"
    dtype: str = attrs.field(default="float32", validator=one_of(DTYPES))
    noise_sigma: float | None = attrs.field(default=None, validator=_finite_sigma)
    noise_jpeg: int | None = attrs.field(default=None, validator=optional(positive_int()))
    noise_sigma_max: float | None = attrs.field(default=None, validator=_finite_sigma)
    grid: int = attrs.field(default=8, validator=nonneg_int())
    sweep: NFESweep | None = attrs.field(default=None, converter=_sweep)

    @task.validator
    def _check_task(self, attribute: Any, value: str | None) -> None:
        if (value is None) == (self.operator is None):
            raise ConfigError("give either a task name or an operator, not both (operator parameters go in operator_params)")
        if self.operator is None and self.operator_params:
            raise ConfigError("operator_params need an operator; a named task has fixed parameters")

    @methods.validator
    def _check_methods(self, attribute: Any, value: tuple[str, ...]) -> None:
        if not value:
            raise ConfigError("give at least one method (a recipe preset name or 'input')")
        labels = [parse_method(m).label for m in value]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"methods are listed twice: {', '.join(sorted({m for m in labels if labels.count(m) > 1}))}")

    @sweep.validator
    def _check_sweep(self, attribute: Any, value: NFESweep | None) -> None:
        if value is not None:
            missing = [m for m in value.methods() if m not in self.methods]
            if missing:
                raise ConfigError(f"the NFE sweep's methods are not all evaluated: {', '.join(missing)} missing from methods")

    def make_task(self) -> Task:
        """The :class:`Task`: the named one, or one for the operator."""
        return get_task(self.task) if self.operator is None else task_from_operator(self.operator, self.operator_params)


@attrs.define
class EvalResult:
    """What :func:`evaluate` measured; :func:`write_outputs` turns it into files."""

    config: EvalConfig
    task: Task
    noise: Noise
    methods: list[dict[str, Any]]
    #: the image indices (offset + position) restored, in order; ``names``, ``gt_u8`` and
    #: ``outputs_u8`` follow it
    indices: list[int]
    names: list[str]
    rows: list[dict[str, Any]]
    aggregates: dict[str, dict[str, Any]]
    fid_floor: float | None
    notes: list[str]
    environment: dict[str, Any]
    wall_seconds: float
    #: uint8 ``(n, C, H, W)`` ground truth and restorations per method label (what was measured)
    gt_u8: np.ndarray = attrs.field(repr=False)
    outputs_u8: dict[str, np.ndarray] = attrs.field(repr=False)
    #: float tensors ``x``, ``y``, ``pinv`` of the first ``grid`` images, and their ``index``
    examples: dict[str, torch.Tensor] = attrs.field(repr=False)


def _plain(value: Any) -> Any:
    if isinstance(value, NFESweep):
        return {"families": list(value.families), "nfes": list(value.nfes)}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def config_dict(cfg: EvalConfig) -> dict[str, Any]:
    """``cfg`` as JSON-ready plain values."""
    return {k: _plain(v) for k, v in attrs.asdict(cfg, recurse=False).items()}


def run_settings(cfg: EvalConfig, *, save_images: bool = False, compare: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Everything that decides the content of a results folder: the configuration and the output
    choices (not the progress bar, the thread count or the folder's name)."""
    return {"config": config_dict(cfg), "save_images": bool(save_images), "compare": [list(p) for p in compare]}


def settings_hash(settings: Mapping[str, Any]) -> str:
    """SHA-256 of :func:`run_settings` (canonical JSON): two runs may share a folder only if equal."""
    return sha256_bytes(json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
