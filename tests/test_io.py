"""invkit.io: atomic writers leave the old file or the new one, never a torn or stray file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from invkit import io


def test_json_and_text_round_trip(tmp_path):
    p = io.write_json_atomic(tmp_path / "a.json", {"x": 1, "p": tmp_path})
    assert json.loads(p.read_text())["x"] == 1
    io.write_text_atomic(tmp_path / "a.json", "new")
    assert (tmp_path / "a.json").read_text() == "new"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.json"]


def test_failed_write_keeps_old_content_and_no_temporary(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")

    def dies(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        io.write_atomic(target, dies)
    assert target.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["t.txt"]


def test_sha256_matches_bytes(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "b").write_bytes(data)
    assert io.sha256_file(tmp_path / "b") == io.sha256_bytes(data)
    assert io.sha256_bytes(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("shape", "dtype", "mode"),
    [((1, 5, 7), np.uint8, "L"), ((3, 5, 7), np.uint8, "RGB"), ((5, 7), np.uint16, "I;16"), ((1, 5, 7), np.uint16, "I;16")],
)
def test_save_png_round_trip(tmp_path, shape, dtype, mode):
    rng = np.random.default_rng(0)
    a = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    p = io.save_png(a, tmp_path / "x.png")
    img = Image.open(p)
    assert img.mode == mode
    back = np.asarray(img)
    want = a.reshape(a.shape[-2:]) if a.ndim == 2 or a.shape[0] == 1 else a.transpose(1, 2, 0)
    assert np.array_equal(back.astype(want.dtype), want)


def test_save_png_rejects_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError):
        io.save_png(np.zeros((3, 4, 4), np.uint16), tmp_path / "x.png")
    with pytest.raises(ValueError):
        io.save_png(np.zeros((2, 4, 4), np.uint8), tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_environment_records_versions():
    env = io.environment("cpu")
    assert env["device"] == "cpu" and env["invkit"] and env["torch"]


def test_output_checks(tmp_path):
    from invkit.errors import ConfigError

    f = tmp_path / "plain.txt"
    f.write_text("x")
    assert io.check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing created
    for bad, text in [(f, "is a file, not a folder"), (f / "run", "not a folder")]:
        with pytest.raises(ConfigError, match=text):
            io.check_output_dir(bad, "--out")
    with pytest.raises(ConfigError, match="is a folder"):
        io.check_output_file(tmp_path, "--export")
    with pytest.raises(ConfigError, match="must end in .png"):
        io.check_output_file(tmp_path / "a.jpg", "--out", (".png",))
    assert io.check_output_file(tmp_path / "sub" / "a.png", "--out", (".png",)).name == "a.png"


def test_one_device_check_everywhere():
    from invkit.checks import check_device
    from invkit.cli import parse_device
    from invkit.errors import ConfigError
    from invkit.evaluation import check_device as eval_check_device

    assert eval_check_device is check_device
    assert parse_device("cpu").type == "cpu"
    for bad in ("potato", "meta"):
        with pytest.raises(ConfigError, match=f"--device {bad}"):
            parse_device(bad)
