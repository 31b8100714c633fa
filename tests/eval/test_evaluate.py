"""``evaluate``: per-image reproducibility, the A⁺y baseline, real NFE counts, metric rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invkit import evaluation as ev
from invkit.errors import ConfigError, InvalidInputError, UnknownNameError

from .conftest import tiny_backbone

SSD = "ssd:inversion_steps=3,generation_steps=4"  # 2 + 4 network calls
DDNM = "ddnm:generation_steps=4"


def _images(n: int = 5, hw: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    coarse = torch.rand(n, 1, hw // 4, hw // 4, generator=g)
    x = coarse.repeat_interleave(4, -1).repeat_interleave(4, -2) + 0.2 * torch.rand(n, 1, hw, hw, generator=g)
    return (x / 1.2 * 2 - 1).to(torch.float64)


def _rows(result, method):
    return {r["index"]: r for r in result.rows if r["method"] == method}


def _cfg(**kw):
    base = dict(task="inpaint-random", methods=("input", SSD, DDNM), n=5, batch_size=5, noise_sigma=0.05, dtype="float64", grid=2)
    return ev.EvalConfig(**{**base, **kw})


def test_any_subset_reproduces_the_per_image_numbers():
    model, x = tiny_backbone(dtype=torch.float64), _images()
    full = ev.evaluate(_cfg(), model=model, images=x)
    part = ev.evaluate(_cfg(n=2, offset=3, batch_size=1), model=model, images=x[3:])
    for method in ("input", SSD, DDNM):
        a, b = _rows(full, method), _rows(part, method)
        assert sorted(b) == [3, 4]
        for i in (3, 4):
            for key in ("psnr", "ssim", "consistency", "nfe"):
                assert b[i][key] == pytest.approx(a[i][key], rel=1e-9, abs=1e-12), (method, i, key)
        assert np.array_equal(part.outputs_u8[method], full.outputs_u8[method][3:])


def test_the_seed_changes_the_numbers():
    model, x = tiny_backbone(dtype=torch.float64), _images()
    a = ev.evaluate(_cfg(n=2), model=model, images=x)
    b = ev.evaluate(_cfg(n=2, seed=1), model=model, images=x)
    assert [r["psnr"] for r in a.rows] != [r["psnr"] for r in b.rows]


def test_input_baseline_is_pinv_y_with_no_network_call():
    from invkit.metrics import to_uint8

    model, x = tiny_backbone(dtype=torch.float64), _images(4)
    cfg = ev.EvalConfig(task="sr2", methods=("input",), n=4, batch_size=3, dtype="float64")
    res = ev.evaluate(cfg, model=model, images=x)
    op = ev.get_task("sr2").build((1, 16, 16)).double()
    ref = to_uint8(op.pinv(op.A(x))).double().numpy()  # restorations are truncated, as SSD saved them
    gt = ((x + 1) * 127.5).round().numpy()  # the ground truth keeps its own pixel values
    for r in res.rows:
        i = r["index"]
        mse = ((ref[i] - gt[i]) ** 2).mean()
        assert r["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-12)
        assert r["nfe"] == 0
        assert r["consistency"] < 1e-10  # noiseless: A A⁺ y = y
    assert res.aggregates["input"]["nfe"] == 0


def test_nfe_is_the_number_of_network_calls():
    calls = []
    model = tiny_backbone(dtype=torch.float64)
    model.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    cfg = ev.EvalConfig(task="sr2", methods=(SSD,), n=4, batch_size=2, dtype="float64")
    res = ev.evaluate(cfg, model=model, images=_images(4))
    assert calls == [2] * 12  # two batches of 2 images, 6 calls each
    assert {r["nfe"] for r in res.rows} == {6}
    assert all(r["consistency"] < 1e-6 for r in res.rows)  # noiseless back projection


def test_aggregates_are_the_means_of_the_rows():
    res = ev.evaluate(_cfg(n=3), model=tiny_backbone(dtype=torch.float64), images=_images())
    for method, agg in res.aggregates.items():
        rows = list(_rows(res, method).values())
        assert agg["n"] == 3
        for key in ("psnr", "ssim", "consistency"):
            assert agg[key] == pytest.approx(np.mean([r[key] for r in rows]))
    assert res.examples["x"].shape == (2, 1, 16, 16) and res.examples["pinv"].shape == (2, 1, 16, 16)
    assert any("fid_fashion skipped" in note for note in res.notes)  # 16×16 images are not Fashion-MNIST


@pytest.mark.parametrize(
    "kw, error",
    [
        (dict(n=0), ConfigError),
        (dict(methods=()), ConfigError),
        (dict(methods=("input", "input")), ConfigError),
        (dict(noise_sigma=0.1, noise_jpeg=50), ConfigError),
        (dict(noise_sigma=-1.0), ConfigError),
        (dict(dtype="int8"), ConfigError),
        (dict(task="colorization"), ConfigError),
        (dict(task="nope"), UnknownNameError),
        (dict(methods=("ssd-31",)), UnknownNameError),
        (dict(n=9), InvalidInputError),
    ],
)
def test_bad_configurations_are_typed_errors(kw, error):
    with pytest.raises(error):
        ev.evaluate(_cfg(**kw), model=tiny_backbone(dtype=torch.float64), images=_images())


def test_backbone_and_data_must_agree():
    with pytest.raises(ConfigError, match="channel"):
        ev.evaluate(_cfg(n=2), model=tiny_backbone(channels=3, dtype=torch.float64), images=_images())


def test_merged_shards_equal_a_single_process_run():
    model, x = tiny_backbone(dtype=torch.float64), _images()
    full = ev.evaluate(_cfg(grid=3), model=model, images=x)
    parts = [ev.evaluate(_cfg(grid=3, batch_size=2), model=model, images=x, shard=(r, 3)) for r in (2, 0, 1)]
    assert sorted(i for p in parts for i in p.indices) == list(range(5))
    merged = ev.merge_results(parts)
    assert merged.indices == full.indices and merged.names == full.names
    assert [(r["method"], r["index"]) for r in merged.rows] == [(r["method"], r["index"]) for r in full.rows]
    for a, b in zip(merged.rows, full.rows):
        for key in ("psnr", "ssim", "consistency", "nfe"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12)
    assert np.array_equal(merged.gt_u8, full.gt_u8)
    for label in full.outputs_u8:
        assert np.array_equal(merged.outputs_u8[label], full.outputs_u8[label])
        assert merged.aggregates[label]["psnr"] == pytest.approx(full.aggregates[label]["psnr"])
    for key in ("x", "y", "pinv", "index"):
        assert torch.allclose(merged.examples[key].double(), full.examples[key].double())
    with pytest.raises(InvalidInputError):
        ev.merge_results(parts[:2])  # an image is missing
    with pytest.raises(ConfigError):
        ev.evaluate(_cfg(), model=model, images=x, shard=(3, 3))


def test_ground_truth_keeps_its_file_pixels():
    from invkit.data import to_unit_range
    from invkit.metrics import to_uint8

    u = torch.arange(256, dtype=torch.uint8)
    for dtype in (torch.float32, torch.float64):
        x = to_unit_range(u, dtype)
        assert torch.equal(ev.ground_truth_uint8(x), u)
    # truncation, right for restorations as SSD saved them, would shift some of them
    assert not torch.equal(to_uint8(to_unit_range(u, torch.float32)), u)


def test_y_baseline_is_the_measurement_itself():
    from invkit.metrics import to_uint8

    model, x = tiny_backbone(dtype=torch.float64), _images(3)
    res = ev.evaluate(ev.EvalConfig(task="deblur", methods=("y",), n=3, dtype="float64"), model=model, images=x)
    y = ev.get_task("deblur").build((1, 16, 16)).double().A(x)
    out, gt = to_uint8(y).double().numpy(), ((x + 1) * 127.5).round().numpy()
    for r in res.rows:
        mse = ((out[r["index"]] - gt[r["index"]]) ** 2).mean()
        assert r["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-12) and r["nfe"] == 0
    with pytest.raises(ConfigError, match="'y' baseline"):
        ev.evaluate(ev.EvalConfig(task="sr4", methods=("y",), n=3, dtype="float64"), model=model, images=x)


def test_colorization_and_jpeg_on_rgb_images():
    x = _images(2).repeat(1, 3, 1, 1) * torch.tensor([1.0, 0.5, -0.5], dtype=torch.float64).reshape(1, 3, 1, 1)
    cfg = ev.EvalConfig(task="colorization", methods=("input", SSD), n=2, dtype="float64", noise_jpeg=90)
    res = ev.evaluate(cfg, model=tiny_backbone(channels=3, dtype=torch.float64), images=x)
    assert res.examples["y"].shape == (2, 1, 16, 16) and res.outputs_u8[SSD].shape == (2, 3, 16, 16)
    shown = ev.display_measurement(res.examples["y"], (3, 16, 16))
    assert torch.equal(shown[:, 0], shown[:, 2])  # the grey measurement repeated over RGB
    clean = ev.get_task("colorization").build((3, 16, 16)).double().A(x)
    jpeg_error = (res.examples["y"] - clean).abs().max()
    assert 0 < jpeg_error < 0.2  # JPEG at quality 90 changed y, a little
