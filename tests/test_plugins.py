"""The plugin manager and registries: discovery, duplicates, unknown names, disabling, factory
parameters, the CLI listing, and the example third-party plugin."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import invkit
from invkit import ConfigError, PluginError, UnknownNameError, hookimpl
from invkit.cli import main
from invkit.plugins import operators_registry, plugin_names, register_plugin, reload_plugins, unregister_plugin
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
