"""The ``invkit`` command line.

Each sub-command lives in its own module exposing ``add_arguments(parser, name)`` and
``run(args) -> int``: the core's in :data:`COMMANDS` and :data:`BENCHMARKS`, and those of plugins,
which add commands and benchmarks through the hooks ``invkit_register_commands`` and
``invkit_register_benchmarks`` (``invkit train`` belongs to the DDPM plugin, ``invkit bench gmm``
to the GMM plugin). Modules are imported only when their command runs, and plugins' entry modules
are light, so ``invkit --help`` and ``invkit --version`` answer without importing torch.

Any :class:`invkit.InvkitError` (bad input, missing file, unknown name) becomes one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Sequence

from .errors import InvkitError

# name -> (module, one-line help): the core's own commands
COMMANDS: dict[str, tuple[str, str]] = {
    "operators": ("invkit.commands.listing", "list registered operators"),
    "backbones": ("invkit.commands.listing", "list registered backbones (presets, sizes, checkpoints)"),
    "recipes": ("invkit.commands.listing", "list registered recipe presets"),
    "plugins": ("invkit.commands.listing", "list plugins, loaded, disabled and failed"),
    "demo": ("invkit.commands.demo", "restore 8 Fashion-MNIST test images with SSD, DDNM, DDRM and write a grid"),
    "eval": ("invkit.commands.eval", "evaluate recipes on a dataset and task (PSNR, SSIM, FID, NFE, time)"),
    "restore": ("invkit.commands.restore", "restore your own images: files and folders, any size, resumable"),
    "tune": ("invkit.commands.tune", "choose a recipe's numbers for a task and NFE budget on training images"),
}
BENCHMARKS: dict[str, tuple[str, str]] = {
    "operators": ("invkit.bench.operators", "time A and A+ of every operator on a (8, 3, 256, 256) batch"),
    "speed": ("invkit.bench.speed", "backbone forward time, recipe time, overhead ratio and peak memory"),
    "restore": ("invkit.bench.restore", "invkit restore: files/s batch 1 vs batched, and a tiled restoration's time and seams"),
}


# ---- helpers shared by commands (core and plugins): one vocabulary, checks before any work ----

#: dtype names every command accepts (the first of each group is the one help texts show)
DTYPE_NAMES: dict[str, str] = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float64": "float64", "fp64": "float64", "double": "float64",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}


def dtype_name(text: str) -> str:
    """An argparse ``type``: a dtype name or alias (``fp32``, ``bf16``...) → its canonical name."""
    canonical = DTYPE_NAMES.get(str(text).lower())
    if canonical is None:
        raise argparse.ArgumentTypeError(f"unknown dtype {text!r}; use float32, float64, bfloat16 or float16")
    return canonical


def parse_device(text: str) -> Any:
    """``--device`` text → a ``torch.device`` that exists on this machine (:func:`invkit.checks.check_device`)."""
    from .checks import check_device  # imported on use: this module must not import torch

    return check_device(text)


def check_output_dir(path: str | os.PathLike, flag: str) -> None:
    """``path`` is, or can be made, a folder we may write into (:func:`invkit.io.check_output_dir`)."""
    from .io import check_output_dir as check  # imported on use: this module must not import torch

    check(path, flag)


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """``path`` names a file (not a folder) in a folder we may write into (:func:`invkit.io.check_output_file`)."""
    from .io import check_output_file as check  # imported on use: this module must not import torch

    check(path, flag)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _plugin_entries(kind: str, core: dict[str, tuple[str, str]]) -> dict[str, tuple[Any, str]]:
    """Commands (or benchmarks) registered by plugins; one that takes a core name fails its plugin."""
    from .plugins import benchmarks_registry, commands_registry, record_failure

    registry = commands_registry if kind == "command" else benchmarks_registry
    out: dict[str, tuple[Any, str]] = {}
    for name, spec in registry.specs().items():
        if name in core:
            record_failure(spec.plugin, f"registers the {kind} {name!r}, which is a core invkit {kind}; rename it")
            continue
        out[name] = (spec.factory, spec.description)
    return out


def _add_lazy(sub: argparse._SubParsersAction, name: str, target: Any, help_: str, selected: str | None) -> None:
    p = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(_module=target, _command=name)
    # only the module of the command being run is imported (it adds its own options)
    if name == selected:
        mod = _resolve(target, name)
        adder = getattr(mod, "add_arguments", None)
        if adder is not None:
            try:
                adder(p, name)
            except TypeError:
                adder(p)


def _resolve(target: Any, name: str) -> Any:
    from .plugins import resolve_target

    if isinstance(target, str) and target.startswith("invkit."):
        return importlib.import_module(target)
    return resolve_target(target, f"command {name!r}")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser of ``argv``: every command listed, only the selected one's module imported."""
    parser = _Parser(prog="invkit", description="Zero-shot imaging inverse problems with diffusion models.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"invkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    words = [a for a in argv if not a.startswith("-")]
    first = words[0] if words else None
    second = words[1] if len(words) > 1 and first == "bench" else None
    commands = {**COMMANDS, **_plugin_entries("command", {**COMMANDS, "bench": ("", "")})}
    for name, (module, help_) in commands.items():
        _add_lazy(sub, name, module, help_, first)
    bench = sub.add_parser("bench", help="benchmarks (results go to docs/benchmarks.md)",
                           description="benchmarks (results go to docs/benchmarks.md)")
    bench.set_defaults(_bench_parser=bench)
    bsub = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", parser_class=_Parser)
    benchmarks = {**BENCHMARKS, **_plugin_entries("benchmark", BENCHMARKS)}
    for name, (module, help_) in benchmarks.items():
        _add_lazy(bsub, name, module, help_, second)
    parser.set_defaults(_known=(set(commands) | {"bench"}, set(benchmarks)))
    return parser


def _missing(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """A one-line error when the command asked for belongs to a disabled or failed plugin."""
    from .plugins import disabled_provider

    commands, benchmarks = parser.get_default("_known")
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return None
    if words[0] == "bench" and len(words) > 1 and words[1] not in benchmarks:
        provider = disabled_provider("invkit_register_benchmarks", words[1])
        return f"benchmark {words[1]!r} is provided by {provider}" if provider else None
    if words[0] not in commands:
        provider = disabled_provider("invkit_register_commands", words[0])
        return f"command {words[0]!r} is provided by {provider}" if provider else None
    return None


def _show_plugin_warnings_as_lines() -> None:
    """Print :class:`~invkit.errors.PluginWarning` as one ``invkit: warning:`` line (no source line)."""
    import warnings

    from .errors import PluginWarning

    show = warnings.showwarning
    if getattr(show, "_invkit", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, PluginWarning):
            print(f"invkit: warning: {message}".replace("\n", " "), file=file or sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    showwarning._invkit = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _show_plugin_warnings_as_lines()
    if argv[:1] == ["--version"]:  # answered before any plugin is loaded
        from . import __version__

        print(f"invkit {__version__}")
        return 0
    try:
        parser = build_parser(argv)
        message = _missing(argv, parser)
        if message:
            print(f"invkit: error: {message}".replace("\n", " "), file=sys.stderr)
            return 2
        # argparse's own errors (one usage line) and --help leave through SystemExit(2) and (0)
        args = parser.parse_args(argv)
        if getattr(args, "_module", None) is None:
            bench = getattr(args, "_bench_parser", None)
            (bench or parser).print_help()
            return 0 if (not argv or bench is not None) else 2
        mod = _resolve(args._module, args._command)
        return int(mod.run(args) or 0)
    except InvkitError as exc:
        print(f"invkit: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("invkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
