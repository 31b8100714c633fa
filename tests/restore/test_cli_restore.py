"""``invkit restore`` on the command line: exit statuses, one-line errors with nothing written,
``--config`` (the command line wins), ``--overwrite`` refusal, the help."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invkit import cli

TINY = [a for kv in ("ch=32", "ch_mult=(1,)", "num_res_blocks=1", "attn_resolutions=()", "resolution=16",
                     "in_channels=1", "out_ch=1", "seed=0") for a in ("--backbone-opt", kv)]  # fmt: skip
FAST = ["--backbone", "ddpm", *TINY, "--recipe", "ssd:inversion_steps=2,generation_steps=2", "--tile", "off", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the command sets --threads (default 1)


@pytest.fixture
def images(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(root / name)
    return root


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_restores_a_folder_and_mirrors_it(images, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["restore", str(images), "--task", "sr2", "--out", str(out), *FAST]) == 0
    assert {"a.png", "b.png", "sub/c.png", "manifest.json"} <= set(tree(out))
    assert Image.open(out / "sub" / "c.png").size == (16, 16)
    m = json.loads((out / "manifest.json").read_text())
    assert m["command"]["invkit restore"]["task"] == "sr2" and m["summary"]["ok"] == 3
    assert torch.get_num_threads() == 1  # --threads defaults to 1
    # again: everything skipped, status 0
    assert cli.main(["restore", str(images), "--task", "sr2", "--out", str(out), *FAST]) == 0


@pytest.mark.parametrize(
    "args, match",
    [
        (["--task", "sr5"], "unknown task 'sr5'"),
        (["--task", "sr2", "--recipe", "nope"], "unknown recipe 'nope'"),
        (["--task", "sr2", "--checkpoint", "missing.safetensors"], "checkpoint 'missing.safetensors' not found"),
        (["--task", "inpainting", "--mask", "missing.png"], "mask 'missing.png' not found"),
        (["--task", "inpainting"], "needs its mask"),
        (["--task", "sr2", "--kernel", "missing.npy"], "no such kernel"),
        (["--task", "sr2", "--samples", "0"], "--samples"),
        (["--task", "sr2", "--batch-size", "0"], "--batch-size"),
        (["--task", "sr2", "--tile", "big"], "--tile"),
        (["--operator", "sr_bicubic", "--set", "scale=3", "--task", "sr2"], "exactly one"),
        (["--operator", "sr_bicubic", "--set", "scael=3"], "scael"),
        (["--task", "sr2", "--config", "missing.toml"], "config file"),
        (["--task", "sr2", "--device", "cuda:99" if torch.cuda.is_available() else "cuda"], "CUDA"),
        (["--task", "sr2", "--device", "gpu"], "unknown device"),
        ([], "give exactly one of a task"),
    ],
)
def test_errors_are_one_line_exit_2_and_write_nothing(images, tmp_path, capsys, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    status = cli.main(["restore", str(images), "--out", str(out), *FAST, *args])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("invkit: error:") and match in err, err
    assert not out.exists()


def test_unwritable_out_and_missing_input(images, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["restore", str(images), "--task", "sr2", "--out", str(blocker / "sub"), *FAST]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert cli.main(["restore", str(tmp_path / "nope"), "--task", "sr2", "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["restore", "--task", "sr2", "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "at least one INPUT" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_corrupt_file_exit_1_others_done(images, tmp_path, capsys):
    (images / "sub" / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    assert cli.main(["restore", str(images), "--task", "sr2", "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "failed 1" in err and "bad.jpg" in err
    assert (out / "a.png").is_file() and (out / "sub" / "c.png").is_file() and not (out / "sub" / "bad.png").exists()
    bad = [f for f in json.loads((out / "manifest.json").read_text())["files"] if f["key"] == "sub/bad"][0]
    assert bad["status"] == "error" and "bad.jpg" in bad["error"]


def test_overwrite_refusal_and_replacement(images, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["restore", str(images), "--task", "sr2", "--out", str(out), *FAST]) == 0
    before = {p: (out / p).read_bytes() for p in tree(out) if p.endswith(".png")}
    assert cli.main(["restore", str(images), "--task", "sr2", "--seed", "7", "--out", str(out), *FAST]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p: (out / p).read_bytes() for p in before} == before
    assert cli.main(["restore", str(images), "--task", "sr2", "--seed", "7", "--overwrite", "--out", str(out), *FAST]) == 0
    assert {p: (out / p).read_bytes() for p in before} != before
    assert json.loads((out / "manifest.json").read_text())["settings"]["seed"] == 7


def test_config_file_and_command_line_wins(images, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'inputs = ["in"]\nout = "cfg-out"\ntask = "sr2"\nseed = 3\nrecipe = "ssd:inversion_steps=2,generation_steps=2"\n'
        'backbone = "ddpm"\ntile = "off"\nquiet = true\n'
        '[backbone-opt]\nch = 32\nch_mult = [1]\nnum_res_blocks = 1\nattn_resolutions = []\nresolution = 16\n'
        "in_channels = 1\nout_ch = 1\nseed = 0\n"
    )
    assert cli.main(["restore", "--config", str(cfg)]) == 0
    m = json.loads((tmp_path / "cfg-out" / "manifest.json").read_text())
    assert m["settings"]["seed"] == 3 and m["summary"]["ok"] == 3
    # the command line wins over the file
    assert cli.main(["restore", "--config", str(cfg), "--seed", "4", "--out", str(tmp_path / "o2")]) == 0
    m2 = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert m2["settings"]["seed"] == 4 and m2["settings"]["task"] == "sr2"
    # the manifest's resolved settings reproduce the outputs bit for bit
    s = m["settings"]
    args = ["restore", str(images), "--out", str(tmp_path / "again"), "--task", s["task"], "--seed", str(s["seed"]),
            "--recipe", s["recipe"], "--tile", str(s["tile"]), "--backbone", s["backbone"], "--quiet",
            *[a for k, v in s["backbone_options"].items() for a in ("--backbone-opt", f"{k}={tuple(v) if isinstance(v, list) else v}")]]  # fmt: skip
    assert cli.main(args) == 0
    for name in ("a.png", "sub/c.png"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "cfg-out" / name).read_bytes()


def test_help_documents_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        cli.main(["restore", "--help"])
    text = capsys.readouterr().out
    for word in ("exit status", "130", "--degrade", "--samples", "--tile", "--config", "--operator", "torchrun"):
        assert word in text


def test_the_readme_command_runs_offline_on_the_shipped_inputs(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    out = tmp_path / "out"
    assert cli.main(["restore", "examples/data/lowres", "--task", "sr4", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    s = m["settings"]
    assert (s["backbone"], s["recipe"], s["seed"]) == ("fashion32", "ssd-30", 0)
    assert "t0=550" in s["recipe_resolved"] and m["summary"]["ok"] == len(list((root / "examples/data/lowres").glob("*.png")))
    sizes = {f["key"]: f["shape"] for f in m["files"]}
    assert all(shape[0] == 1 and shape[1] == 32 for shape in sizes.values())
    assert max(f["consistency"] for f in m["files"]) < 1e-3 and all(f["nfe"] == 29 for f in m["files"])


def test_bench_restore_runs_and_reports_files_per_second_and_seams(tmp_path, capsys):
    js = tmp_path / "bench.json"
    args = ["bench", "restore", "--backbone", "fashion32", "--n", "3", "--batch-sizes", "1", "3", "--mosaic", "2", "--tiles", "32", "off",
            "--recipe", "ssd:inversion_steps=2,generation_steps=2", "--json", str(js), "--output", str(tmp_path / "b.md")]  # fmt: skip
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "files/s" in text and "seam ratio" in text and (tmp_path / "b.md").read_text() == text
    d = json.loads(js.read_text())
    assert [r["batch_size"] for r in d["files_per_second"]] == [1, 3] and all(r["ok"] == 3 for r in d["files_per_second"])
    tiled, whole = d["tiled"]
    assert tiled["tiles"] == 9 and tiled["tile_px"] == 32 and whole["tiles"] == 1  # 64 px in 32-px tiles, overlap 8
    assert tiled["nfe"] == 9 * whole["nfe"] and tiled["seam_ratio"] > 0 and tiled["consistency"] < 1e-3


def test_the_same_run_from_another_folder_resumes(images, tmp_path, monkeypatch, capsys):
    m = np.full((8, 8), 255, np.uint8)
    m[2:5, 2:5] = 0
    Image.fromarray(m).save(tmp_path / "mask.png")
    monkeypatch.chdir(tmp_path)
    rel = ["restore", "in", "--task", "inpainting", "--mask", "mask.png", "--out", "out", *FAST]
    assert cli.main(rel) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    absolute = ["restore", str(images), "--task", "inpainting", "--mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "out"), *FAST[:-1]]
    assert cli.main(absolute) == 0
    assert "restored 0, skipped 3" in capsys.readouterr().out
