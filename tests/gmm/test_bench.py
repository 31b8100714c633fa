"""``invkit bench gmm`` on a tiny configuration: tables, JSON, measured NFE, noiseless consistency."""

from __future__ import annotations

import json

import pytest

from invkit import cli
from invkit_gmm.bench import FAMILIES, build_recipe, ssd_split
from invkit.errors import ConfigError


def test_ssd_split_follows_ssd100():
    assert ssd_split(100) == (15, 85)
    assert ssd_split(20) == (3, 17)
    assert ssd_split(5) == (2, 3)
    with pytest.raises(ConfigError, match="at least 3"):
        ssd_split(2)


def test_recipes_are_unclamped_and_take_the_step_budget():
    for fam in FAMILIES:
        r = build_recipe(fam, 20, sigma_y=0.1)
        assert r.clamp is False, fam
        assert getattr(r.inverter, "clamp", False) is False, fam
        F, B = (3, 17) if fam.startswith("ssd") else (2 if fam == "sdedit" else 15, 20)
        assert r.generation_steps == B, fam
        if r.inverter is not None:
            assert r.inversion_steps == F, fam
    assert build_recipe("ddrm", 20, sigma_y=0.3).guidance.sigma_y == 0.3
    with pytest.raises(ConfigError, match="unknown recipe family"):
        build_recipe("mcgdiff", 20, sigma_y=0.1)


def test_tiny_run_writes_tables_and_json(tmp_path, capsys):
    out_json, out_md = tmp_path / "gmm.json", tmp_path / "gmm.md"
    argv = ["bench", "gmm", "--dims", "4", "--dys", "1", "2", "--problems", "2", "--samples", "40", "--steps", "5",
            "--slices", "20", "--sigma-y", "0", "--no-progress", "--json", str(out_json), "--output", str(out_md)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert text.strip() == out_md.read_text().strip()
    assert "### 5 steps" in text and "--sigma-y 0" in text
    for fam in FAMILIES:
        assert f"| {fam} (" in text
    data = json.loads(out_json.read_text())
    recs = data["records"]
    assert len(recs) == 1 * 2 * 2 * 1 * len(FAMILIES)
    assert len(data["floors"]) == 4
    nfe = {r["recipe"]: r["nfe"] for r in recs}
    # SSD: F = 2 timesteps (1 inversion call) + B = 3; SDEdit inverts without calls
    assert nfe == {"ssd": 4, "ssd+": 4, "ddnm": 5, "ddnm+": 5, "ddrm": 5, "dps": 5, "sdedit": 5}
    for r in recs:
        assert r["sw"] >= 0
        if r["recipe"] in ("ssd", "ddnm", "ddnm+", "ddrm"):  # projections end on {A x = y} when σ_y = 0
            assert r["residual"] < 1e-6, r
    assert all(f["residual"] < 1e-9 for f in data["floors"])  # exact noiseless posterior samples
    assert "| d | d_y | floor | prior |" in text
    # with d_y = 1 in d = 4 the posterior differs from the prior: ignoring y costs more than the floor
    assert sum(f["prior"] for f in data["floors"]) > sum(f["floor"] for f in data["floors"])


def test_bad_arguments_exit_2(capsys):
    assert cli.main(["bench", "gmm", "--dims", "5", "--no-progress"]) == 2
    assert "even" in capsys.readouterr().err
    assert cli.main(["bench", "gmm", "--dims", "4", "--dys", "6", "--no-progress"]) == 2
