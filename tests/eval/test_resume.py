"""``invkit eval``'s results folder: journalled rows, ``--resume``, ``--overwrite``, nothing stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import invkit.evaluation as ev
from invkit import cli
from invkit.evaluation.store import JOURNAL
from invkit.io import sha256_file

SSD = "ssd:inversion_steps=2,generation_steps=2"


def _eval(tiny, folder, out, *extra, methods=("input", SSD)):
    return cli.main(
        ["eval", "--backbone", tiny, "--dataset", str(folder), "--task", "sr2", "--n", "5", "--batch-size", "2",
         "--out", str(out), "--quiet", "--recipes", *methods, *extra]
    )  # fmt: skip


def _rows(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((out / "results.json").read_text())["rows"]]


def _table(out: Path) -> list[str]:
    """table.md without the timing column (the only thing two identical runs may differ in)."""
    return ["|".join(line.split("|")[:-2]) if line.startswith("|") else line for line in (out / "table.md").read_text().splitlines()]


def assert_clean_and_complete(out: Path) -> None:
    """Every file is listed in the manifest with its hash; no cache, temporaries or strays."""
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert present == set(listed) | {"manifest.json"}, present ^ (set(listed) | {"manifest.json"})
    assert all(sha256_file(out / p) == sha for p, sha in listed.items())
    header, rows = ev.read_journal(out / JOURNAL)
    assert header["settings_sha256"] == manifest["settings_sha256"]
    assert len(rows) == len(json.loads((out / "results.json").read_text())["rows"])


@pytest.fixture
def reference(tiny, folder, tmp_path):
    out = tmp_path / "reference"
    assert _eval(tiny, folder, out) == 0
    return out


def test_the_journal_holds_every_row_and_the_folder_is_clean(reference):
    assert_clean_and_complete(reference)
    header, rows = ev.read_journal(reference / JOURNAL)
    assert header["settings"]["config"]["n"] == 5
    assert [r["batch"] for r in rows if r["method"] == "input"] == [0, 0, 2, 2, 4]


def test_resume_after_an_interrupt_restores_only_the_missing_batches(tiny, folder, tmp_path, reference, monkeypatch, capsys):
    out = tmp_path / "out"
    real = ev.RunFolder.append
    calls = []

    def interrupted(self, batch):
        calls.append(batch.start)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as Ctrl-C during the second batch's journalling
        real(self, batch)

    monkeypatch.setattr(ev.RunFolder, "append", interrupted)
    assert _eval(tiny, folder, out) == 130
    assert not (out / "manifest.json").exists() and not (out / "results.json").exists()
    # a torn last line, as a kill while appending leaves it
    with open(out / JOURNAL, "a") as f:
        f.write('{"index": 3, "name": "img3.p')
    calls.clear()
    monkeypatch.setattr(ev.RunFolder, "append", lambda self, batch: (calls.append(batch.start), real(self, batch)))
    assert _eval(tiny, folder, out, "--resume") == 0
    assert calls == [2, 4]  # batch 0 was kept
    assert _rows(out) == _rows(reference) and _table(out) == _table(reference)
    assert (out / "grid.png").read_bytes() == (reference / "grid.png").read_bytes()
    assert_clean_and_complete(out)
    capsys.readouterr()
    assert _eval(tiny, folder, out, "--resume") == 0  # complete: nothing to do
    assert "nothing to do" in capsys.readouterr().out


def test_other_settings_need_overwrite_which_leaves_nothing_stale(tiny, folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval(tiny, folder, out, "--save-images", "--grid", "2") == 0
    assert (out / "images" / SSD.replace(":", "_")).is_dir()
    before = (out / "manifest.json").read_bytes()
    capsys.readouterr()
    assert _eval(tiny, folder, out, methods=("input",)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert (out / "manifest.json").read_bytes() == before  # untouched
    assert _eval(tiny, folder, out, "--resume", methods=("input",)) == 2  # --resume needs the same settings
    assert _eval(tiny, folder, out, "--overwrite", methods=("input",)) == 0
    assert not (out / "images").exists()
    assert_clean_and_complete(out)
    assert {r["method"] for r in _rows(out)} == {"input"}


def test_a_killed_write_of_other_settings_is_cleared_by_overwrite(tiny, folder, tmp_path):
    out = tmp_path / "out"
    assert _eval(tiny, folder, out, "--save-images") == 0
    (out / "manifest.json").unlink()  # as if killed while writing the final files
    (out / ".results.json.123.tmp").write_text("{")
    assert _eval(tiny, folder, out, methods=("input",)) == 2
    assert _eval(tiny, folder, out, "--overwrite", "--grid", "0", methods=("input",)) == 0
    assert_clean_and_complete(out)
    assert not (out / "grid.png").exists()


def test_same_settings_without_resume_start_over(tiny, folder, tmp_path, reference):
    out = tmp_path / "out"
    assert _eval(tiny, folder, out) == 0
    (out / "stray.txt").write_text("not ours")
    assert _eval(tiny, folder, out) == 0
    assert _rows(out) == _rows(reference)
    assert (out / "stray.txt").exists()  # a file that no run wrote is never removed


def test_resume_of_a_shorter_or_empty_folder_just_runs(tiny, folder, tmp_path, reference):
    out = tmp_path / "fresh"
    assert _eval(tiny, folder, out, "--resume") == 0
    assert _rows(out) == _rows(reference)


def test_a_third_party_operator_is_evaluated(tiny, folder, tmp_path):
    import invkit

    if "cyclic_diff" not in invkit.operators():
        import os

        if os.environ.get("INVKIT_REQUIRE_EXAMPLE_PLUGIN") == "1":
            pytest.fail("INVKIT_REQUIRE_EXAMPLE_PLUGIN=1 but the example plugin is not installed")
        pytest.skip("the example plugin is not installed (pip install -e examples/invkit-example-plugin)")
    out = tmp_path / "op"
    code = cli.main(["eval", "--backbone", tiny, "--dataset", str(folder), "--operator", "cyclic_diff", "--set", "axis=-2",
                     "--n", "2", "--recipes", "input", "ddnm:generation_steps=2", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    assert data["task"]["operator"] == "cyclic_diff" and data["task"]["params"] == {"axis": -2}
    assert data["config"]["operator"] == "cyclic_diff" and data["config"]["task"] is None
    assert data["aggregates"]["ddnm:generation_steps=2"]["nfe"] == 2
    task = ev.task_from_operator("cyclic_diff", {"axis": -2})
    assert task.name == "cyclic_diff(axis=-2)" and task.engine_task is None
    assert ev.task_from_operator("sr_bicubic", {"scale": 2}).engine_task == "sr"
