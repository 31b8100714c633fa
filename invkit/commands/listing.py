"""``invkit operators|backbones|recipes|plugins``: print a registry as an aligned table."""

from __future__ import annotations

import argparse

from ..plugins import backbones_registry, operators_registry, plugin_names, recipes_registry


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name != "plugins":
        parser.add_argument("--names", action="store_true", help="print only the names, one per line")


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    if args._command == "plugins":
        for name in plugin_names():
            print(name)
        return 0
    registry = {"operators": operators_registry, "backbones": backbones_registry, "recipes": recipes_registry}[args._command]
    specs = registry.specs()
    if args.names:
        print("\n".join(specs))
        return 0
    if args._command == "backbones":
        rows = []
        for n, s in specs.items():
            params = s.meta.get("params")
            rows.append((n, f"{params:,}" if isinstance(params, int) else "-", s.meta.get("checkpoint") or "-", s.plugin, s.description))
        print(_table(rows, ("name", "params", "checkpoint", "plugin", "description")))
    else:
        rows = [(n, s.plugin, s.description) for n, s in specs.items()]
        print(_table(rows, ("name", "plugin", "description")))
    return 0
