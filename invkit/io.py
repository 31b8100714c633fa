"""Files in and out, shared by ``invkit eval``, ``invkit restore``, training exports and benchmarks.

Every writer here is atomic: the content goes to a temporary file beside the target, which is
then moved onto it with :func:`os.replace`, so a kill at any moment leaves either the old file or
the complete new one, never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from . import __version__
from .errors import ConfigError
from .plugins import plugin_names

__all__ = [
    "write_atomic",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "sha256_file",
    "sha256_bytes",
    "save_png",
    "environment",
    "check_output_dir",
    "check_output_file",
]


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a sibling temporary path, then move it onto ``path`` in one step.

    A write that fails or is killed leaves ``path`` as it was (no half-written file); the
    temporary is removed on failure. The result gets the usual ``0o666 & ~umask`` permissions
    (safetensors itself creates owner-only files).

    Args:
        path: the final file.
        write: writes the complete content to the path it is given.

    Returns:
        ``path`` as a ``pathlib.Path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: the final file.
        data: the complete content.

    Returns:
        ``path`` as a ``pathlib.Path``.
    """
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically.

    Args:
        path: the final file.
        text: the complete content.

    Returns:
        ``path`` as a ``pathlib.Path``.
    """
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (non-JSON values through ``str``) to ``path`` atomically.

    Args:
        path: the final file.
        obj: any JSON-serialisable value; other values are written as ``str(value)``.

    Returns:
        ``path`` as a ``pathlib.Path``.
    """
    return write_text_atomic(path, json.dumps(obj, indent=1, default=str) + "\n")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    Args:
        data: the bytes to hash.

    Returns:
        The 64-character hex digest.
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks.

    Args:
        path: the file.

    Returns:
        The 64-character hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Save a uint8 or uint16 image atomically as PNG.

    Args:
        array: ``(C, H, W)`` with C = 1 or 3 (the tensor layout) or ``(H, W)``; uint8 gives an
            8-bit PNG, uint16 a 16-bit one (gray: mode ``I;16``; RGB is written by PIL as 8 bit,
            so 16-bit colour is refused).
        path: target file.

    Returns:
        ``path``.

    Raises:
        ValueError: an array of another shape or dtype.
    """
    a = np.asarray(array)
    if a.ndim == 3:
        if a.shape[0] not in (1, 3):
            raise ValueError(f"save_png expects (C, H, W) with C = 1 or 3, got {a.shape}")
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    if a.dtype == np.uint8:
        img = Image.fromarray(np.ascontiguousarray(a))  # (H, W) -> L, (H, W, 3) -> RGB
    elif a.dtype == np.uint16 and a.ndim == 2:
        img = Image.fromarray(np.ascontiguousarray(a, dtype=np.uint16))  # -> I;16
    else:
        raise ValueError(f"save_png writes uint8 gray/RGB or uint16 gray, got {a.dtype} {a.shape}")
    return write_atomic(path, lambda tmp: img.save(tmp, format="PNG"))


def environment(device: Any = "cpu", model: Any = None) -> dict[str, Any]:
    """Versions and machine facts recorded with every result and manifest.

    Args:
        device: the torch device the work ran on.
        model: the backbone, if any (its class and parameter count are recorded).

    Returns:
        A JSON-ready dict: invkit, torch, numpy and Python versions, platform, device, torch
        threads, loaded plugins, the GPU name on CUDA, and the backbone's class and parameter
        count when ``model`` is given.
    """
    device = torch.device(device)
    env = {
        "invkit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "plugins": plugin_names(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    if model is not None:
        env["backbone_class"] = type(model).__name__
        env["backbone_parameters"] = int(sum(p.numel() for p in model.parameters()))
    return env


def _writable_ancestor(path: Path, flag: str, shown: Path | None = None) -> Path:
    """The nearest existing folder at or above ``path``, checked to be a folder we can write in."""
    anc, path = path.absolute(), shown or path
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"{flag} {path}: cannot write there, {anc} is a file, not a folder; choose another path")
    try:  # os.access misjudges root on read-only mounts: try it
        with tempfile.TemporaryFile(dir=anc):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot write in {anc} ({exc.strerror or exc}); choose another path") from None
    return anc


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Check, before any work and without creating it, that the folder ``path`` can be written.

    Args:
        path: the output folder (it may not exist yet).
        flag: the option it came from, for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: ``path`` is a file, lies under a file, or is in a folder that cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder; choose a folder")
    _writable_ancestor(path, flag)
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--out", suffixes: Sequence[str] = ()) -> Path:
    """Check, before any work, that the file ``path`` can be written (its folder may be created).

    Args:
        path: the output file.
        flag: the option it came from, for the message.
        suffixes: the accepted file suffixes (lower case, with the dot); empty accepts any.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: ``path`` is a folder (or ends with a separator), has another suffix, or cannot
            be written.
    """
    text = os.fspath(path)
    path = Path(path)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise ConfigError(f"{flag} {text} is a folder; give a file path inside it")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} {path}: the file must end in {' or '.join(suffixes)}")
    _writable_ancestor(path.parent, flag, shown=path)
    return path

