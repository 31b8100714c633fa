"""invkit.data: idx parsing, Fashion-MNIST padding/mapping/splits, the image-folder loader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invkit.data import FASHION_MNIST_DIR, fashion_mnist, fashion_mnist_labels, load_image_folder, read_idx
from invkit.errors import InvalidInputError, MissingFileError


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> None:
    code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(header + body)


@pytest.fixture
def fake_root(tmp_path: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    data = {}
    for split, prefix, n in (("train", "train", 5), ("test", "t10k", 3)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        # train gzipped, test plain: both spellings are accepted
        gz = split == "train"
        suffix = ".gz" if gz else ""
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=gz)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=gz)
        data[split] = (images, labels)
    return tmp_path, data


def test_read_idx_roundtrip_int32(tmp_path: Path) -> None:
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 7
    write_idx(tmp_path / "a.idx", a, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)


def test_read_idx_rejects_truncated_and_bad_magic(tmp_path: Path) -> None:
    a = np.zeros((4, 5), dtype=np.uint8)
    write_idx(tmp_path / "a.idx", a, compress=False)
    raw = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-3])
    with pytest.raises(InvalidInputError, match="truncated"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(InvalidInputError, match="magic"):
        read_idx(tmp_path / "bad.idx")


@pytest.mark.parametrize("split", ["train", "test"])
def test_fashion_mnist_pads_and_maps(fake_root, split: str) -> None:
    root, data = fake_root
    images, labels = data[split]
    x, y = fashion_mnist(split, root=root)
    assert x.shape == (len(images), 1, 32, 32) and x.dtype == torch.float32
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.all(x[:, 0][:, border] == -1)
    expected = torch.from_numpy(images.astype(np.float64)) / 127.5 - 1
    torch.testing.assert_close(x[:, 0, 2:30, 2:30].double(), expected, atol=1e-6, rtol=0)
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(fashion_mnist_labels(split, root=root), y)


def test_fashion_mnist_float64_no_pad_and_limit(fake_root) -> None:
    root, data = fake_root
    x, y = fashion_mnist("train", root=root, pad=0, dtype=torch.float64, limit=2)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float64
    torch.testing.assert_close(x[:, 0], torch.from_numpy(data["train"][0][:2]).double() * (2 / 255) - 1)


def test_env_var_overrides_dir(fake_root, monkeypatch) -> None:
    root, data = fake_root
    monkeypatch.setenv("INVKIT_FASHION_MNIST_DIR", str(root))
    assert fashion_mnist("test")[0].shape[0] == len(data["test"][0])


def test_missing_files_name_the_package_and_path(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError) as info:
        fashion_mnist("train", root=tmp_path / "nowhere")
    assert "dataset-fashion-mnist" in str(info.value) and "nowhere" in str(info.value)


def test_unknown_split(fake_root) -> None:
    with pytest.raises(Exception, match="split"):
        fashion_mnist("valid", root=fake_root[0])


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_counts() -> None:
    y_train = fashion_mnist_labels("train", root=FASHION_MNIST_DIR)
    x_test, y_test = fashion_mnist("test", root=FASHION_MNIST_DIR)
    assert y_train.shape == (60000,) and x_test.shape == (10000, 1, 32, 32) and y_test.shape == (10000,)
    assert torch.equal(torch.bincount(y_test), torch.full((10,), 1000))
    assert x_test.min() == -1 and x_test.max() == 1


def test_image_folder_sorted_rgb_and_gray(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {name: rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8) for name in ("b.png", "a.png", "c.jpg")}
    for name, a in arrays.items():
        Image.fromarray(a).save(tmp_path / name, quality=100)
    (tmp_path / "notes.txt").write_text("not an image")
    x, names = load_image_folder(tmp_path)
    assert names == ["a.png", "b.png", "c.jpg"] and x.shape == (3, 3, 6, 8)
    torch.testing.assert_close(x[0].double(), torch.from_numpy(arrays["a.png"]).permute(2, 0, 1).double() / 127.5 - 1, atol=1e-6, rtol=0)
    g, _ = load_image_folder(tmp_path, channels=1, limit=2)
    expected = np.asarray(Image.fromarray(arrays["b.png"]).convert("L"), dtype=np.float64) / 127.5 - 1
    assert g.shape == (2, 1, 6, 8)
    torch.testing.assert_close(g[1, 0].double(), torch.from_numpy(expected), atol=1e-6, rtol=0)


def test_image_folder_crops_and_resizes(tmp_path: Path) -> None:
    # a 6×10 image whose central 6×6 square is white, flanks black: the square crop keeps only white
    a = np.zeros((6, 10), dtype=np.uint8)
    a[:, 2:8] = 255
    Image.fromarray(a).save(tmp_path / "x.png")
    x, _ = load_image_folder(tmp_path, size=4, channels=1)
    assert x.shape == (1, 1, 4, 4) and torch.all(x == 1)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(MissingFileError, match="no PNG"):
        load_image_folder(tmp_path)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(InvalidInputError, match="size"):
        load_image_folder(tmp_path, channels=1)
