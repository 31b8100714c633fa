"""``invkit operators|backbones|recipes|plugins``: print a registry as an aligned table (or JSON).

``invkit plugins`` lists every plugin found, with its distribution, its status (loaded, disabled,
failed) and, for a failed one, why; ``--json`` gives the same as machine-readable JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..plugins import backbones_registry, operators_registry, plugin_infos, recipes_registry


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name != "plugins":
        parser.add_argument("--names", action="store_true", help="print only the names, one per line")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return getattr(value, "__qualname__", None) or repr(value)


def _plugins(args: argparse.Namespace) -> int:
    rows = plugin_infos()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    table = [
        (r["name"], r["status"], r["distribution"] or "-", r["entry_point"] or "(run time)", ", ".join(
            h.removeprefix("invkit_register_") for h in r["hooks"]) or "-")
        for r in rows
    ]
    print(_table(table, ("name", "status", "distribution", "entry point", "registers")))
    for r in rows:
        for error in r["errors"]:
            print(f"\n{r['name']}: {error}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args._command == "plugins":
        return _plugins(args)
    registry = {"operators": operators_registry, "backbones": backbones_registry, "recipes": recipes_registry}[args._command]
    specs = registry.specs()
    if args.json:
        data = [
            {"name": n, "plugin": s.plugin, "description": s.description,
             **{k: _jsonable(v) for k, v in s.meta.items() if k != "example"}}
            for n, s in specs.items()
        ]
        print(json.dumps([d["name"] for d in data] if args.names else data, indent=1))
        return 0
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
