r"""``invkit bench speed``: backbone forward time, recipe time, overhead ratio and peak memory.

For one backbone, batch, dtype and device it measures

- **forward**: the median over ``--repeats`` timed calls ``model(x, t)`` (after ``--warmup``
  untimed calls), under ``torch.inference_mode`` as the gradient-free recipes run it;
- **recipe**: ``recipe.run(model, y, op, return_info=True)`` on a random image's measurement
  ``y = A x``, its wall time per image and the network calls it really made (``nfe``);
- **overhead ratio** = recipe seconds ÷ (nfe × forward seconds): what the recipe spends outside the
  network (operator, projections, noise draws, Python) on top of 1.0. DPS differentiates through
  the network, so its ratio also holds the backward pass;
- **in-run ratio**: a second run of the recipe with every network call timed (device synchronised
  around each): total seconds ÷ seconds inside the network. It needs no separate forward timing,
  so it is robust to a machine whose speed drifts (a shared CPU);
- **peak memory**: CUDA ``max_memory_allocated`` over the whole benchmark, or on CPU the process's
  peak resident set size (``resource.getrusage``; this includes the Python interpreter).

Examples::

    invkit bench speed --backbone ddpm --backbone-opt ch=64 --backbone-opt ch_mult=1,2,2,2 --backbone-opt resolution=64 \
        --recipe ssd-30 --task sr --batch 1 --dtype fp32 --device cpu
    invkit bench speed --backbone adm-imagenet256-uncond --seed 0 --recipe ddnm-30 --batch 8 \
        --dtype bf16 --device cuda

Presets without ``--checkpoint`` get random weights from ``--seed`` (timing needs no trained
weights). Results are printed as a Markdown table (``--output`` also appends them to a file).
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

import torch

from ..cli import dtype_name
from ..errors import ConfigError, InvalidInputError, MissingFileError

#: the operator each task is timed with, and its parameters
TASK_OPERATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "sr": ("sr_bicubic", {"scale": 4}),
    "deblur": ("deblur_gauss", {}),
    "inpainting": ("inpainting", {}),
    "colorization": ("colorization", {}),
    "denoise": ("denoise", {}),
}

HEADER = (
    "| backbone | params | image | batch | dtype | device | forward ms (median) | recipe | nfe "
    "| recipe s/image | overhead ratio | in-run ratio | peak memory |"
)
RULE = "|" + "---|" * 13


class _TimedModel:
    """Calls ``model`` and adds the wall time of each call (device synchronised) to ``seconds``."""

    def __init__(self, model):
        self.model = model
        self.seconds = 0.0

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def __call__(self, x, t, **kw):
        _sync(x.device)
        start = time.perf_counter()
        out = self.model(x, t, **kw)
        _sync(x.device)
        self.seconds += time.perf_counter() - start
        return out


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["ch=32", "ch_mult=1,2,2", "attention_resolutions=16,8"]`` → keyword arguments.

    Values are Python literals where they parse (``1,2,2`` is a tuple), else strings;
    ``attention_resolutions`` stays a string as guided-diffusion's flags are, and a single number for
    another ``*resolutions`` / ``*_mult`` key becomes a one-element tuple.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--backbone-opt expects KEY=VALUE, got {item!r}")
        key = key.strip()
        value = raw if key == "attention_resolutions" else _value(raw)
        if key.endswith(("resolutions", "_mult")) and isinstance(value, (int, float)):
            value = (value,)
        out[key] = value
    return out


def add_arguments(parser: argparse.ArgumentParser, name: str = "speed") -> None:
    parser.add_argument("--backbone", default="ddpm", help="registered backbone name (default: ddpm)")
    # --backbone-opt, as in `invkit eval` / `invkit restore` (where --set sets operator parameters);
    # --set is the old spelling, kept as an alias
    parser.add_argument("--backbone-opt", "--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                        help="backbone parameter, e.g. --backbone-opt ch=32 --backbone-opt ch_mult=1,2,2 "
                        "(repeatable; --set is the old spelling)")
    parser.add_argument("--checkpoint", default=None, help="weights file; without it, random weights from --seed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    parser.add_argument("--recipe", default="ssd-30", help="recipe preset (default ssd-30); 'none' skips it")
    parser.add_argument("--task", default=None, choices=sorted(TASK_OPERATORS), help="task (picks the operator; default sr)")
    parser.add_argument("--batch-size", "--batch", dest="batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--dtype", type=dtype_name, default="float32",
                        help="float32 | float64 | bfloat16 | float16 (fp32, bf16, ... accepted; half types run under autocast)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--repeats", type=int, default=10, help="timed forward calls (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forward calls first")
    parser.add_argument("--channels-last", action="store_true", help="channels-last weights")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as eval)")
    parser.add_argument("--out", "--output", dest="output", default=None, help="also append the table to this file")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (CUDA allocated)"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    gib = kib / 2**30 if sys.platform == "darwin" else kib / 2**20
    return f"{gib:.2f} GiB (process RSS)"


def time_forward(model, x: torch.Tensor, *, repeats: int, warmup: int) -> float:
    """Median seconds of ``model(x, t)`` at a mid-range timestep, under inference mode."""
    t = torch.full((x.shape[0],), model.schedule.T // 2, dtype=torch.long, device=x.device)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(x.device)
            start = time.perf_counter()
            model(x, t)
            _sync(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(
    *,
    backbone: str,
    params: dict[str, Any],
    checkpoint: str | None,
    seed: int,
    recipe: str | None,
    task: str,
    batch: int,
    dtype: str,
    device: str,
    repeats: int,
    warmup: int,
    channels_last: bool = False,
    compile: bool = False,
) -> dict[str, Any]:
    """One benchmark row as a dict (see the module docstring for what each number means)."""
    import invkit

    if batch < 1 or repeats < 1 or warmup < 0:
        raise InvalidInputError("--batch and --repeats must be >= 1 and --warmup >= 0")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda but CUDA is not available in this torch build")
        torch.cuda.reset_peak_memory_stats(dev)
    kw = dict(params, device=dev, dtype=dtype, channels_last=channels_last, compile=compile)
    if checkpoint is not None:
        kw["checkpoint"] = checkpoint
    elif backbone != "diffusers":
        kw["seed"] = seed
    model = invkit.backbone(backbone, **kw)
    size = model.image_size or 64
    g = torch.Generator(dev).manual_seed(seed)
    x = torch.rand((batch, model.channels, size, size), generator=g, device=dev) * 2 - 1
    fwd = time_forward(model, x, repeats=repeats, warmup=warmup)
    row: dict[str, Any] = dict(
        backbone=backbone + "".join(f" {k}={v}" for k, v in params.items()),
        params=sum(p.numel() for p in model.parameters()),
        image=f"{model.channels}×{size}×{size}",
        batch=batch,
        dtype=dtype,
        device=str(dev),
        forward_ms=fwd * 1e3,
        recipe="-",
        nfe=None,
        recipe_s_per_image=None,
        overhead=None,
        in_run=None,
    )
    if recipe:
        name, params_op = TASK_OPERATORS[task]
        if task == "inpainting":
            mask = (torch.rand((1, 1, size, size), generator=g, device=dev) > 0.5).to(x.dtype)
            params_op = {"mask": mask}
        op = invkit.operator(name, **params_op).to(dev)
        y = op.A(x)
        r = invkit.recipe(recipe, task=task)
        res = r.run(model, y, op, generator=torch.Generator(dev).manual_seed(seed), return_info=True)
        timed = _TimedModel(model)
        again = r.run(timed, y, op, generator=torch.Generator(dev).manual_seed(seed), return_info=True)
        row.update(recipe=f"{recipe} ({task})", nfe=res.nfe, recipe_s_per_image=res.seconds / batch,
                   overhead=res.seconds / (res.nfe * fwd) if res.nfe else None,
                   in_run=again.seconds / timed.seconds if timed.seconds else None)
    row["peak_memory"] = _peak_memory(dev)
    return row


def format_row(row: dict[str, Any]) -> str:
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    return (
        f"| {row['backbone']} | {row['params']:,} | {row['image']} | {row['batch']} | {row['dtype']} | "
        f"{row['device']} | {row['forward_ms']:.1f} | {row['recipe']} | {f(row['nfe'], 'd')} | "
        f"{f(row['recipe_s_per_image'], '.2f')} | {f(row['overhead'], '.3f')} | {f(row['in_run'], '.3f')} | {row['peak_memory']} |"
    )


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def run(args: argparse.Namespace) -> int:
    from ..cli import check_output_file, parse_device

    no_recipe = args.recipe in ("", "none")
    if no_recipe and args.task is not None:
        raise ConfigError("--task picks the recipe's operator; it does nothing with --recipe none: drop one")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    parse_device(args.device)
    if args.output:
        check_output_file(args.output, "--out")
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        raise MissingFileError(f"--checkpoint {args.checkpoint}: no such file")
    if not no_recipe:
        import invkit

        invkit.recipe(args.recipe, task=args.task or "sr")  # an unknown preset fails before any timing
    torch.set_num_threads(args.threads)
    args.task = args.task or "sr"
    row = measure(
        backbone=args.backbone, params=parse_sets(args.set), checkpoint=args.checkpoint, seed=args.seed,
        recipe=None if args.recipe in ("", "none") else args.recipe, task=args.task, batch=args.batch,
        dtype=args.dtype, device=args.device, repeats=args.repeats, warmup=args.warmup,
        channels_last=args.channels_last, compile=args.compile,
    )
    text = "\n".join([f"machine: {machine()}", "", HEADER, RULE, format_row(row)])
    print(text)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as fh:
            fh.write(text + "\n\n")
    return 0
