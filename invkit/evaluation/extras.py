"""The one place where optional packages are imported, lazily: ``matplotlib`` (the ``[plot]``
extra, for ``fid_vs_nfe.png``), ``lpips`` and ``pytorch_fid`` (LPIPS and the Inception FID, used
only when they and their weights are already on the machine).

Everything else in :mod:`invkit.evaluation` is imported at the top of its module.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ..errors import InvkitError

__all__ = ["MissingExtraError", "available", "require", "PLOT_HINT"]

#: how to get the plotting extra
PLOT_HINT = "pip install 'invkit[plot]'"


class MissingExtraError(InvkitError, ImportError):
    """An optional package is not installed; the message says how to install it."""


def available(package: str) -> bool:
    """Whether the top-level ``package`` can be imported (without importing it)."""
    return importlib.util.find_spec(package.partition(".")[0]) is not None


def require(module: str, *, install: str | None = None) -> ModuleType:
    """Import the optional ``module`` (e.g. ``matplotlib.figure``).

    Args:
        module: dotted module name.
        install: the command that installs it, for the error message.

    Raises:
        MissingExtraError: it is not installed.
    """
    if not available(module):
        how = install or f"pip install {module.partition('.')[0]}"
        raise MissingExtraError(f"{module.partition('.')[0]} is not installed; {how}")
    return importlib.import_module(module)
