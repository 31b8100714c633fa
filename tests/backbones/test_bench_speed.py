"""`invkit bench speed` and the GPU check script, on a tiny CPU config."""

from __future__ import annotations

import pytest

import invkit.bench.gpu_check as gpu_check
from invkit.bench.speed import measure, parse_sets
from invkit.cli import main
from invkit.errors import InvalidInputError

TINY = ["--set", "ch=32", "--set", "ch_mult=1,2", "--set", "attn_resolutions=8,", "--set", "resolution=16"]


def test_parse_sets():
    got = parse_sets(["ch=32", "ch_mult=1,2,2", "attention_resolutions=16,8", "class_cond=True", "schedule=cosine",
                      "attn_resolutions=16"])
    assert got == {"ch": 32, "ch_mult": (1, 2, 2), "attention_resolutions": "16,8", "class_cond": True,
                   "schedule": "cosine", "attn_resolutions": (16,)}
    with pytest.raises(InvalidInputError):
        parse_sets(["ch"])


def test_speed_command_prints_a_row(capsys, tmp_path):
    out = tmp_path / "speed.md"
    assert main(["bench", "speed", "--backbone", "ddpm", *TINY, "--recipe", "ddnm-30", "--repeats", "2",
                 "--warmup", "1", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    row = [line for line in text.splitlines() if line.startswith("| ddpm")]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[7] == "ddnm-30 (sr)" and cells[8] == "30"  # NFE counted by the recipe
    assert float(cells[10]) > 0.5 and float(cells[11]) >= 1.0  # overhead ratios are real numbers
    assert "GiB" in cells[12]
    assert out.read_text().count("| ddpm") == 1


def test_measure_without_recipe_and_bad_input():
    row = measure(backbone="ddpm", params=parse_sets(TINY[1::2]), checkpoint=None, seed=0, recipe=None, task="sr",
                  batch=2, dtype="bf16", device="cpu", repeats=1, warmup=0)
    assert row["nfe"] is None and row["forward_ms"] > 0 and row["batch"] == 2
    with pytest.raises(InvalidInputError):
        measure(backbone="ddpm", params={}, checkpoint=None, seed=0, recipe=None, task="sr", batch=0,
                dtype="fp32", device="cpu", repeats=1, warmup=0)


@pytest.mark.slow  # bf16 autocast on a CPU is slow
def test_gpu_check_script_runs_on_a_tiny_cpu_config(monkeypatch, tmp_path, capsys):
    tiny8 = dict(parse_sets(TINY[1::2]), resolution=8, attn_resolutions=(4,))
    monkeypatch.setattr(gpu_check, "BACKBONES", {"ddpm": ("none.ckpt", tiny8)})
    out = tmp_path / "gpu.md"
    assert gpu_check.main(["--device", "cpu", "--quick", "--repeats", "1", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.count("| ddpm") == 2  # fp32 and bf16
    assert "relative L2 difference bf16 vs fp32" in text


def test_backbone_opt_is_the_spelling_and_set_an_alias():
    from invkit.bench.speed import add_arguments
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    new = p.parse_args(["--backbone-opt", "ch=32", "--backbone-opt", "resolution=16"])
    old = p.parse_args(["--set", "ch=32", "--set", "resolution=16"])
    assert new.set == old.set == ["ch=32", "resolution=16"]
