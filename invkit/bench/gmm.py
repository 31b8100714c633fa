"""Deprecated: ``invkit bench gmm`` moved to the GMM plugin (``invkit_gmm.bench``).

Names are looked up through the benchmark registry (the module that the plugin registered for
``gmm``), so this core module names no plugin package. Kept for one release.
"""

from __future__ import annotations

from typing import Any

from ..plugins import deprecated_command_module

__getattr__: Any = deprecated_command_module(__name__, "benchmark", "gmm")
