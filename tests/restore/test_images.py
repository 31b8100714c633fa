"""Reading a user's images (every PIL mode that occurs in practice) and writing restorations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from invkit.errors import CapabilityError, ConfigError, InvalidDTypeError, InvalidInputError, MissingFileError
from invkit.restoration import match_channels, read_image, resize_alpha, to_uint, write_image


def _u8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_gray_png_is_exact(tmp_path):
    u = _u8((5, 7))
    Image.fromarray(u, "L").save(tmp_path / "g.png")
    pic = read_image(tmp_path / "g.png")
    assert pic.x.shape == (1, 5, 7) and pic.x.dtype == torch.float32
    assert pic.mode == "L" and pic.bit_depth == 8 and pic.alpha is None and not pic.exif_transposed
    assert torch.equal(torch.from_numpy(to_uint(pic.x, 8)[0]), torch.from_numpy(u))
    assert pic.source == str(tmp_path / "g.png") and pic.notes == ()


def test_rgb_png(tmp_path):
    u = _u8((4, 6, 3))
    Image.fromarray(u, "RGB").save(tmp_path / "c.png")
    pic = read_image(str(tmp_path / "c.png"))
    assert pic.x.shape == (3, 4, 6) and pic.mode == "RGB"
    assert np.array_equal(to_uint(pic.x, 8).transpose(1, 2, 0), u)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_aside(tmp_path, mode):
    C = 4 if mode == "RGBA" else 2
    u = _u8((6, 5, C), seed=1)
    Image.fromarray(u, mode).save(tmp_path / "a.png")
    pic = read_image(tmp_path / "a.png")
    assert pic.x.shape == (C - 1, 6, 5)
    assert pic.alpha is not None and pic.alpha.shape == (1, 6, 5)
    assert torch.allclose(pic.alpha[0], torch.from_numpy(u[..., -1] / 255.0).float())
    # the colour is the stored colour, not composited over a background
    assert np.array_equal(to_uint(pic.x, 8).transpose(1, 2, 0), u[..., : C - 1])
    assert any("alpha" in n for n in pic.notes)


def test_palette_colour_and_gray(tmp_path):
    u = _u8((8, 8, 3), seed=2)
    Image.fromarray(u, "RGB").quantize(16).save(tmp_path / "p.png")
    pic = read_image(tmp_path / "p.png")
    assert pic.mode == "P" and pic.x.shape == (3, 8, 8) and any("palette" in n for n in pic.notes)
    g = Image.fromarray(_u8((8, 8), seed=3), "L").convert("P")
    g.save(tmp_path / "pg.png")
    pic = read_image(tmp_path / "pg.png")
    assert pic.x.shape == (1, 8, 8) and "gray" in pic.notes[0]


def test_sixteen_bit_gray_keeps_precision(tmp_path):
    u = np.random.default_rng(4).integers(0, 65536, (5, 6)).astype(np.uint16)
    Image.fromarray(u).save(tmp_path / "s.png")
    pic = read_image(tmp_path / "s.png")
    assert pic.bit_depth == 16 and pic.x.shape == (1, 5, 6)
    assert np.array_equal(to_uint(pic.x, 16)[0], u)
    out = write_image(pic.x, tmp_path / "o.png", bit_depth=16)
    assert np.array_equal(np.asarray(Image.open(out)).astype(np.int64), u.astype(np.int64))


def test_exif_orientation_is_honoured(tmp_path):
    u = _u8((4, 10), seed=5)
    img = Image.fromarray(u, "L")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    pic = read_image(tmp_path / "r.jpg")
    assert pic.exif_transposed and pic.x.shape == (1, 10, 4)
    assert any("EXIF" in n for n in pic.notes)


def test_cmyk_is_converted_with_a_note(tmp_path):
    Image.fromarray(_u8((6, 6, 3)), "RGB").convert("CMYK").save(tmp_path / "k.jpg")
    pic = read_image(tmp_path / "k.jpg")
    assert pic.x.shape == (3, 6, 6) and any("CMYK" in n for n in pic.notes)


def test_unreadable_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(InvalidInputError, match="broken.png"):
        read_image(bad)
    txt = tmp_path / "notes.png"
    txt.write_text("hello")
    with pytest.raises(InvalidInputError, match="notes.png"):
        read_image(txt)
    with pytest.raises(InvalidInputError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(MissingFileError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    good = tmp_path / "trunc.png"
    Image.fromarray(_u8((64, 64, 3)), "RGB").save(good)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match="trunc.png"):
        read_image(good)


def test_arrays_and_tensors():
    u = _u8((3, 4, 3))
    assert torch.equal(read_image(u).x, read_image(u.astype(np.float64) / 255).x)
    assert read_image(np.zeros((3, 4), np.uint16)).bit_depth == 16
    assert read_image(_u8((3, 4, 4))).alpha.shape == (1, 3, 4)
    t = torch.rand(1, 3, 5, 6) * 2 - 1
    assert torch.equal(read_image(t).x, t[0])
    assert read_image(t.double()).x.dtype == torch.float64
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        read_image(np.full((3, 3), 2.0))
    with pytest.raises(InvalidInputError, match=r"\[-1, 1\]"):
        read_image(torch.full((1, 3, 3), 3.0))
    with pytest.raises(InvalidDTypeError):
        read_image(torch.zeros((1, 3, 3), dtype=torch.uint8))
    with pytest.raises(InvalidDTypeError):
        read_image(np.zeros((3, 3), np.int64))
    with pytest.raises(InvalidInputError):
        read_image(torch.zeros(2, 3, 3))
    with pytest.raises(InvalidInputError):
        read_image(42)


def test_write_roundtrip_and_alpha(tmp_path):
    x = torch.from_numpy(_u8((3, 5, 4)).astype(np.float32)) / 127.5 - 1
    p = write_image(x, tmp_path / "rgb.png")
    assert np.array_equal(np.asarray(Image.open(p)).transpose(2, 0, 1), to_uint(x))
    alpha = torch.rand(1, 2, 2)
    p = write_image(x, tmp_path / "rgba.png", alpha=alpha)
    img = Image.open(p)
    assert img.mode == "RGBA" and img.size == (4, 5)
    p = write_image(x[:1], tmp_path / "la.png", alpha=torch.ones(1, 5, 4))
    assert Image.open(p).mode == "LA" and (np.asarray(Image.open(p))[..., 1] == 255).all()
    with pytest.raises(ConfigError):
        write_image(x, tmp_path / "c16.png", bit_depth=16)
    assert not list(tmp_path.glob(".*.tmp"))


def test_resize_alpha():
    a = torch.rand(1, 4, 3)
    r = resize_alpha(a, (16, 12))
    assert r.shape == (1, 16, 12) and float(r.min()) >= 0 and float(r.max()) <= 1
    assert resize_alpha(a, (4, 3)) is a


def test_match_channels():
    rgb = torch.rand(3, 4, 4) * 2 - 1
    g, note = match_channels(rgb, 1)
    assert g.shape == (1, 4, 4) and "luma" in note
    assert torch.allclose(g[0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    r3, note = match_channels(g, 3)
    assert r3.shape == (3, 4, 4) and "replicated" in note
    same, note = match_channels(g, 3, colorization=True)
    assert same is g and note is None
    assert match_channels(rgb, 3) == (rgb, None)
    with pytest.raises(CapabilityError):
        match_channels(torch.zeros(2, 3, 3), 3)
