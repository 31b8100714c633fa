"""The evaluation package's layout: one concern per module, no import cycle, no hidden imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import invkit.evaluation as ev

PACKAGE = Path(ev.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _tree(name: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{name}.py").read_text("utf-8"))


def _siblings(name: str) -> set[str]:
    """The evaluation modules ``name`` imports at run time (``from .x import``, ``from . import x``)."""
    found = set()
    for node in _tree(name).body:  # module level only; TYPE_CHECKING blocks are not run
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {a.name for a in node.names}
    return found & set(MODULES)


def test_the_sibling_imports_form_no_cycle():
    graph = {m: _siblings(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            pytest.fail(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = 2

    for m in MODULES:
        visit(m, [])
    assert graph["seeds"] == set() and "store" not in set().union(*graph.values())  # it can fail: a leaf and a root


def test_no_import_is_hidden_in_a_function_and_no_private_name_crosses_modules():
    for name in [*MODULES, "__init__"]:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{name}.{node.name} imports inside the function (optional packages go through extras)"
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                assert not private, f"{name} imports private names {private}"
    for path in (PACKAGE.parent / "commands").glob("*.py"):
        text = path.read_text("utf-8")
        assert "ev._" not in text and "from .eval import" not in text, path.name


def test_each_module_is_short():
    for name in [*MODULES, "__init__"]:
        lines = (PACKAGE / f"{name}.py").read_text("utf-8").count("\n")
        assert lines <= 500, f"{name}.py has {lines} lines"


def test_the_package_and_its_commands_import_in_a_fresh_interpreter():
    # importing any submodule runs the package's __init__, so the graph test above is what checks
    # the modules one by one; this checks that nothing relies on an earlier import elsewhere
    code = "import invkit.commands.eval, invkit.commands.demo, invkit.evaluation.store"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]


def test_public_names_stay_importable_and_tasks_warns():
    for name in ("get_task", "Task", "image_seed", "image_generators", "make_noise", "parse_method", "load_images",
                 "load_backbone", "EvalConfig", "evaluate", "markdown_table", "paired_difference", "environment",
                 "write_outputs", "merge_results", "plot_lines", "image_grid", "sweep_methods", "task_from_operator"):  # fmt: skip
        assert callable(getattr(ev, name)), name
    with pytest.warns(DeprecationWarning, match="EVAL_TASKS"):
        assert ev.TASKS is ev.EVAL_TASKS
    with pytest.warns(DeprecationWarning, match="parse_literal"):
        assert ev._literal("(1, 2)") == (1, 2)
    with pytest.raises(AttributeError):
        ev.NOT_A_NAME  # noqa: B018
