"""``invkit demo`` end to end on a random-weight small DDPM (the hidden development option)."""

from __future__ import annotations

import pytest
from PIL import Image

from invkit import cli
from invkit.data import fashion_mnist_dir
from invkit.plugins import reload_plugins


@pytest.fixture
def fashion():
    if not (fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file() and not (fashion_mnist_dir() / "t10k-images-idx3-ubyte").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def test_demo_writes_the_comparison_grid(fashion, tmp_path, capsys):
    out = tmp_path / "sub" / "demo.png"
    assert cli.main(["demo", "--random-backbone", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    for name in ("A+y", "ssd-30", "ddnm-30", "ddrm-30", "PSNR"):
        assert name in printed
    grid = Image.open(out)
    tile = 96  # 32 px magnified ×3
    assert grid.size[0] == 6 * (tile + 4) + 4  # ground truth | y | A+y | ssd-30 | ddnm-30 | ddrm-30
    assert grid.size[1] > 8 * tile  # eight images


def test_demo_without_fashion32_is_a_typed_one_line_error(fashion, tmp_path, capsys, monkeypatch):
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
