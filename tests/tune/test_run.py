"""A tuning run: journal, resume, refused settings, the NFE check, tune.json and the preset."""

from __future__ import annotations

import json

import pytest

from invkit import cli
from invkit.errors import ConfigError
from invkit.tuning import JOURNAL, RESULT, TuneConfig, tune


class _Fake:
    """Synthetic per-image rows: a score from the method string and the image index; counts calls
    and can stop (a kill) after ``stop_after`` chunks."""

    def __init__(self, nfe, stop_after=None):
        self.nfe, self.stop_after, self.chunks = nfe, stop_after, []

    def __call__(self, method, x, names, offset):
        if self.stop_after is not None and len(self.chunks) >= self.stop_after:
            raise KeyboardInterrupt
        self.chunks.append((method, offset, len(names)))
        h = sum(map(ord, method)) % 97
        return [{"index": offset + j, "psnr": 20 + h / 10 + ((offset + j) * h % 7) / 10, "ssim": h / 100, "nfe": self.nfe, "seconds": 0.0}
                for j in range(len(names))]  # fmt: skip


CFG = dict(nfe=10, task="sr4", configs=9, rungs=(2, 5, 9), keep=3)


def test_rows_are_reused_across_rungs_and_winner_is_best(tmp_path):
    fake = _Fake(10)
    doc = tune(TuneConfig(**CFG), tmp_path / "o", restore=fake)
    # rung 0: 9 trials × images 0..1; rung 1: 3 survivors × images 2..4 only (0..1 reused)
    assert [(o, n) for _, o, n in fake.chunks] == [(0, 2)] * 9 + [(2, 3)] * 3
    assert [len(r["scores"]) for r in doc["rungs"]] == [9, 3]
    last = doc["rungs"][-1]
    assert doc["winner"]["trial"] == int(max(last["scores"], key=last["scores"].get))
    assert doc["winner"]["score"] == max(last["scores"].values())
    assert json.loads((tmp_path / "o" / RESULT).read_text())["winner"] == doc["winner"]
    lines = (tmp_path / "o" / JOURNAL).read_text().splitlines()
    assert "hash" in json.loads(lines[0]) and len(lines) == 1 + 12


def test_resume_skips_done_trials_and_gives_the_same_winner(tmp_path):
    whole = tune(TuneConfig(**CFG), tmp_path / "a", restore=_Fake(10))
    killed = _Fake(10, stop_after=5)
    with pytest.raises(KeyboardInterrupt):
        tune(TuneConfig(**CFG), tmp_path / "b", restore=killed)
    with open(tmp_path / "b" / JOURNAL, "a") as fh:
        fh.write('{"trial": 5, "lo"')  # a line torn by the kill
    again = _Fake(10)
    resumed = tune(TuneConfig(**CFG), tmp_path / "b", restore=again)
    assert len(again.chunks) == 12 - 5  # the 5 journalled chunks are not restored again
    assert resumed["winner"] == whole["winner"] and resumed["rungs"] == whole["rungs"]
    records = [json.loads(line) for line in (tmp_path / "b" / JOURNAL).read_text().splitlines()[1:]]
    assert len(records) == 12 and resumed["restore_seconds"] == pytest.approx(sum(r["seconds"] for r in records))
    third = _Fake(10)
    tune(TuneConfig(**CFG), tmp_path / "b", restore=third)
    assert third.chunks == []


def test_other_settings_on_the_same_folder_are_refused(tmp_path):
    tune(TuneConfig(**CFG), tmp_path / "o", restore=_Fake(10))
    with pytest.raises(ConfigError, match="other settings"):
        tune(TuneConfig(**{**CFG, "seed": 1}), tmp_path / "o", restore=_Fake(10))
    # refused before the backbone is built or an image read (this backbone does not exist)
    with pytest.raises(ConfigError, match="other settings"):
        tune(TuneConfig(**{**CFG, "backbone": "no-such-backbone"}), tmp_path / "o")
    fake = _Fake(10)
    tune(TuneConfig(**{**CFG, "seed": 1}), tmp_path / "o", restore=fake, overwrite=True)
    assert len(fake.chunks) == 12


def test_a_configuration_off_the_budget_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not the budget 10"):
        tune(TuneConfig(**CFG), tmp_path / "o", restore=_Fake(9))


def test_cli_end_to_end_on_a_training_folder(tiny, train_folder, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["tune", "--backbone", tiny, "--train-folder", str(train_folder), "--task", "sr2", "--nfe", "4",
            "--configs", "4", "--rungs", "2", "4", "--batch-size", "3", "--out", str(out), "--quiet"]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "ssd-4-tuned: ssd:inversion_steps=" in printed
    doc = json.loads((out / RESULT).read_text())
    assert doc["command"]["invkit tune"]["nfe"] == 4 and doc["environment"]
    assert [len(r["scores"]) for r in doc["rungs"]] == [4, 2]
    entry = json.loads((out / "presets.json").read_text())["presets"]["ssd-4-tuned"]
    assert entry["base"] == "ssd" and entry["task"] == "sr2" and entry["preset_task"] == "sr"
    assert entry["overrides"] == doc["winner"]["config"] and entry["found_by"]["dataset"] == str(train_folder)
    rows = [json.loads(line) for line in (out / JOURNAL).read_text().splitlines()[1:]]
    assert {r["nfe"] for rec in rows for r in rec["rows"]} == {4}
    assert cli.main(args) == 0  # resumed: nothing to restore, the same winner
    assert json.loads((out / RESULT).read_text())["winner"] == doc["winner"]
