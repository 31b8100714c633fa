"""Deprecated: ``invkit train`` moved to the DDPM plugin (``invkit_ddpm.train``).

Names are looked up through the command registry (the module that the plugin registered for
``train``), so this core module names no plugin package. Kept for one release.
"""

from __future__ import annotations

from typing import Any

from ..plugins import deprecated_command_module

__getattr__: Any = deprecated_command_module(__name__, "command", "train")
