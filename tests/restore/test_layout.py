"""The house rules on the layout of ``invkit/restoration/`` (read with ``ast``, nothing imported):
no module over 500 lines without a reason at the top of its docstring, no private name imported
from another module, no import cycle among the package's modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "invkit" / "restoration"
MAX_LINES = 500


def modules(package: Path = PACKAGE) -> dict[str, ast.Module]:
    """Module name (``core``, ``__init__``) -> its syntax tree."""
    return {p.stem: ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for p in sorted(package.glob("*.py"))}


def imports(tree: ast.Module) -> list[ast.ImportFrom]:
    """Every ``from ... import`` in the module, at any depth (lazy imports in functions count)."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]


def local_edges(name: str, tree: ast.Module, names: set[str]) -> set[str]:
    """The package's modules that module ``name`` imports: ``from .x import ...`` is an edge to
    ``x``, ``from . import x`` to ``x`` if it is a module, else to ``__init__``."""
    edges = set()
    for node in imports(tree):
        if node.level != 1:
            continue
        if node.module:
            edges.add(node.module.split(".")[0])
        else:
            edges.update(a.name if a.name in names else "__init__" for a in node.names)
    edges.discard(name)
    return edges & names


def too_long(trees: dict[str, ast.Module], sources: dict[str, str]) -> list[str]:
    out = []
    for name, tree in trees.items():
        doc = ast.get_docstring(tree) or ""
        if len(sources[name].splitlines()) > MAX_LINES and "reason" not in doc.lower():
            out.append(f"{name}.py: {len(sources[name].splitlines())} lines and no reason in its docstring")
    return out


def private_imports(trees: dict[str, ast.Module]) -> list[str]:
    out = []
    for name, tree in trees.items():
        for node in imports(tree):
            if node.level == 0:
                continue  # another package's private name is that package's business (and none is used)
            for a in node.names:
                if a.name.startswith("_") and not (a.name.startswith("__") and a.name.endswith("__")):
                    out.append(f"{name}.py:{node.lineno}: from {'.' * node.level}{node.module or ''} import {a.name}")
    return out


def cycle(trees: dict[str, ast.Module]) -> list[str] | None:
    """One import cycle among the modules (as a path), or None."""
    names = set(trees)
    graph = {n: sorted(local_edges(n, t, names)) for n, t in trees.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in graph[n]:
            if state.get(m) == 1:
                return path[path.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_module_over_500_lines_without_a_reason():
    trees = modules()
    sources = {p.stem: p.read_text(encoding="utf-8") for p in PACKAGE.glob("*.py")}
    assert {"files", "core", "inputs", "journal"} <= set(trees)
    assert too_long(trees, sources) == []


def test_no_private_name_imported_across_modules():
    assert private_imports(modules()) == []


def test_no_import_cycle():
    assert cycle(modules()) is None


# the checks themselves must be able to fail


def test_the_checks_catch_what_they_look_for(tmp_path):
    (tmp_path / "__init__.py").write_text('"""The package."""\nfrom .a import f\n')
    (tmp_path / "a.py").write_text('"""A."""\nfrom .b import _g\n\n\ndef f():\n    return _g()\n')
    (tmp_path / "b.py").write_text('"""B."""\n\n\ndef _g():\n    from . import a\n    return a\n' + "\n" * MAX_LINES)
    (tmp_path / "c.py").write_text('"""C: the reason it is long: one algorithm."""\n' + "\n" * MAX_LINES)
    trees = modules(tmp_path)
    sources = {p.stem: p.read_text() for p in tmp_path.glob("*.py")}
    assert too_long(trees, sources) == [f"b.py: {MAX_LINES + 6} lines and no reason in its docstring"]
    assert private_imports(trees) == ["a.py:2: from .b import _g"]
    assert cycle(trees) == ["a", "b", "a"]
    (tmp_path / "b.py").write_text('"""B."""\n\n\ndef g():\n    return 1\n')
    assert cycle(modules(tmp_path)) is None


@pytest.mark.parametrize("name", ["__init__", "files"])
def test_the_package_and_the_files_layer_are_in_the_graph(name):
    trees = modules()
    assert local_edges(name, trees[name], set(trees)), f"{name}.py imports none of the package's modules?"
