"""The CLI shell: help, version, one-line errors with exit status 2, lazy sub-command import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import invkit
from invkit import cli
from invkit.errors import UnknownNameError


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"invkit {invkit.__version__}"


def test_version_and_help_answer_without_torch():
    code = (
        "import sys, contextlib, io\n"
        "from invkit import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    codes = [cli.main(['--version']), cli.main([]), cli.main(['bench'])]\n"
        "    try:\n"
        "        cli.main(['--help'])\n"
        "    except SystemExit as exc:\n"
        "        codes.append(exc.code)\n"
        "print(codes, 'torch' in sys.modules, 'train' in out.getvalue(), 'gmm' in out.getvalue())\n"
    )
    env = dict(os.environ, INVKIT_DISABLE_PLUGINS="*", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[0, 0, 0, 0] False True True"
    # with every installed plugin: the example plugin's light entry module keeps torch out as well
    if os.environ.get("INVKIT_REQUIRE_EXAMPLE_PLUGIN"):
        env.pop("INVKIT_DISABLE_PLUGINS")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
        assert out.strip() == "[0, 0, 0, 0] False True True"


def test_bench_alone_prints_the_bench_help(capsys):
    assert cli.main(["bench"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: invkit bench") and "operators" in out and "gmm" in out and "speed" in out


def test_unknown_command_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "invalid choice" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "no-such-bench"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "invalid choice" in err


def test_plugin_commands_are_listed_with_their_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "train a DDPM backbone" in out


def test_invkit_error_becomes_one_line(monkeypatch, capsys):
    import invkit.commands.listing as listing

    def boom(args):
        raise UnknownNameError("unknown thing 'x'.\nDid you mean 'y'?")

    monkeypatch.setattr(listing, "run", boom)
    assert cli.main(["operators"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("invkit: error: unknown thing") and err.count("\n") == 1


def test_only_the_selected_command_module_is_imported():
    code = (
        "import sys, invkit.cli as c; c.build_parser(['operators']); "
        "print(any(m.startswith(('invkit.bench.', 'invkit_gmm.', 'invkit_ddpm.')) for m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "False"


def test_listing_commands_print_registries(capsys):
    for command in ("operators", "backbones", "recipes", "plugins"):
        assert cli.main([command]) == 0
    out = capsys.readouterr().out
    assert "operators" in out  # the built-in operators plugin appears in `invkit plugins`
