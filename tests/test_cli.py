"""The CLI shell: help, version, one-line errors with exit status 2, lazy sub-command import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from invkit import cli
from invkit.errors import UnknownNameError


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert "invkit" in capsys.readouterr().out


def test_unknown_command_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "invalid choice" in err


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
        "print(any(m.startswith('invkit.bench.') and m != 'invkit.bench' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_listing_commands_print_registries(capsys):
    for command in ("operators", "backbones", "recipes", "plugins"):
        assert cli.main([command]) == 0
    out = capsys.readouterr().out
    assert "operators" in out  # the built-in operators plugin appears in `invkit plugins`
