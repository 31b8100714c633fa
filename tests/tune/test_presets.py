"""Tuned presets: written by tune, loaded from $INVKIT_PRESETS and the shipped file, run by eval."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import invkit
from invkit import cli
from invkit.errors import ConfigError, PluginWarning
from invkit.evaluation import get_task, image_generators
from invkit.tuning import TuneConfig, preset_entry, write_presets
from invkit_recipes import tuned

from .conftest import tiny_backbone

CONFIG = {"inversion_steps": 3, "generation_steps": 5, "t0": 450, "inversion_eta": 0.2, "eta": 0.6, "spacing": "quadratic"}
RUNGS = [{"images": 4, "scores": {"0": 20.0}, "kept": [0]}]


def _write(path, name="ssd-7-tuned", task="sr2", config=CONFIG):
    cfg = TuneConfig(nfe=7, task=task, configs=1, rungs=(4,))
    return write_presets(path, {name: preset_entry(cfg, config, RUNGS, 1.0, {"invkit tune": {}})})


def test_a_written_preset_builds_its_recipe(tmp_path, use_presets):
    use_presets(_write(tmp_path / "p.json"))
    r = invkit.recipe("ssd-7-tuned")
    assert (r.inversion_steps, r.generation_steps, r.t0, r.eta, r.spacing) == (3, 5, 450, 0.6, "quadratic")
    assert r.inverter.eta == 0.2 and r.name == "ssd"
    assert invkit.recipe("ssd-7-tuned", task="sr", eta=0.1).eta == 0.1  # call overrides win
    spec = invkit.plugins.recipes_registry.get("ssd-7-tuned")
    assert spec.meta["nfe"] == 7 and spec.meta["tasks"] == ("sr",) and "invkit tune" in spec.description
    with pytest.raises(ConfigError, match="tuned for task 'sr2'"):
        invkit.recipe("ssd-7-tuned", task="deblur")
    model = tiny_backbone()
    op = get_task("sr2").build((1, 16, 16), image_generators(0, [0], "operator"))
    res = r.run(model, op.A(torch.zeros(1, 1, 16, 16)), op, generator=torch.Generator().manual_seed(0), return_info=True)
    assert int(res.nfe) == 7


def test_write_presets_merges_and_refuses_other_files(tmp_path):
    path = _write(tmp_path / "p.json")
    _write(path, name="ssd-7-other")
    assert sorted(json.loads(path.read_text())["presets"]) == ["ssd-7-other", "ssd-7-tuned"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    with pytest.raises(invkit.InvkitError, match="not an 'invkit-presets/1'"):
        _write(bad)


@pytest.mark.parametrize("content, words", [("{", "not readable JSON"), ('{"format": "x"}', "invkit-presets/1"),
                                            ('{"format": "invkit-presets/1", "presets": {"a": {"base": "ssd"}}}', "lacks")])  # fmt: skip
def test_a_broken_presets_file_warns_and_keeps_the_built_ins(tmp_path, use_presets, content, words):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    use_presets(bad, _write(tmp_path / "good.json"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = invkit.plugins.recipes_registry.names()
    assert "ssd-30" in names and "ssd-7-tuned" in names
    assert any(words in str(w.message) and isinstance(w.message, PluginWarning) for w in caught)


def test_a_clashing_name_is_skipped(tmp_path, use_presets):
    use_presets(_write(tmp_path / "p.json", name="ssd-30"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert invkit.recipe("ssd-30").inversion_steps == 5
    assert any("redefines ssd-30" in str(w.message) for w in caught)


def test_invkit_eval_runs_a_tuned_preset(tiny, train_folder, tmp_path, use_presets, capsys):
    use_presets(_write(tmp_path / "p.json"))
    out = tmp_path / "eval"
    args = ["eval", "--backbone", tiny, "--dataset", str(train_folder), "--task", "sr2", "--n", "2", "--recipes", "input",
            "ssd-7-tuned", "--compare", "ssd-7-tuned:input", "--out", str(out), "--quiet"]  # fmt: skip
    assert cli.main(args) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["nfe"] for r in rows if r["method"] == "ssd-7-tuned"} == {7}
    assert "| ssd-7-tuned − input | psnr |" in capsys.readouterr().out


def test_the_shipped_presets_load_and_spend_their_budget():
    if not tuned.SHIPPED.is_file():
        pytest.skip("no shipped tuned presets")
    presets = tuned.read_presets(tuned.SHIPPED)
    assert presets, "the shipped file holds no preset"
    model = tiny_backbone()
    for name, entry in presets.items():
        found = entry["found_by"]
        assert found["dataset"] == "fashion-train" and found["command"] and found["wall_seconds"] > 0
        r = invkit.recipe(name)
        op = get_task(entry["task"]).build((1, 32, 32), image_generators(0, [0], "operator"))
        res = r.run(model, op.A(torch.zeros(1, 1, 32, 32)), op, generator=torch.Generator().manual_seed(0), return_info=True)
        assert int(res.nfe) == entry["nfe"] and name in invkit.recipes()
