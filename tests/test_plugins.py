"""The plugin manager and registries: discovery, duplicates, unknown names, disabling, factory
parameters, the CLI listing, and the example third-party plugin."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import invkit
from invkit import ConfigError, PluginError, UnknownNameError, hookimpl
from invkit.cli import main
from invkit.plugins import (
    operators_registry,
    plugin_infos,
    plugin_names,
    register_plugin,
    reload_plugins,
    unregister_plugin,
)
from invkit_operators import Denoise

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


class Throwaway:
    """A plugin object registered at run time; registers ``names`` as the identity operator."""

    def __init__(self, *names: str):
        self.names = names

    @hookimpl
    def invkit_register_operators(self, register):
        for name in self.names:
            register(name, Denoise)


@pytest.fixture
def throwaway():
    registered: list[str] = []

    def add(plugin_name: str, *names: str) -> None:
        register_plugin(Throwaway(*names), name=plugin_name)
        registered.append(plugin_name)

    yield add
    for name in registered:
        unregister_plugin(name)


def test_duplicate_name_names_both_plugins(throwaway):
    throwaway("my_ops", "sr_bicubic")
    message = r"'sr_bicubic' is registered twice: by plugin 'operators' and by plugin 'my_ops'"
    with pytest.raises(PluginError, match=message):
        operators_registry.specs()


def test_registry_recovers_after_unregistering(throwaway):
    throwaway("extra_ops", "my_identity")
    assert invkit.operators()["my_identity"][1] == "extra_ops"
    unregister_plugin("extra_ops")
    register_plugin(Throwaway(), name="extra_ops")  # so the fixture's unregister finds it
    assert "my_identity" not in invkit.operators()


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownNameError, match=r"unknown operator 'sr_bicubik'\. Did you mean 'sr_bicubic'"):
        invkit.operator("sr_bicubik")
    with pytest.raises(UnknownNameError, match=r"Registered: .*colorization"):
        invkit.operator("nothing_like_it")
    with pytest.raises(UnknownNameError, match=r"no plugin named 'nope'"):
        unregister_plugin("nope")


@pytest.fixture
def restore_plugins(monkeypatch):
    yield monkeypatch
    monkeypatch.delenv("INVKIT_DISABLE_PLUGINS", raising=False)
    reload_plugins()


def test_disable_plugins_by_name(restore_plugins):
    restore_plugins.setenv("INVKIT_DISABLE_PLUGINS", "operators")
    reload_plugins()
    assert "operators" not in plugin_names()
    assert "sr_bicubic" not in invkit.operators()
    restore_plugins.delenv("INVKIT_DISABLE_PLUGINS")
    reload_plugins()
    assert "sr_bicubic" in invkit.operators()


def test_disable_all_third_party_plugins_keeps_builtins(restore_plugins):
    restore_plugins.setenv("INVKIT_DISABLE_PLUGINS", "*")
    reload_plugins()
    assert "sr_bicubic" in invkit.operators()
    assert "example" not in plugin_names()
    assert all(plugin != "example" for _, plugin in invkit.operators().values())


def test_every_builtin_entry_point_is_loaded():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        entry_points = tomllib.load(fh)["project"]["entry-points"]["invkit"]
    loaded = plugin_names()
    assert entry_points, "pyproject declares no invkit entry points"
    for name in entry_points:
        assert name in loaded, f"entry point {name!r} is not loaded (loaded: {loaded})"


def test_builtin_operators_come_from_the_operators_plugin():
    ops = invkit.operators()
    for name in ("sr_avgpool", "sr_bicubic", "colorization", "inpainting", "deblur_gauss", "deblur_gauss_ddrm",
                 "blur_fft", "denoise", "matrix", "colorization_sr"):
        assert ops[name][1] == "operators", name
        assert ops[name][0], f"{name} has no description"


def test_bad_factory_parameters_raise_config_error_listing_accepted_params():
    message = r"operator 'sr_avgpool': .*unexpected keyword argument 'sigma'; it accepts \(scale"
    with pytest.raises(ConfigError, match=message):
        invkit.operator("sr_avgpool", sigma=2)
    with pytest.raises(ConfigError, match=r"missing a required argument: 'kernel'; it accepts \(kernel\b.*rcond"):
        invkit.operator("blur_fft")


def test_cli_lists_the_registry(capsys):
    assert main(["operators"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "plugin", "description"]
    for name, (description, plugin) in invkit.operators().items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert plugin in line and description[:20] in line
    assert main(["operators", "--names"]) == 0
    assert capsys.readouterr().out.split() == sorted(invkit.operators())


# -- the example third-party plugin ----------------------------------------------------------


def _example_plugin_or_skip() -> None:
    if "cyclic_diff" in invkit.operators():
        return
    if os.environ.get("INVKIT_REQUIRE_EXAMPLE_PLUGIN") == "1":
        pytest.fail(
            "INVKIT_REQUIRE_EXAMPLE_PLUGIN=1 but the example plugin is not installed: "
            "pip install -e examples/invkit-example-plugin"
        )
    pytest.skip("the example plugin is not installed (pip install -e examples/invkit-example-plugin)")


def test_example_plugin_is_discovered_through_its_entry_point():
    _example_plugin_or_skip()
    description, plugin = invkit.operators()["cyclic_diff"]
    assert plugin == "example" and "example plugin" in description
    assert "example" in plugin_names()


def test_example_plugin_operator_uses_the_generic_adjoint_and_cg_pinv():
    _example_plugin_or_skip()
    import torch

    from invkit.operator import Operator

    op = invkit.operator("cyclic_diff", axis=-1)
    cls = type(op)
    assert cls.AT is Operator.AT and cls.pinv is Operator.pinv and cls.svd is Operator.svd
    assert not op.exact_pinv
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = op.A(x)
    p = op.pinv(y)
    # the null space is constant rows: A⁺ y has zero row means and A A⁺ y = y (y is in the range)
    assert p.mean(dim=-1).abs().max() < 1e-10
    assert torch.allclose(op.A(p), y, atol=1e-10)
    assert "cyclic_diff" in operators_registry.names()  # so the property suite runs on it


# -- the core imports no plugin ----------------------------------------------------------------


def _plugin_packages() -> set[str]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        values = tomllib.load(fh)["project"]["entry-points"]["invkit"].values()
    names = {v.split(":")[0].split(".")[0] for v in values}
    names |= {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file()}
    return names


_IMPORTERS = {"import_module", "find_spec", "__import__", "resolve_name", "LazyLoader", "spec_from_file_location"}


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module name a file imports: import statements and string constants given to
    importlib's import functions."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _IMPORTERS:
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.append((node.lineno, arg.value))
    return found


def test_no_core_module_imports_a_plugin_package():
    plugins = _plugin_packages()
    assert {"invkit_ddpm", "invkit_gmm", "invkit_fashion32", "invkit_operators"} <= plugins
    offenders = []
    files = sorted((ROOT / "invkit").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        for line, module in _imported_names(path):
            if module.split(".")[0] in plugins:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offenders, "core modules import plugins:\n" + "\n".join(offenders)


def test_the_import_scan_sees_importlib_strings(tmp_path):
    # the scanner must catch the indirect forms, or the test above could not fail
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import importlib, importlib.util\nfrom invkit_gmm import x\n"
        "importlib.import_module('invkit_ddpm.train')\nimportlib.util.find_spec(name='invkit_fashion32')\n"
    )
    assert [m for _, m in _imported_names(sample)][-3:] == ["invkit_gmm", "invkit_ddpm.train", "invkit_fashion32"]


def test_builtins_are_declared_once_as_entry_points(monkeypatch):
    import invkit.plugins as plugins_module
    from importlib.metadata import PackageNotFoundError

    source = (ROOT / "invkit" / "plugins.py").read_text()
    for module in ("invkit_operators", "invkit_ddpm", "invkit_recipes"):
        assert module not in source, f"invkit/plugins.py names {module}: the entry points are the one list"

    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(plugins_module, "distribution", not_installed)
    reload_plugins()
    try:
        with pytest.raises(PluginError, match=r"pip install -e \."):
            plugin_names()
    finally:
        monkeypatch.undo()
        reload_plugins()


# -- failing plugins: warn (or fail under INVKIT_STRICT_PLUGINS), carry on ----------------------------


class BadSignature:
    @hookimpl
    def invkit_register_operators(self, reg):  # pluggy: argument names must match the hookspec
        reg("never", Denoise)


class Misspelled:
    @hookimpl
    def invkit_register_operator(self, register):
        register("never", Denoise)


class Typo:
    @hookimpl
    def invkit_register_operators(self, register):
        register("typo_op", Denoise, exmaple=None)


class Raises:
    @hookimpl
    def invkit_register_backbones(self, register):
        raise RuntimeError("weights server down")


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.delenv("INVKIT_STRICT_PLUGINS", raising=False)
    yield monkeypatch


@pytest.mark.parametrize(
    "plugin, needle",
    [
        (BadSignature(), "signature does not match"),
        (Misspelled(), "unknown hook(s) 'invkit_register_operator' (did you mean 'invkit_register_operators'?)"),
        (Typo(), "unknown keyword(s) exmaple= (did you mean example=?)"),
        (Raises(), "failed in invkit_register_backbones: RuntimeError: weights server down"),
    ],
    ids=["signature", "misspelled-hook", "unknown-keyword", "raises"],
)
def test_a_failing_plugin_warns_once_and_the_rest_works(lenient, plugin, needle):
    with pytest.warns(invkit.PluginWarning, match=re.escape(needle)) as record:
        register_plugin(plugin, name="bad")
        ops, backbones = invkit.operators(), invkit.backbones()
        operators_registry.specs()
    try:
        assert "sr_bicubic" in ops and "fashion32" in backbones and "never" not in ops and "typo_op" not in ops
        assert len([w for w in record if needle in str(w.message)]) == 1
        row = next(r for r in plugin_infos() if r["name"] == "bad")
        assert row["status"] == "failed" and needle in row["errors"][0]
    finally:
        unregister_plugin("bad")


@pytest.mark.parametrize("plugin", [BadSignature(), Misspelled(), Typo(), Raises()], ids=["sig", "hook", "kw", "raises"])
def test_strict_mode_makes_plugin_failures_errors(plugin):
    assert os.environ.get("INVKIT_STRICT_PLUGINS") == "1", "tests/conftest.py sets INVKIT_STRICT_PLUGINS=1"
    try:
        with pytest.raises(PluginError, match=r"invkit plugin 'bad' \(registered at run time"):
            register_plugin(plugin, name="bad")
            invkit.operators()
            invkit.backbones()
    finally:
        if "bad" in plugin_names():
            unregister_plugin("bad")


def test_duplicate_name_keeps_the_first_and_lists_the_second_as_failed(lenient, throwaway):
    with pytest.warns(invkit.PluginWarning, match="registered twice: by plugin 'operators' and by plugin 'my_ops'"):
        throwaway("my_ops", "sr_bicubic", "my_identity")
        ops = invkit.operators()
    assert ops["sr_bicubic"][1] == "operators" and ops["my_identity"][1] == "my_ops"


def test_register_accepts_only_documented_keywords(lenient):
    from invkit.plugins import backbones_registry, recipes_registry

    assert operators_registry.meta_keys == ("example",)
    assert set(backbones_registry.meta_keys) == {"checkpoint", "url", "params", "arch_aliases"}
    assert set(recipes_registry.meta_keys) == {"nfe", "tasks"}


_FAKE_PLUGINS = {
    "brokenimport": "raise ImportError(\"No module named 'missing_dep'\")\n",
    "badsig": "from invkit import hookimpl\n\n@hookimpl\ndef invkit_register_operators(reg):\n    pass\n",
    "misspelled": "from invkit import hookimpl\n\n@hookimpl\ndef invkit_register_recipe(register):\n    pass\n",
    "dupe": (
        "from invkit import hookimpl\n\n@hookimpl\ndef invkit_register_operators(register):\n"
        "    from invkit_operators import Denoise\n    register('sr_bicubic', Denoise)\n    register('dupe_ok', Denoise)\n"
    ),
    "clash": "from invkit import hookimpl\n\n@hookimpl\ndef invkit_register_commands(register):\n    register('eval', 'clash')\n",
    "hello": (
        "from invkit import hookimpl\n\n@hookimpl\ndef invkit_register_commands(register):\n"
        "    register('hello', 'hello.cli', help='say hello')\n"
    ),
}


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory) -> Path:
    """Installed-looking distributions (dist-info with an `invkit` entry point), one per broken kind."""
    site = tmp_path_factory.mktemp("site")
    for name, code in _FAKE_PLUGINS.items():
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(code)
        info = site / f"fake_{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-{name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[invkit]\n{name} = {name}\n")
    (site / "hello" / "cli.py").write_text(
        "def add_arguments(parser, name):\n    parser.add_argument('--who', default='world')\n\n"
        "def run(args):\n    print('hello', args.who)\n    return 0\n"
    )
    return site


def _invkit(site: Path, *argv: str, strict: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), *sys.path]))
    env.pop("INVKIT_STRICT_PLUGINS", None)
    if strict:
        env["INVKIT_STRICT_PLUGINS"] = "1"
    return subprocess.run([sys.executable, "-m", "invkit.cli", *argv], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_installed_broken_plugins_are_reported_and_skipped(fake_site):
    res = _invkit(fake_site, "plugins", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    for name in ("brokenimport", "badsig", "misspelled", "dupe", "clash"):
        assert rows[name]["status"] == "failed", rows[name]
        assert rows[name]["distribution"] == f"fake-{name}"
    assert rows["hello"]["status"] == rows["operators"]["status"] == "loaded"
    warnings_ = [line for line in res.stderr.splitlines() if line.startswith("invkit: warning:")]
    assert len(warnings_) == 5, res.stderr  # once each, though several registries were loaded
    line = next(w for w in warnings_ if "brokenimport" in w)
    for part in ("distribution 'fake-brokenimport'", "entry point brokenimport = brokenimport", "missing_dep",
                 "INVKIT_DISABLE_PLUGINS=brokenimport"):
        assert part in line, line

    res = _invkit(fake_site, "operators", "--names")
    assert res.returncode == 0 and "dupe_ok" in res.stdout.split() and "sr_bicubic" in res.stdout.split()
    res = _invkit(fake_site, "hello", "--who", "plugins")
    assert res.returncode == 0 and res.stdout.strip() == "hello plugins", res.stderr
    res = _invkit(fake_site, "--help")
    assert res.returncode == 0 and "say hello" in res.stdout

    res = _invkit(fake_site, "operators", strict=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and res.stderr.startswith("invkit: error: invkit plugin")


# -- disabling any plugin but the operators leaves the core commands working --------------------

_CORE_RUN = r"""
import contextlib, io, json, sys
from invkit.cli import main
results = {}
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # --help
            code = exc.code
    results[" ".join(argv)] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""

