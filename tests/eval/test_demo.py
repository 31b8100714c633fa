"""``invkit demo`` end to end: the grid, the printed table, the missing-weights error."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import invkit.commands.demo as demo
from invkit import cli
from invkit.data import fashion_mnist_dir
from invkit.plugins import reload_plugins

from .conftest import tiny_backbone


@pytest.fixture
def fashion():
    root = fashion_mnist_dir()
    if not any((root / f"t10k-images-idx3-ubyte{ext}").is_file() for ext in ("", ".gz")):
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


@pytest.fixture
def threads():
    """``--threads`` changes torch's process-wide setting: put it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _check_grid_and_table(out, printed):
    for name in ("A+y", "ssd-30", "ddnm-30", "ddrm-30", "PSNR"):
        assert name in printed
    grid = Image.open(out)
    tile = 96  # 32 px magnified ×3
    assert grid.size[0] == 6 * (tile + 4) + 4  # ground truth | y | A+y | ssd-30 | ddnm-30 | ddrm-30
    assert grid.size[1] > 8 * tile  # eight images


def test_demo_writes_the_comparison_grid(fashion, threads, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "demo_backbone", lambda device, random=False: tiny_backbone())
    out = tmp_path / "sub" / "demo.png"
    assert cli.main(["demo", "--out", str(out), "--quiet", "--threads", "1"]) == 0
    _check_grid_and_table(out, capsys.readouterr().out)


@pytest.mark.slow
def test_demo_on_the_hidden_random_ddpm(fashion, threads, tmp_path, capsys):
    # the development path: a random-weight small DDPM instead of the fashion32 weights
    out = tmp_path / "demo.png"
    assert cli.main(["demo", "--random-backbone", "--out", str(out), "--quiet", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    _check_grid_and_table(out, printed)
    assert "random ddpm" in printed


def test_demo_without_fashion32_is_a_typed_one_line_error(fashion, threads, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("INVKIT_DISABLE_PLUGINS", "fashion32")
    reload_plugins()
    try:
        code = cli.main(["demo", "--out", str(tmp_path / "d.png"), "--quiet"])
    finally:
        monkeypatch.delenv("INVKIT_DISABLE_PLUGINS")
        reload_plugins()
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fashion32" in err
    assert not (tmp_path / "d.png").exists()
