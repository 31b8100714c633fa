"""Options shared by the commands, so that they speak one vocabulary.

``--out``, ``--batch-size``, ``--quiet``, ``--threads`` (default 1 everywhere: on a shared or
busy machine oversubscribed OpenMP threads spin, measured 16 s with 1 thread against 56 s to
9 min with 2 for the demo on a 2-core sandbox, and one rule is easier to remember than a default
per command; ``--threads 0`` keeps torch's own choice), the dtype names ``float32``,
``float64``, ``bfloat16``, ``float16``, and ``KEY=VALUE`` options whose values are Python
literals (``--set``, ``--backbone-opt``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ConfigError
from ..evaluation import DTYPES, parse_literal

__all__ = [
    "DTYPE_NAMES", "DEFAULT_THREADS", "key_value", "set_threads", "add_threads", "add_quiet", "check_at_least",
    "join_process_group",
]

#: the dtype names every command accepts
DTYPE_NAMES = tuple(DTYPES)
DEFAULT_THREADS = 1


def key_value(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (an argparse ``type``); the value is a Python literal or a string."""
    key, eq, raw = text.partition("=")
    if not eq or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, parse_literal(raw)


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; ``0`` or ``None`` keeps torch's choice.

    Raises:
        ConfigError: a negative count.
    """
    if threads is None or threads == 0:
        return
    if threads < 0:
        raise ConfigError(f"--threads must be >= 1 (or 0 for torch's default), got {threads}")
    torch.set_num_threads(threads)


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` (default :data:`DEFAULT_THREADS`)."""
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"CPU threads for torch (default: {DEFAULT_THREADS}: fastest on a busy machine; 0: torch's choice)")  # fmt: skip


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_at_least(**values: tuple[int | None, int]) -> None:
    """Raise one :class:`ConfigError` naming the first option below its minimum.

    ``check_at_least(n=(args.n, 1))`` checks ``--n >= 1``; ``None`` values are skipped.
    """
    for name, (value, low) in values.items():
        if value is not None and value < low:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")


def join_process_group(device: str) -> tuple[int, int, str] | None:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): join the process group; (rank, world, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        return None
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size(), device
