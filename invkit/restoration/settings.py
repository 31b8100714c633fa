"""The settings of an ``invkit restore`` run: every knob that decides the outputs
(:class:`RestoreSettings`), the key a journal record must match to be resumed
(:func:`settings_key`), and the output files the settings imply (:func:`output_names`).

Part of the files layer (:mod:`invkit.restoration.files`).
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import attrs

from ..errors import ConfigError
from ..io import sha256_bytes
from .inputs import parse_tile

__all__ = ["RestoreSettings", "output_names", "settings_key"]


@attrs.frozen
class RestoreSettings:
    """Every knob that decides the outputs, resolved (what the manifest records and resume compares).

    ``operator``/``operator_params`` replace ``task`` for any registered operator; ``mask`` and
    ``kernel`` are paths (a mask folder holds one mask per input, matched by relative stem).
    """

    task: str | None = None
    operator: str | None = None
    operator_params: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    degrade: bool = False
    recipe: str = "ssd-30"
    backbone: str = "fashion32"
    checkpoint: str | None = None
    backbone_options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    mask: str | None = None
    kernel: str | None = None
    noise_sigma: float | None = None
    samples: int = 1
    save_samples: bool = False
    seed: int = 0
    dtype: str = "float32"
    tile: str | int = "auto"
    #: None: the input's (16 for 16-bit gray files, else 8)
    bit_depth: int | None = None

    def __attrs_post_init__(self) -> None:
        if (self.task is None) == (self.operator is None):
            raise ConfigError("give exactly one of a task (--task) or an operator (--operator NAME --set key=value)")
        if self.operator is None and self.operator_params:
            raise ConfigError("--set key=value goes with --operator; a task has fixed parameters")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError(f"--samples must be an integer >= 1, got {self.samples!r}")
        if self.save_samples and self.samples < 2:
            raise ConfigError("--save-samples needs --samples K with K >= 2")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"--seed must be an integer >= 0, got {self.seed!r}")
        if self.bit_depth not in (None, 8, 16):
            raise ConfigError(f"--bit-depth must be 8 or 16, got {self.bit_depth!r}")
        if self.noise_sigma is not None and not (isinstance(self.noise_sigma, (int, float)) and math.isfinite(self.noise_sigma) and self.noise_sigma >= 0):
            raise ConfigError(f"--noise-sigma must be a finite number >= 0 ([-1, 1] units), got {self.noise_sigma!r}")
        parse_tile(self.tile)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, every field (paths as given)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in attrs.asdict(self, recurse=False).items()}


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def settings_key(resolved: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the resolved settings (what a journal record must match)."""
    return sha256_bytes(_canonical(resolved).encode())


def output_names(key: str, s: RestoreSettings) -> dict[str, str]:
    """The outputs of one file, relative to ``out`` (posix)."""
    names = {"restoration": f"{key}.png"}
    if s.degrade:
        names.update(y=f"{key}.y.png", pinv=f"{key}.pinv.png")
    if s.samples > 1:
        names["std"] = f"{key}.std.png"
        if s.save_samples:
            names.update({f"sample{k}": f"{key}.sample{k}.png" for k in range(s.samples)})
    return names
