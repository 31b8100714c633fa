"""invkit: zero-shot imaging inverse problems with pretrained diffusion models.

Every solver (SSD, SSD+, DDNM, DDNM+, DDRM, DPS, SDEdit) is a :class:`Recipe` composed of an
:class:`Inverter`, a :class:`Guidance` and a few numbers; every degradation and model is a
plugin found by name::

    import torch, invkit
    from invkit import Recipe, DA, BackProj

    op = invkit.operator("sr_bicubic", scale=4)
    model = invkit.backbone("fashion32")
    x_hat = Recipe(inverter=DA(eta=0.6), guidance=BackProj()).run(model, op.A(x), op)

``import invkit`` is light: it does not import torch. Every name that needs torch (operators,
noise, schedules, the engine) is resolved on first use (PEP 562), so ``invkit --version`` and
``invkit --help`` answer at once.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from .errors import (
    CapabilityError,
    CheckpointError,
    ConfigError,
    InvalidDTypeError,
    InvalidInputError,
    InvkitError,
    MissingFileError,
    PluginError,
    PluginWarning,
    UnknownNameError,
)
from ._compat import alias_module
from .hookspecs import hookimpl

__version__ = "0.1.0"

# The modules `invkit.backbone` and `invkit.recipe` became `invkit.models` and `invkit.sampling`
# (their names clashed with the functions `invkit.backbone()` and `invkit.recipe()`); the old
# import paths warn for one release.
alias_module("invkit.backbone", "invkit.models")
alias_module("invkit.recipe", "invkit.sampling")

# Names resolved on first use (PEP 562): each of these modules imports torch, and `import invkit`
# (hence `invkit --help`) must not.
_LAZY = {
    "JPEG": "noise",
    "Gaussian": "noise",
    "Measurement": "noise",
    "NoNoise": "noise",
    "Noise": "noise",
    "UniformGaussian": "noise",
    "Composed": "operator",
    "Operator": "operator",
    "SVDView": "operator",
    "compose": "operator",
    "NoiseSchedule": "schedule",
    "timesteps": "schedule",
    "operators_registry": "plugins",
    "backbones_registry": "plugins",
    "recipes_registry": "plugins",
    "Backbone": "models",
    "NetBackbone": "models",
    "Inverter": "inverters",
    "DDIM": "inverters",
    "DDPM": "inverters",
    "DA": "inverters",
    "Guidance": "guidance",
    "NoGuidance": "guidance",
    "BackProj": "guidance",
    "StagedBackProj": "guidance",
    "DDNMPlus": "guidance",
    "DPS": "guidance",
    "DDRM": "guidance",
    "DPMSolver2M": "multistep",
    "AttentionInjection": "injection",
    "restore": "restoration",
    "restore_files": "restoration",
    "Recipe": "sampling",
    "RunResult": "sampling",
    "StepInfo": "sampling",
    "GenStep": "plan",
    "Context": "plan",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'invkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def operator(name: str, **params: Any) -> "Operator":
    """Build the registered operator ``name`` with ``params`` (e.g. ``operator("sr_bicubic", scale=4)``)."""
    from .plugins import operators_registry

    return operators_registry.build(name, **params)


def operators() -> dict[str, tuple[str, str]]:
    """Registered operators: name → (one-line description, providing plugin)."""
    from .plugins import operators_registry

    return {n: (s.description, s.plugin) for n, s in operators_registry.specs().items()}


def backbone(name: str, **params: Any):
    """Build the registered backbone ``name`` (``checkpoint=``, ``device=``, ``dtype=``, flags...)."""
    from .plugins import backbones_registry

    return backbones_registry.build(name, **params)


def backbones() -> dict[str, tuple[str, str]]:
    """Registered backbones: name → (one-line description, providing plugin)."""
    from .plugins import backbones_registry

    return {n: (s.description, s.plugin) for n, s in backbones_registry.specs().items()}


def recipe(name: str, task: str | None = None, **overrides: Any):
    """The preset recipe ``name`` for ``task`` with keyword overrides of any Recipe field."""
    from .plugins import recipes_registry

    return recipes_registry.build(name, task=task, **overrides)


def recipes() -> dict[str, tuple[str, str]]:
    """Registered recipe presets: name → (one-line description, providing plugin)."""
    from .plugins import recipes_registry

    return {n: (s.description, s.plugin) for n, s in recipes_registry.specs().items()}


__all__ = [
    "CapabilityError",
    "CheckpointError",
    "ConfigError",
    "InvalidDTypeError",
    "InvalidInputError",
    "InvkitError",
    "MissingFileError",
    "PluginError",
    "PluginWarning",
    "UnknownNameError",
    "backbone",
    "backbones",
    "hookimpl",
    "operator",
    "operators",
    "recipe",
    "recipes",
    *_LAZY,
]


class _Package(types.ModuleType):
    """The ``invkit`` module object: importing the submodule ``invkit.operator`` (lazily, or by a
    plugin's ``from invkit.operator import ...``) must not rebind ``invkit.operator``, the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "operator" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
