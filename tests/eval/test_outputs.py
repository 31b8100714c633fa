"""Files written by an evaluation: results.json, table.md, grid.png, manifest.json, images, plots."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from invkit import evaluation as ev

from .conftest import tiny_backbone
from .test_evaluate import DDNM, SSD, _images


@pytest.fixture(scope="module")
def result():
    cfg = ev.EvalConfig(task="sr2", methods=("input", SSD, DDNM), n=3, batch_size=2, dtype="float64", grid=2, noise_sigma=0.02)
    return ev.evaluate(cfg, model=tiny_backbone(dtype=torch.float64), images=_images(3))


def test_results_json_has_every_knob_and_row(result, tmp_path):
    ev.write_outputs(result, tmp_path, command={"test": True})
    data = json.loads((tmp_path / "results.json").read_text())
    cfg = data["config"]
    assert cfg["task"] == "sr2" and cfg["n"] == 3 and cfg["methods"] == ["input", SSD, DDNM] and cfg["noise_sigma"] == 0.02
    assert data["task"]["operator"] == "sr_bicubic" and data["task"]["params"] == {"scale": 2}
    assert {"invkit", "torch", "numpy", "python", "platform"} <= set(data["environment"])
    assert len(data["rows"]) == 3 * 3
    assert {(r["method"], r["index"]) for r in data["rows"]} == {(m, i) for m in ("input", SSD, DDNM) for i in range(3)}
    assert "inversion_steps=3" in data["methods"][1]["recipe"]  # the recipe's every number is recorded
    assert data["aggregates"][SSD]["nfe"] == 6


def test_table_is_laid_out_like_table_1(result, tmp_path):
    ev.write_outputs(result, tmp_path)
    lines = (tmp_path / "table.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| method"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[:4] == ["method", "PSNR↑", "SSIM↑", "FID↓"] and cells[-3:] == ["consistency ‖Ax̂−y‖", "NFE", "s/img"]
    body = [line for line in lines if line.startswith("| ") and line is not header]
    rows = {line.split("|")[1].strip(): line for line in body if not line.startswith("| method")}
    assert set(rows) == {"input", SSD, DDNM}
    assert f"{result.aggregates['input']['psnr']:.2f}" in rows["input"]
    assert "| 6 |" in rows[SSD] and "| 0 |" in rows["input"]


def test_grid_shows_the_quantised_images(result, tmp_path):
    ev.write_outputs(result, tmp_path)
    grid = np.asarray(Image.open(tmp_path / "grid.png").convert("L"))
    cols, _ = ev.grid_columns(result)
    assert [c for c, _ in cols] == ["ground truth", "y", "A+y", SSD, DDNM]
    scale = 96 // 16
    tile = 16 * scale
    assert grid.shape[1] == len(cols) * (tile + 4) + 4
    # the ground-truth tile of the first image is its uint8 image, magnified
    gt = result.gt_u8[0, 0]
    expected = np.kron(gt, np.ones((scale, scale), dtype=np.uint8))
    rows = np.nonzero((grid[:, 4 : 4 + tile] != 255).any(1))[0]
    top = next(r for r in rows if np.array_equal(grid[r, 4 : 4 + tile], expected[0]))
    assert np.array_equal(grid[top : top + tile, 4 : 4 + tile], expected)


def test_measurement_is_shown_at_its_own_resolution():
    y = torch.arange(4.0).reshape(1, 1, 2, 2)
    shown = ev.display_measurement(y, (1, 8, 8))
    assert shown.shape == (1, 1, 8, 8)
    assert torch.equal(shown[0, 0, :4, :4], torch.zeros(4, 4)) and torch.equal(shown[0, 0, 4:, 4:], torch.full((4, 4), 3.0))
    assert ev.display_measurement(torch.zeros(1, 1, 3, 3), (1, 8, 8)) is None
    assert ev.display_measurement(torch.zeros(1, 1, 4, 4), (3, 8, 8)).shape == (1, 3, 8, 8)


def test_saved_images_reproduce_the_psnr(result, tmp_path):
    files = ev.write_outputs(result, tmp_path, save_images=True)
    for r in result.rows:
        folder = r["method"].replace(":", "_")
        out = np.asarray(Image.open(tmp_path / "images" / folder / f"{r['name']}.png"), dtype=np.float64)
        gt = np.asarray(Image.open(tmp_path / "images" / "gt" / f"{r['name']}.png"), dtype=np.float64)
        assert r["psnr"] == pytest.approx(10 * np.log10(255**2 / ((out - gt) ** 2).mean()), rel=1e-12)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    assert len(listed) == len(files) - 1  # every file but the manifest itself
    for path, entry in listed.items():
        assert hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() == entry["sha256"]


def test_plot_draws_every_series(tmp_path):
    pytest.importorskip("matplotlib")  # the [plot] extra
    series = {"a": [(10, 5.0), (20, 4.0), (50, 3.5)], "b": [(10, 6.0), (20, 5.5), (50, 5.0)]}
    path = ev.plot_lines(tmp_path / "p.png", series, title="t", xlabel="x", ylabel="y", hline=(3.0, "floor"), logx=True, size=(400, 300))
    img = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    assert Image.open(path).size == (400, 300)
    colours = {tuple(c) for c in img}
    for colour in ev.SERIES_COLOURS[:2]:
        assert colour in colours


def test_sweep_writes_the_fid_vs_nfe_plot(tmp_path):
    pytest.importorskip("invkit_fashion32")
    from invkit.data import fashion_mnist
    from invkit.errors import MissingFileError
    from invkit.metrics import load_fashion_classifier

    try:
        load_fashion_classifier()
    except MissingFileError:
        pytest.skip("the fid_fashion classifier weights are not shipped yet")
    families, nfes = ["ssd", "ddnm"], [3, 5]
    methods = ("input", *ev.sweep_methods(families, nfes))
    x, _ = fashion_mnist("test", limit=4)
    cfg = ev.EvalConfig(task="sr4", methods=methods, n=4, batch_size=4, grid=2, sweep=ev.NFESweep(families, nfes))
    res = ev.evaluate(cfg, model=tiny_backbone(), images=x)
    assert res.fid_floor is not None and all("fid_fashion" in a for a in res.aggregates.values())
    from invkit.data import to_unit_range
    from invkit.metrics import fid_fashion

    train, _ = fashion_mnist("train", limit=4)
    assert res.fid_floor == pytest.approx(fid_fashion(train, x), rel=1e-6)
    fid_input = fid_fashion(to_unit_range(res.outputs_u8["input"]), to_unit_range(res.gt_u8))
    assert res.aggregates["input"]["fid_fashion"] == pytest.approx(fid_input, rel=1e-6)
    files = {p.name for p in ev.write_outputs(res, tmp_path)}
    assert {"nfe_sweep.json", "nfe_sweep.md", "manifest.json"} <= files
    assert ("fid_vs_nfe.png" in files) == ev.extras.available("matplotlib")
    rows = json.loads((tmp_path / "nfe_sweep.json").read_text())["rows"]
    assert [(r["family"], r["nominal_nfe"], r["nfe"]) for r in rows] == [("ssd", 3, 2), ("ssd", 5, 4), ("ddnm", 3, 3), ("ddnm", 5, 5)]


def test_lpips_and_inception_fid_are_skipped_with_a_note(monkeypatch, tmp_path):
    import importlib.util

    gt = np.zeros((2, 1, 16, 16), dtype=np.uint8)
    outputs = {"m": gt.copy()}
    missing = {"lpips", "pytorch_fid"}
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    notes: list[str] = []
    ev.optional_metrics(gt, outputs, {"m": {}}, notes)
    assert any("LPIPS skipped: install" in n for n in notes) and any("Inception FID skipped: install" in n for n in notes)
    # packages present but no weights in the hub cache: still skipped, and the note says where to put them
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in missing else real(name, *a))
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        notes = []
        aggregates = {"m": {}}
        ev.optional_metrics(gt, outputs, aggregates, notes)
    finally:
        torch.hub.set_dir(before)
    where = str(tmp_path / "checkpoints")
    assert any(ev.LPIPS_VGG_WEIGHTS in n and where in n for n in notes)
    assert any(ev.INCEPTION_FID_WEIGHTS in n and where in n for n in notes)
    assert aggregates == {"m": {}}


def test_paired_difference_is_exact_and_checks_its_input() -> None:
    import numpy as np

    from invkit.errors import ConfigError
    from invkit.evaluation import paired_difference, paired_table

    a = [20.0, 21.5, 19.0, 23.0]
    b = [19.0, 22.0, 18.0, 21.0]
    rows = [{"index": i, "method": "a", "psnr": v} for i, v in enumerate(a)]
    rows += [{"index": i, "method": "b", "psnr": v} for i, v in enumerate(b)]
    rows += [{"index": 9, "method": "b", "psnr": 0.0}]  # unpaired: ignored
    d = np.subtract(a, b)
    r = paired_difference(rows, "a", "b")
    assert r["n"] == 4 and r["mean"] == pytest.approx(d.mean(), abs=1e-12)
    assert r["ci95"] == pytest.approx(1.96 * d.std(ddof=1) / 2, abs=1e-12) and r["a_better"] == 0.75
    flipped = paired_difference(rows, "b", "a")
    assert flipped["mean"] == pytest.approx(-r["mean"]) and flipped["a_better"] == 0.25
    assert "| a − b | psnr | +0.88 | ±" in paired_table(rows, [("a", "b")], metrics=("psnr",))
    with pytest.raises(ConfigError, match="'c'.*methods in these rows: a, b"):
        paired_difference(rows, "a", "c")
    with pytest.raises(ConfigError, match="ssim"):
        paired_difference(rows, "a", "b", "ssim")
    with pytest.raises(ConfigError, match="at least 2"):
        paired_difference(rows[:1] + rows[4:5], "a", "b")


def test_the_sweep_argument_of_write_outputs_is_deprecated(result, tmp_path):
    from invkit.errors import ConfigError

    with pytest.warns(DeprecationWarning, match="EvalConfig"), pytest.raises(ConfigError, match="not all evaluated"):
        ev.write_outputs(result, tmp_path, sweep=(["ssd"], [3]))


def test_without_matplotlib_the_sweep_writes_its_tables_and_says_how_to_get_the_plot(tmp_path, monkeypatch):
    from invkit.evaluation import extras

    rows = [{"family": "ssd", "nominal_nfe": n, "steps": ev.sweep_steps("ssd", n), "nfe": n - 1, "fid_fashion": 50.0 / n,
             "psnr": 20.0, "ssim": 0.5, "seconds_per_image": 0.1} for n in (3, 5)]  # fmt: skip
    real = extras.available
    monkeypatch.setattr(extras, "available", lambda name: False if name.startswith("matplotlib") else real(name))
    files = {p.name for p in ev.write_sweep(tmp_path, rows, nfes=(3, 5), fid_floor=1.0, n=4)}
    assert files == {"nfe_sweep.json", "nfe_sweep.md"}
    assert "pip install 'invkit[plot]'" in (tmp_path / "nfe_sweep.md").read_text()
    assert any("invkit[plot]" in note for note in json.loads((tmp_path / "nfe_sweep.json").read_text())["notes"])
    with pytest.raises(ev.MissingExtraError, match=r"invkit\[plot\]"):
        monkeypatch.setattr(extras.importlib.util, "find_spec", lambda name, *a: None)
        ev.plot_lines(tmp_path / "p.png", {"a": [(1, 2.0)]}, title="t", xlabel="x", ylabel="y")


def test_the_sweep_command_without_matplotlib_says_so_in_one_line(tiny, tmp_path, monkeypatch, capsys):
    from invkit import cli
    from invkit.data import fashion_mnist_dir
    from invkit.evaluation import extras

    if not any((fashion_mnist_dir() / f"t10k-images-idx3-ubyte{ext}").is_file() for ext in ("", ".gz")):
        pytest.skip("Fashion-MNIST is not installed")
    real = extras.available
    monkeypatch.setattr(extras, "available", lambda name: False if name.startswith("matplotlib") else real(name))
    out = tmp_path / "sweep"
    code = cli.main(["eval", "--backbone", tiny, "--task", "sr4", "--n", "2", "--nfe-sweep", "--families", "ssd",
                     "--nfe", "3", "--out", str(out), "--quiet", "--grid", "0"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    if "fid_fashion" not in json.loads((out / "results.json").read_text())["aggregates"]["input"]:
        pytest.skip("the fid_fashion classifier is not installed: nothing to plot")
    assert [line for line in err.splitlines() if "invkit[plot]" in line] == [
        "note: fid_vs_nfe.png not drawn: matplotlib is not installed; pip install 'invkit[plot]'"
    ]
    assert (out / "nfe_sweep.md").is_file() and not (out / "fid_vs_nfe.png").exists()
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["sweep"] == {"families": ["ssd"], "nfes": [3]}
