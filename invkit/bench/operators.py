r"""``invkit bench operators``: time ``A`` and ``A⁺`` of every registered operator.

Each operator runs on a ``(batch, 3, size, size)`` batch (default ``(8, 3, 256, 256)``, float32)
and the median of ``--repeats`` timed calls is reported, after one untimed call that fills the
per-size caches. Calls run as recipes make them: inside :func:`torch.inference_mode` and
:func:`invkit.operator.no_checks`. Built-in operators use the parameters of the published
experiments (×4 SR, a half-missing pixel mask, ...); a third-party operator is built with its
defaults and skipped if it needs parameters. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any, Callable

import torch

from ..cli import dtype_name, parse_device
from ..errors import ConfigError, InvkitError
from ..operator import no_checks
from ..plugins import operators_registry

# name -> factory parameters for a (C, S, S) image on `device`, and the per-sample input shape
Setup = Callable[[int, int, torch.device], tuple[dict[str, Any], tuple[int, ...]]]


def _mask(size: int, device: torch.device) -> torch.Tensor:
    """Half the pixels missing, as DDRM's ``inp``."""
    keep = torch.ones(size * size)
    keep[torch.randperm(size * size, generator=torch.Generator().manual_seed(0))[: size * size // 2]] = 0
    return keep.reshape(size, size).to(device)


def _gauss_kernel(k: int = 9, sigma: float = 3.0) -> torch.Tensor:
    t = torch.arange(k, dtype=torch.float64) - k // 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return torch.outer(g, g) / g.sum() ** 2


BUILTIN: dict[str, Setup] = {
    "sr_avgpool": lambda C, S, d: ({"scale": 4}, (C, S, S)),
    "sr_bicubic": lambda C, S, d: ({"scale": 4}, (C, S, S)),
    "colorization": lambda C, S, d: ({}, (3, S, S)),
    "colorization_sr": lambda C, S, d: ({"scale": 4}, (3, S, S)),
    "inpainting": lambda C, S, d: ({"mask": _mask(S, d)}, (C, S, S)),
    "deblur_gauss": lambda C, S, d: ({"sigma": 3.0}, (C, S, S)),
    "deblur_gauss_ddrm": lambda C, S, d: ({"channels": C}, (C, S, S)),
    "blur_fft": lambda C, S, d: ({"kernel": _gauss_kernel()}, (C, S, S)),
    "denoise": lambda C, S, d: ({}, (C, S, S)),
    "matrix": lambda C, S, d: _matrix_setup(min(1024, C * S * S)),
}


def _matrix_setup(n: int) -> tuple[dict[str, Any], tuple[int, ...]]:
    """A dense matrix on 256² × 3 pixels would hold 10¹⁰ entries: time (n/4 × n) on n-vectors."""
    M = torch.randn(max(1, n // 4), n, generator=torch.Generator().manual_seed(0))
    return {"M": M}, (n,)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--batch-size", "--batch", dest="batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--size", type=int, default=256, help="image height and width (default 256)")
    parser.add_argument("--channels", type=int, default=3, help="image channels (default 3)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per method; the median is reported")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--dtype", type=dtype_name, default="float32", help="float32 (default) or float64 (fp32/fp64 accepted)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1, as eval: steadiest timings on a shared CPU)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="time only these operators")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn: Callable[[], torch.Tensor], repeats: int, device: torch.device) -> float:
    fn()  # fills the per-size caches (1-D SVDs, FFT responses)
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def _params_text(params: dict[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        parts.append(f"{k}={tuple(v.shape)}" if isinstance(v, torch.Tensor) else f"{k}={v}")
    return ", ".join(parts) or "—"


def time_operator(name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> tuple[str, ...]:
    setup = BUILTIN.get(name)
    if setup is not None:
        params, shape = setup(args.channels, args.size, device)
    else:
        params, shape = {}, (args.channels, args.size, args.size)
    try:
        op = operators_registry.build(name, **params).to(device)
        x = torch.randn((args.batch,) + shape, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
        with torch.inference_mode(), no_checks():
            y = op.A(x)
            t_A = _median_ms(lambda: op.A(x), args.repeats, device)
            t_P = _median_ms(lambda: op.pinv(y), args.repeats, device)
    except InvkitError as exc:
        return (name, _params_text(params), "—", "skipped", f"({type(exc).__name__}: {str(exc)[:60]})")
    kind = "closed form" if op.exact_pinv else "CG"
    return (name, _params_text(params), f"{tuple(x.shape)} → {tuple(y.shape)}", f"{t_A:.2f}", f"{t_P:.2f} ({kind})")


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return f"{where}, torch {torch.__version__}"


def run(args: argparse.Namespace) -> int:
    for flag in ("batch", "size", "channels", "repeats", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {value}")
    if args.dtype not in ("float32", "float64"):
        raise ConfigError(f"--dtype {args.dtype}: operators are timed in float32 or float64")
    device = parse_device(args.device)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    names = args.only or operators_registry.names()
    for name in names:
        operators_registry.get(name)  # an unknown name fails before any timing
    rows = [time_operator(name, args, device, dtype) for name in names]
    header = ("operator", "parameters", "x → y", "A (ms)", "A⁺ (ms)")
    print(f"median of {args.repeats} calls, {args.dtype}, {device.type}: {machine(device)}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0
