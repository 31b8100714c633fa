"""tune never reads a test image: the guard is in code, at the loader and at the command line."""

from __future__ import annotations

import pytest
import torch

import invkit.data
from invkit import cli
from invkit.tuning import TestDataError, TuneConfig, check_training_dataset, load_training_images, tune


@pytest.mark.parametrize("dataset", ["fashion-test", "fashion-TEST", "mnist-test", "", "t10k"])
def test_named_test_splits_are_refused(dataset):
    with pytest.raises(TestDataError):
        check_training_dataset(dataset)
    with pytest.raises(TestDataError):
        TuneConfig(nfe=10, dataset=dataset)


def test_only_declared_folders_without_a_test_name_pass(train_folder, tmp_path_factory):
    with pytest.raises(TestDataError, match="--train-folder"):
        check_training_dataset(str(train_folder))  # a folder must be declared as training data
    assert check_training_dataset(str(train_folder), declared_training=True) == str(train_folder)
    for name in ("test", "fashion_test", "Test-Set", "val", "validation", "eval"):
        held_out = tmp_path_factory.mktemp("root") / name / "images"
        held_out.mkdir(parents=True)
        with pytest.raises(TestDataError, match="held-out"):
            check_training_dataset(str(held_out), declared_training=True)
    with pytest.raises(TestDataError):
        check_training_dataset("fashion-test", declared_training=True)  # not a folder named train either


def test_the_loader_reaches_only_the_training_split(monkeypatch):
    """load_training_images names the split "train" itself; the evaluation's loader (which can
    reach fashion-test) is never used by tune."""
    asked = []

    def fake(split="train", **kw):
        asked.append(split)
        n = kw.get("limit") or 10
        return torch.zeros(n, 1, 32, 32), torch.zeros(n, dtype=torch.long)

    monkeypatch.setattr(invkit.data, "fashion_mnist", fake)
    x, names = load_training_images("fashion-train", 5)
    assert asked == ["train"] and x.shape[0] == 5 and names[0] == "fashion-train-00000"
    with pytest.raises(TestDataError):
        load_training_images("fashion-test", 5)
    assert asked == ["train"]


def test_a_whole_tuning_run_reads_only_training_images(monkeypatch, tiny, tmp_path):
    import invkit.evaluation.loading as loading

    asked = []

    def fake(split="train", **kw):
        asked.append(split)
        g = torch.Generator().manual_seed(0)
        return torch.rand(kw["limit"], 1, 16, 16, generator=g) * 2 - 1, torch.zeros(kw["limit"], dtype=torch.long)

    def refuse(*a, **kw):
        raise AssertionError("tune must not use the evaluation's loader (it can reach fashion-test)")

    monkeypatch.setattr(invkit.data, "fashion_mnist", fake)
    monkeypatch.setattr(loading, "load_images", refuse)
    monkeypatch.setattr("invkit.evaluation.restore.load_images", refuse)
    cfg = TuneConfig(nfe=3, task="sr2", backbone=tiny, configs=4, rungs=(2, 4), batch_size=4)
    doc = tune(cfg, tmp_path / "out")
    assert set(asked) == {"train"} and doc["preset"]["ssd-3-tuned"]["found_by"]["training_indices"] == [0, 4]


def _one_line_error(capsys, code, *words):
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("invkit"), err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--dataset", "fashion-test"], ["training images only", "fashion-test"]),
        (["--dataset", "/data/fashion"], ["training images only", "--train-folder"]),
        (["--train-folder", "/data/fashion/test"], ["held-out", "test"]),
        (["--train-folder", "/data/t10k-val/x"], ["held-out"]),
        (["--nfe", "1"], ["--nfe"]),
        (["--rungs", "8", "4"], ["increasing"]),
        (["--keep", "1"], ["--keep"]),
        (["--task", "nope"], ["--task"]),
        (["--write-preset", "p.txt"], [".json"]),
    ],
)
def test_cli_refuses_in_one_line(extra, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["tune", "--nfe", "10", "--out", str(tmp_path / "o"), "--quiet", *extra]
    _one_line_error(capsys, cli.main(args), *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag", [["--offset", "100"], ["--dataset", "fashion-train", "--train-folder", "x"], ["--n", "5"]])
def test_cli_has_no_offset_and_one_data_source(flag, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["tune", "--nfe", "10", *flag])
    assert exc.value.code == 2