_CORE_COMMANDS = [
    ["--help"], ["bench"], ["operators"], ["backbones"], ["recipes"], ["plugins"], ["plugins", "--json"],
    ["operators", "--json"], ["bench", "operators", "--only", "denoise", "sr_avgpool", "--size", "8", "--batch-size", "1",
                              "--repeats", "1"],
]
_NEEDS = {"ddpm": (["train", "--out", "x"], "command 'train'"), "gmm": (["bench", "gmm"], "benchmark 'gmm'")}


@pytest.mark.slow
@pytest.mark.parametrize("disabled", ["recipes", "gmm", "ddpm", "adm", "fashion32"])
def test_core_commands_work_with_a_plugin_disabled(disabled):
    commands = list(_CORE_COMMANDS)
    if disabled in _NEEDS:
        commands.append(_NEEDS[disabled][0])
    env = dict(os.environ, INVKIT_DISABLE_PLUGINS=disabled, PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-c", _CORE_RUN, json.dumps(commands)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout)
    for argv in _CORE_COMMANDS:
        code, out, err = results[" ".join(argv)]
        assert code == 0 and out and not err, (disabled, argv, err)
    plugins = {r["name"]: r["status"] for r in json.loads(results["plugins --json"][1])}
    assert plugins[disabled] == "disabled" and plugins["operators"] == "loaded"
    if disabled in _NEEDS:
        argv, needle = _NEEDS[disabled]
        code, out, err = results[" ".join(argv)]
        assert code == 2 and err.count("\n") == 1, err
        assert f"{needle} is provided by plugin '{disabled}'" in err and "INVKIT_DISABLE_PLUGINS" in err
    if disabled == "fashion32":
        env["INVKIT_DISABLE_PLUGINS"] = "fashion32"
        code = "import invkit.metrics as m\ntry:\n    m.load_fashion_classifier()\nexcept invkit.PluginError as e:\n    print(e)\n"
        res = subprocess.run([sys.executable, "-c", "import invkit\n" + code], capture_output=True, text=True, env=env)
        assert "provided by plugin 'fashion32'" in res.stdout, res.stdout + res.stderr


# -- light imports -----------------------------------------------------------------------------


def test_import_invkit_and_the_cli_help_do_not_import_torch():
    code = (
        "import sys, invkit\n"
        "after_import = 'torch' in sys.modules\n"
        "from invkit import cli\n"
        "text = cli.build_parser([]).format_help()\n"
        "bench = cli.build_parser(['bench']).format_help()\n"
        "print(after_import, 'torch' in sys.modules, 'train' in text)\n"
    )
    # third-party plugins are their own business; every built-in plugin is imported here
    env = dict(os.environ, INVKIT_DISABLE_PLUGINS="*", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["False", "False", "True"]


def test_public_names_of_plugin_packages_resolve_lazily():
    import invkit_ddpm
    import invkit_gmm
    import invkit_operators

    assert invkit_operators.SRBicubic.__module__ == "invkit_operators.sr"
    assert invkit_ddpm.DDPMUNet.__module__ == "invkit_ddpm.model"
    assert callable(invkit_gmm.sliced_wasserstein)
    with pytest.raises(AttributeError):
        invkit_operators.NoSuchOperator  # noqa: B018


def test_moved_modules_keep_working_with_a_deprecation_warning():
    import importlib

    import invkit_ddpm.train
    import invkit_fashion32.classifier
    import invkit_gmm.bench

    train = importlib.import_module("invkit.commands.train")
    with pytest.warns(DeprecationWarning, match=r"invkit\.commands\.train\.DDPMTrainer is deprecated; use invkit_ddpm\.train"):
        assert train.DDPMTrainer is invkit_ddpm.train.DDPMTrainer
    gmm = importlib.import_module("invkit.bench.gmm")
    with pytest.warns(DeprecationWarning, match=r"invkit_gmm\.bench\.FAMILIES"):
        assert gmm.FAMILIES is invkit_gmm.bench.FAMILIES
    import invkit.metrics

    with pytest.warns(DeprecationWarning, match=r"invkit_fashion32\.classifier\.FashionClassifier"):
        assert invkit.metrics.FashionClassifier is invkit_fashion32.classifier.FashionClassifier


def test_listing_json(capsys):
    assert main(["operators", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(invkit.operators())
    assert main(["backbones", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ddpm-celebahq256"]["checkpoint"] == "celeba_hq.ckpt" and rows["fashion32"]["plugin"] == "fashion32"
    assert main(["recipes", "--json", "--names"]) == 0
    assert json.loads(capsys.readouterr().out) == sorted(invkit.recipes())


def test_importing_the_operator_module_keeps_invkit_operator_the_function():
    import importlib

    importlib.import_module("invkit.operator")
    from invkit.operator import no_checks  # noqa: F401  (a plugin's usual import)

    assert callable(invkit.operator) and not isinstance(invkit.operator, type(invkit))
    assert type(invkit.operator("denoise")).__name__ == "Denoise"
