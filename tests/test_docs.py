"""The documentation stays true to the code.

- Every object an API page renders (``::: dotted.path`` in ``docs/api/*.md``, and the members it
  lists) has a docstring, and its Google-style sections are well formed: ``Args:`` names only
  real parameters (checked against the run-time signature, which for the attrs parts is the
  generated ``__init__``), ``Raises:`` names real exception classes, ``Attributes:`` real
  attributes, and no section header is misspelt (``Return:``, ``Arguments:``).
- The pages never cite a repository file that does not exist (the house rule: cite the paper,
  an equation or a docs page, never a file that is not in the repository).
- Every Python block of the plugin guide runs as written, and its copy of the example plugin is
  the example plugin.

``mkdocs build --strict`` (CI) checks links and renders the pages; it needs the docs extra,
which the test environment does not have, so these checks use only ``inspect``.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Google-style section headers that mkdocstrings' Google parser understands.
SECTIONS = {
    "Args", "Arguments", "Parameters", "Keyword Args", "Keyword Arguments", "Other Parameters",
    "Returns", "Yields", "Receives", "Raises", "Warns", "Attributes", "Examples", "Example",
    "Note", "Notes", "Warning", "Warnings", "See Also", "References", "Todo", "Methods",
    "Functions", "Classes", "Modules",
}
# Near misses of those headers: a docstring with one of these is malformed.
MISSPELT = re.compile(r"^\s*(Arg|Param|Return|Raise|Attribute|Yield|Argument s|Paramters|Retruns|Exmaples?)\s*:\s*$")
HEADER = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")
PARAM_SECTIONS = {"Args", "Arguments", "Parameters", "Keyword Args", "Keyword Arguments", "Other Parameters"}


# -- the API pages -------------------------------------------------------------------------------
def _excluded_pages() -> set[str]:
    """Pages ``mkdocs.yml`` keeps out of the build (their modules are not on this branch)."""
    text = (ROOT / "mkdocs.yml").read_text()
    m = re.search(r"^exclude_docs:\s*\|\n((?:[ \t]+\S.*\n)+)", text, re.M)
    return {line.strip() for line in m.group(1).splitlines()} if m else set()


def _directives() -> list[tuple[str, str, list[str]]]:
    """``(page, dotted path, listed members)`` for every ``:::`` directive of the built API pages."""
    out = []
    excluded = _excluded_pages()
    for page in sorted((DOCS / "api").glob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        if rel in excluded:
            continue
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^:::\s+([\w.]+)\s*$", line)
            if not m:
                continue
            members: list[str] = []
            j = i + 1
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                mm = re.match(r"^\s+-\s+(\w+)\s*$", lines[j])
                if mm:
                    members.append(mm.group(1))
                if not lines[j].strip() and j + 1 < len(lines) and not lines[j + 1].startswith("    "):
                    break
                j += 1
            out.append((rel, m.group(1), members))
    return out


def _resolve(path: str):
    parts = path.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for name in parts[k:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


DIRECTIVES = _directives()


def test_the_api_pages_document_something():
    assert len(DIRECTIVES) >= 60, [d[1] for d in DIRECTIVES]
    paths = {d[1] for d in DIRECTIVES}
    for required in (
        "invkit.operator.Operator", "invkit.operator.SVDView", "invkit.noise.Noise",
        "invkit.schedule.NoiseSchedule", "invkit.models.Backbone", "invkit.inverters.Inverter",
        "invkit.inverters.DA", "invkit.inverters.DDIM", "invkit.inverters.DDPM",
        "invkit.guidance.Guidance", "invkit.guidance.BackProj", "invkit.guidance.StagedBackProj",
        "invkit.guidance.DDNMPlus", "invkit.guidance.DDRM", "invkit.guidance.DPS",
        "invkit.guidance.NoGuidance", "invkit.sampling.Recipe", "invkit.sampling.RunResult",
        "invkit.plugins.Registry", "invkit.hookspecs",
    ):
        assert required in paths, f"{required} is missing from docs/api/"


def _members(obj, listed: list[str]) -> list[tuple[str, object]]:
    """The public members mkdocstrings renders for ``obj`` (its own, not inherited ones)."""
    if listed:
        return [(name, getattr(obj, name)) for name in listed]
    if inspect.ismodule(obj):
        return []  # module pages list their members as their own directives
    if not inspect.isclass(obj):
        return []
    out = []
    for name, value in list(vars(obj).items()):
        if name.startswith("_") or name in getattr(obj, "__annotations__", {}):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            out.append((name, getattr(obj, name) if not isinstance(value, property) else value))
    return out


def _doc(obj) -> str:
    if isinstance(obj, property):
        return inspect.cleandoc(obj.__doc__ or "")
    return inspect.getdoc(obj) or ""


def _sections(doc: str) -> list[tuple[str, list[str]]]:
    """``(header, entry lines)``: each entry line of a section at the first indent under it."""
    lines = doc.splitlines()
    out = []
    fence = False
    for i, line in enumerate(lines):
        if line.strip().startswith("```"):
            fence = not fence
        m = HEADER.match(line)
        if fence or not m or m.group(1) != "" or m.group(2) not in SECTIONS:
            continue
        body = []
        indent = None
        for nxt in lines[i + 1 :]:
            if nxt.strip() and not nxt.startswith(" "):
                break
            if not nxt.strip():
                body.append("")
                continue
            ind = len(nxt) - len(nxt.lstrip())
            indent = ind if indent is None else indent
            if ind == indent:
                body.append(nxt.strip())
        out.append((m.group(2), [b for b in body if b]))
    return out


def _parameters(obj) -> set[str] | None:
    target = obj.fget if isinstance(obj, property) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    return set(sig.parameters)


def _exception(name: str) -> bool:
    import invkit.errors as errors

    cls = getattr(errors, name, None) or getattr(builtins, name, None)
    return inspect.isclass(cls) and issubclass(cls, BaseException)


def _check_docstring(where: str, obj) -> list[str]:
    doc = _doc(obj)
    if not doc.strip():
        return [f"{where}: no docstring"]
    problems = []
    for line in doc.splitlines():
        if MISSPELT.match(line):
            problems.append(f"{where}: misspelt section header {line.strip()!r}")
    for header, entries in _sections(doc):
        if not entries:
            problems.append(f"{where}: empty {header}: section")
            continue
        if header in PARAM_SECTIONS:
            params = _parameters(obj)
            for entry in entries:
                m = re.match(r"^(\*{0,2}\w+)(\s*\([^)]*\))?:\s+\S", entry)
                if not m:
                    problems.append(f"{where}: {header}: entry {entry!r} is not 'name: description'")
                    continue
                name = m.group(1).lstrip("*")
                if params is not None and name not in params:
                    problems.append(f"{where}: {header}: {name!r} is not a parameter ({sorted(params)})")
        elif header == "Raises":
            for entry in entries:
                m = re.match(r"^([\w.]+(?:,\s*[\w.]+)*):\s+\S", entry)
                if not m:
                    problems.append(f"{where}: Raises: entry {entry!r} is not 'ErrorClass: when'")
                    continue
                for name in re.split(r",\s*", m.group(1)):
                    if not _exception(name.rsplit(".", 1)[-1]):
                        problems.append(f"{where}: Raises: {name!r} is not an exception class")
        elif header == "Attributes" and inspect.isclass(obj):
            for entry in entries:
                m = re.match(r"^(\w+)(\s*\([^)]*\))?:\s+\S", entry)
                if not m:
                    problems.append(f"{where}: Attributes: entry {entry!r} is not 'name: description'")
                    continue
                name = m.group(1)
                fields = {f.name for f in getattr(obj, "__attrs_attrs__", ())}
                known = (
                    hasattr(obj, name)
                    or name in fields
                    or any(name in getattr(k, "__annotations__", {}) for k in obj.__mro__)
                    or name in getattr(obj, "_fields", ())
                )
                if not known:
                    problems.append(f"{where}: Attributes: {name!r} is not an attribute of the class")
    return problems


@pytest.mark.parametrize("page,path,members", DIRECTIVES, ids=[d[1] for d in DIRECTIVES])
def test_documented_objects_have_well_formed_docstrings(page, path, members):
    obj = _resolve(path)
    problems = _check_docstring(path, obj)
    for name, member in _members(obj, members):
        problems += _check_docstring(f"{path}.{name}", member)
    assert not problems, f"{page}:\n" + "\n".join(problems)


def test_the_checker_catches_malformed_sections():
    def f(a, b=1):
        """Do something.

        Args:
            a: the first.
            c: not a parameter.

        Return:
            nothing.

        Raises:
            NoSuchError: never.
        """

    problems = "\n".join(_check_docstring("f", f))
    assert "'c' is not a parameter" in problems
    assert "misspelt section header 'Return:'" in problems
    assert "'NoSuchError' is not an exception class" in problems

    def g():
        pass

    assert _check_docstring("g", g) == ["g: no docstring"]


# -- cited files -----------------------------------------------------------------------------------
CITED = re.compile(r"`((?:invkit|plugins|tests|examples|docs|scripts|spec)/[^`\s]*)`")


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]


def _exists(cited: str) -> bool:
    if cited.startswith("spec/"):
        # the shared method notes (spec/ssd.md, spec/gmm.md, ...) are cited by name only
        return re.fullmatch(r"spec/[\w.-]+\.(md|txt)", cited) is not None
    path = cited.rstrip("/")
    if "*" in path or "<" in path:
        prefix = re.split(r"[*<]", path, maxsplit=1)[0]
        return any(ROOT.glob(prefix + "*"))
    return (ROOT / path).exists()


def test_pages_cite_only_files_that_exist():
    missing = []
    for page in _pages():
        for m in CITED.finditer(page.read_text()):
            if not _exists(m.group(1)):
                missing.append(f"{page.relative_to(ROOT)}: `{m.group(1)}`")
    assert not missing, "cited files that are not in the repository:\n" + "\n".join(missing)


def test_documented_docstrings_cite_only_files_that_exist():
    bad = []
    # a module anywhere, or a page with its folder (a bare ``table.md`` is an output file's name)
    pattern = re.compile(r"``([\w./-]+\.py|[\w.-]+/[\w./-]+\.md)``")
    for _, path, members in DIRECTIVES:
        obj = _resolve(path)
        docs = [(path, _doc(obj))] + [(f"{path}.{n}", _doc(m)) for n, m in _members(obj, members)]
        for where, doc in docs:
            for m in pattern.finditer(doc):
                cited = m.group(1)
                if not ((ROOT / cited).exists() or (DOCS / cited).exists()):
                    bad.append(f"{where}: ``{cited}``")
    assert not bad, "docstrings cite files that are not in the repository:\n" + "\n".join(sorted(set(bad)))


def test_the_file_check_can_fail():
    assert not _exists("invkit/no_such_module.py")
    assert _exists("invkit/operator.py") and _exists("plugins/invkit_*") and _exists("spec/ssd.md")


# -- the plugin guide ---------------------------------------------------------------------------
GUIDE = DOCS / "plugin-guide.md"
EXAMPLE = ROOT / "examples" / "invkit-example-plugin"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_guide_shows_the_example_plugin_verbatim():
    python = _blocks("python")
    toml = _blocks("toml")
    assert (EXAMPLE / "invkit_example_plugin" / "__init__.py").read_text() in python
    assert (EXAMPLE / "invkit_example_plugin" / "ops.py").read_text() in python
    assert (EXAMPLE / "pyproject.toml").read_text() in toml


def _example_plugin_installed() -> bool:
    from invkit.plugins import operators_registry

    return "cyclic_diff" in operators_registry


@pytest.mark.slow
def test_every_python_block_of_the_plugin_guide_runs():
    if not _example_plugin_installed():
        if os.environ.get("INVKIT_REQUIRE_EXAMPLE_PLUGIN"):
            pytest.fail("the example plugin is not installed: pip install ./examples/invkit-example-plugin")
        pytest.skip("the example plugin is not installed")
    import torch

    from invkit import evaluation
    from invkit.plugins import plugin_names

    threads = torch.get_num_threads()
    table = getattr(evaluation, "EVAL_TASKS", None) or evaluation.TASKS  # the task table, either name
    tasks = dict(table)
    plugins = set(plugin_names())
    torch.set_num_threads(1)
    namespace: dict = {"__name__": "plugin_guide"}
    try:
        for i, block in enumerate(_blocks("python")):
            exec(compile(block, f"{GUIDE.name} python block {i}", "exec"), namespace)
        tests = {k: v for k, v in namespace.items() if k.startswith("test_") and callable(v)}
        assert len(tests) >= 5, sorted(tests)
        for test in tests.values():
            test()
    finally:
        torch.set_num_threads(threads)
        table.clear()
        table.update(tasks)
        assert set(plugin_names()) == plugins, "the guide's blocks must unregister what they register"
