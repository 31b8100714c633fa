"""``invkit eval`` end to end on a tiny backbone and a folder of images; its one-line errors."""

from __future__ import annotations

import json

import pytest

from invkit import cli

SSD = "ssd:inversion_steps=2,generation_steps=2"


def _eval(tiny, folder, out, *extra):
    return cli.main(
        ["eval", "--backbone", tiny, "--dataset", str(folder), "--task", "sr2", "--n", "3",
         "--batch-size", "2", "--out", str(out), "--quiet", *extra]
    )  # fmt: skip


def test_eval_writes_its_outputs(tiny, folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval(tiny, folder, out, "--recipes", "input", SSD, "--offset", "2", "--seed", "4", "--save-images", "--compare", f"{SSD}:input") == 0
    printed = capsys.readouterr().out
    assert "| method | PSNR↑" in printed and SSD in printed
    assert f"| {SSD} − input | psnr |" in printed and f"| {SSD} − input | ssim |" in printed
    for name in ("results.json", "table.md", "grid.png", "manifest.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["offset"] == 2 and data["config"]["seed"] == 4 and data["config"]["backbone"] == tiny
    assert [r["name"] for r in data["rows"] if r["method"] == "input"] == ["img2.png", "img3.png", "img4.png"]
    assert (out / "images" / "gt" / "img2.png").is_file()
    rows = {(r["method"], r["index"]): r["psnr"] for r in data["rows"]}
    mean = sum(rows[SSD, i] - rows["input", i] for i in (2, 3, 4)) / 3
    assert f"| {SSD} − input | psnr | {mean:+.2f} |" in (out / "table.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"]["invkit eval"]["recipes"] == ["input", SSD]


def _one_line_error(capsys, code, *words):
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("invkit"), err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--task", "sr5"], ["unknown task", "sr4"]),
        (["--recipes", "ssd-31"], ["unknown recipe", "ssd-30"]),
        (["--recipes", "ssd:steps"], ["key=value"]),
        (["--task", "colorization"], ["RGB"]),
        (["--n", "0"], ["--n"]),
        (["--dataset", "/no/such/folder"], ["/no/such/folder"]),
        (["--recipes", "input", "ddnm-30", "--compare", "ssd-30:input"], ["--compare", "ssd-30:input", "ddnm-30"]),
        (["--compare", "input"], ["A:B"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny, folder, tmp_path, capsys, extra, words):
    _one_line_error(capsys, _eval(tiny, folder, tmp_path / "o", *extra), *words)
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_argument_errors_exit_2(tiny, folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _eval(tiny, folder, tmp_path, "--noise-sigma", "0.1", "--noise-jpeg", "50")
    assert exc.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
