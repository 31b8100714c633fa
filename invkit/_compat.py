"""Deprecated import paths, kept working for one release with a :class:`DeprecationWarning`.

``alias_module("invkit.backbone", "invkit.models")`` puts a stand-in module in ``sys.modules``
so that ``from invkit.models import NetBackbone`` still works (and warns) without a file
``invkit/backbone.py`` whose import would rebind the function ``invkit.backbone``.
``deprecated_names(__name__, {...})`` gives a module a ``__getattr__`` for moved names.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any, Callable, Mapping

__all__ = ["alias_module", "deprecated_names"]


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new} (the old path goes in the next release)", DeprecationWarning, stacklevel=3)


class _AliasModule(types.ModuleType):
    def __init__(self, old: str, new: str):
        super().__init__(old, f"Deprecated alias of :mod:`{new}`.")
        self.__invkit_new__ = new

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        new = self.__invkit_new__
        value = getattr(importlib.import_module(new), name)
        _warn(f"{self.__name__}.{name}", f"{new}.{name}")
        return value

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__invkit_new__))


def alias_module(old: str, new: str) -> None:
    """Make ``old`` an importable, warning alias of module ``new`` (imported lazily)."""
    sys.modules.setdefault(old, _AliasModule(old, new))


def deprecated_names(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``moved`` (old name -> ``"new.module:name"``) with a warning."""

    def __getattr__(name: str) -> Any:
        target = moved.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        mod, _, attr = target.partition(":")
        _warn(f"{module}.{name}", f"{mod}.{attr}")
        return getattr(importlib.import_module(mod), attr)

    return __getattr__
