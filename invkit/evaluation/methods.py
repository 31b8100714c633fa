"""Methods to evaluate: registered recipe presets with overrides, and the baselines ``input``/``y``."""

from __future__ import annotations

import ast
from typing import Any, Mapping

import attrs

from ..errors import ConfigError
from ..noise import Noise
from ..plugins import recipes_registry
from .tasks import Task

__all__ = ["BASELINES", "Method", "parse_method", "parse_literal"]

#: the methods that make no network call: x̂ = A⁺y, or x̂ = y
BASELINES = ("input", "y")


def parse_literal(raw: str) -> Any:
    """``raw`` as a Python literal (``3``, ``0.5``, ``(1, 2)``, ``'a'``), else the string itself.

    The one reading of ``key=value`` values shared by method strings, ``--set`` and
    ``--backbone-opt``.
    """
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


@attrs.frozen
class Method:
    """A method to evaluate: a registered recipe preset with overrides, or a baseline with no
    network call: ``input`` (x̂ = A⁺y) or ``y`` (x̂ = y, for operators whose y has the image's
    shape: the paper's "NFE 0" deblurring row).

    Written ``name`` or ``name:key=value,key=value`` (values are Python literals), e.g.
    ``ssd-30``, ``ssd:inversion_steps=3,generation_steps=17``, ``ddrm-30:eta=0.5``.
    """

    label: str
    name: str
    overrides: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def is_baseline(self) -> bool:
        return self.name in BASELINES

    def build(self, task: Task, noise: Noise):
        """The :class:`~invkit.Recipe` for ``task`` (``None`` for a baseline).

        With Gaussian noise of known σ, a preset whose guidance has a ``sigma_y`` knob (DDNM+,
        DDRM) is told σ, unless the overrides set ``sigma_y`` themselves.

        Raises:
            UnknownNameError: the preset is not registered.
            ConfigError: a baseline with options, or options the preset does not take.
        """
        if self.is_baseline:
            if self.overrides:
                raise ConfigError(f"the {self.name!r} baseline takes no options")
            return None
        spec = recipes_registry.get(self.name)
        recipe = spec.build("recipe", task=task.engine_task, **self.overrides)
        sigma = getattr(noise, "sigma", None)
        if sigma and "sigma_y" not in self.overrides and hasattr(recipe.guidance, "sigma_y"):
            recipe = spec.build("recipe", task=task.engine_task, **self.overrides, sigma_y=float(sigma))
        return recipe


def parse_method(text: str) -> Method:
    """Parse ``name`` or ``name:key=value,...`` into a :class:`Method` (see its doc).

    Raises:
        ConfigError: an empty name or an option not written ``key=value``.
    """
    text = text.strip()
    name, _, opts = text.partition(":")
    if not name:
        raise ConfigError(f"empty method name in {text!r}; write e.g. 'ssd-30' or 'ssd:generation_steps=20'")
    overrides: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in opts.split(","))):
        key, eq, raw = part.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ConfigError(f"bad option {part!r} in method {text!r}; write key=value, e.g. 'ddrm-30:eta=0.5'")
        overrides[key.strip()] = parse_literal(raw.strip())
    return Method(text, name, overrides)
