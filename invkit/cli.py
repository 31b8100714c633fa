"""The ``invkit`` command line.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``:
``invkit.commands.<name>`` for top-level commands and ``invkit.bench.<name>`` for benchmarks.
Modules are imported only when their command runs, so ``invkit operators`` stays fast.

Any :class:`invkit.InvkitError` (bad input, missing file, unknown name) becomes one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .errors import InvkitError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "operators": ("invkit.commands.listing", "list registered operators"),
    "backbones": ("invkit.commands.listing", "list registered backbones (presets, sizes, checkpoints)"),
    "recipes": ("invkit.commands.listing", "list registered recipe presets"),
    "plugins": ("invkit.commands.listing", "list loaded plugins"),
    "demo": ("invkit.commands.demo", "restore 8 Fashion-MNIST test images with SSD, DDNM, DDRM and write a grid"),
    "eval": ("invkit.commands.eval", "evaluate recipes on a dataset and task (PSNR, SSIM, FID, NFE, time)"),
    "train": ("invkit.commands.train", "train a DDPM backbone on Fashion-MNIST (resumable)"),
    "restore": ("invkit.commands.restore", "restore your own images: files and folders, any size, resumable"),
}
BENCHMARKS: dict[str, tuple[str, str]] = {
    "operators": ("invkit.bench.operators", "time A and A+ of every operator on a (8, 3, 256, 256) batch"),
    "gmm": ("invkit.bench.gmm", "recipes against the exact posterior of a Gaussian-mixture prior"),
    "speed": ("invkit.bench.speed", "backbone forward time, recipe time, overhead ratio and peak memory"),
    "restore": ("invkit.bench.restore", "invkit restore: files/s batch 1 vs batched, and a tiled restoration's time and seams"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_lazy(sub: argparse._SubParsersAction, name: str, module: str, help_: str, selected: str | None) -> None:
    p = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(_module=module, _command=name)
    # only the module of the command being run is imported (it adds its own options)
    if name == selected:
        mod = importlib.import_module(module)
        adder = getattr(mod, "add_arguments", None)
        if adder is not None:
            try:
                adder(p, name)
            except TypeError:
                adder(p)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = _Parser(prog="invkit", description="Zero-shot imaging inverse problems with diffusion models.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"invkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    words = [a for a in argv if not a.startswith("-")]
    first = words[0] if words else None
    second = words[1] if len(words) > 1 and first == "bench" else None
    for name, (module, help_) in COMMANDS.items():
        _add_lazy(sub, name, module, help_, first)
    bench = sub.add_parser("bench", help="benchmarks (results go to docs/benchmarks.md)")
    bsub = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", parser_class=_Parser)
    for name, (module, help_) in BENCHMARKS.items():
        _add_lazy(bsub, name, module, help_, second)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if getattr(args, "_module", None) is None:
            parser.print_help()
            return 0 if not argv else 2
        mod = importlib.import_module(args._module)
        return int(mod.run(args) or 0)
    except InvkitError as exc:
        print(f"invkit: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("invkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
