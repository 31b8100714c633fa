r"""Tuned presets: named overrides of a recipe family, found by ``invkit tune`` (issue 13).

A presets file is JSON::

    {"format": "invkit-presets/1",
     "presets": {"ssd-10-tuned": {"base": "ssd", "task": "sr4", "preset_task": "sr", "nfe": 10,
                                  "overrides": {"inversion_steps": 3, "generation_steps": 8,
                                                "t0": 450, "inversion_eta": 0.3, "eta": 0.6,
                                                "spacing": "quadratic"},
                                  "description": "...", "found_by": {...}}}}

``invkit.recipe("ssd-10-tuned")`` is ``invkit.recipe("ssd", task="sr", **overrides)``. The
numbers were chosen for one task, so the preset refuses another preset task (``task="deblur"``)
rather than quietly running numbers tuned for SR. Overrides given at the call replace the file's.

The built-in recipes plugin registers the presets of the shipped ``tuned_fashion32.json`` and
then of every file in ``$INVKIT_PRESETS`` (paths separated by ``os.pathsep``). Only ``json`` and
``os`` are imported here: this module runs while ``invkit --help`` is built.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

__all__ = ["PRESETS_ENV", "PRESETS_FORMAT", "SHIPPED", "preset_files", "read_presets", "register_tuned", "tuned_factory"]

PRESETS_ENV = "INVKIT_PRESETS"
PRESETS_FORMAT = "invkit-presets/1"
#: the tuned presets shipped for the fashion32 backbone
SHIPPED = Path(__file__).with_name("tuned_fashion32.json")
_KEYS = {"base", "task", "preset_task", "nfe", "overrides"}


def preset_files() -> list[Path]:
    """The shipped file (if present) and those named by ``$INVKIT_PRESETS``, in that order."""
    files = [SHIPPED] if SHIPPED.is_file() else []
    raw = os.environ.get(PRESETS_ENV, "")
    files += [Path(p) for p in raw.split(os.pathsep) if p.strip()]
    return files


def read_presets(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The presets of one file, checked.

    Raises:
        ConfigError: not readable JSON of the ``invkit-presets/1`` format, or an entry without
            ``base``, ``task``, ``preset_task``, ``nfe`` and ``overrides``.
    """
    from invkit.errors import ConfigError

    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"presets file {str(path)!r} is not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != PRESETS_FORMAT or not isinstance(doc.get("presets"), dict):
        raise ConfigError(f"presets file {str(path)!r} is not an {PRESETS_FORMAT!r} file (as `invkit tune` writes)")
    for name, entry in doc["presets"].items():
        missing = _KEYS - set(entry) if isinstance(entry, dict) else _KEYS
        if missing or not isinstance(entry.get("overrides"), dict):
            raise ConfigError(f"presets file {str(path)!r}: preset {name!r} lacks {', '.join(sorted(missing)) or 'an overrides object'}")
    return doc["presets"]


def tuned_factory(name: str, entry: dict[str, Any]) -> Callable[..., Any]:
    """``factory(task=None, **overrides) -> Recipe`` for one preset entry (see the module doc)."""

    def factory(task: str | None = None, **overrides: Any) -> Any:
        from invkit.errors import ConfigError

        from . import PRESETS

        if task is not None and task != entry["preset_task"]:
            raise ConfigError(
                f"recipe {name!r} was tuned for task {entry['task']!r} (preset task {entry['preset_task']!r}), "
                f"not {task!r}; tune one for that task (invkit tune) or use the family {entry['base']!r}"
            )
        base = PRESETS[entry["base"]][0]
        return base(task=entry["preset_task"], **{**entry["overrides"], **overrides})

    factory.__name__ = name.replace("-", "_")
    factory.__doc__ = entry.get("description") or f"{entry['base']} tuned for {entry['task']} at {entry['nfe']} NFE"
    return factory


def register_tuned(register: Callable[..., None]) -> None:
    """Register every preset of :func:`preset_files` (a broken or clashing file warns and is skipped,
    so one bad user file does not take the built-in presets down with it)."""
    from invkit.errors import PluginWarning

    from . import PRESETS

    seen: set[str] = set(PRESETS)
    for path in preset_files():
        try:
            presets = read_presets(path)
            clash = sorted(seen & set(presets))
            if clash:
                raise ValueError(f"presets file {str(path)!r} redefines {', '.join(clash)}; rename them")
            bad = sorted(n for n, e in presets.items() if e["base"] not in PRESETS)
            if bad:
                raise ValueError(f"presets file {str(path)!r}: unknown base family for {', '.join(bad)}")
        except Exception as exc:  # noqa: BLE001 - any problem of this file: say so, keep the rest
            warnings.warn(f"skipping tuned presets: {exc}", PluginWarning, stacklevel=2)
            continue
        for name, entry in presets.items():
            register(name, tuned_factory(name, entry), nfe=int(entry["nfe"]), tasks=(entry["preset_task"],),
                     description=entry.get("description"))
            seen.add(name)
