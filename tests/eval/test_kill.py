"""SIGKILL ``invkit eval`` while it computes and while it writes, then ``--resume``: the same table,
a folder that parses, nothing stale."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from invkit import cli

from .test_resume import _rows, _table, assert_clean_and_complete

DRIVER = Path(__file__).with_name("kill_driver.py")
# a random 8-px DDPM of the ddpm family, so the subprocess needs no test plugin
ARGS = [
    "eval", "--backbone", "ddpm", "--task", "sr2", "--n", "6", "--batch-size", "2", "--quiet", "--threads", "1",
    "--recipes", "input", "ssd:inversion_steps=2,generation_steps=4", "ddnm:generation_steps=4", "--noise-sigma", "0.05",
    "--save-images", "--grid", "3",
    *[a for kv in ("ch=32", "ch_mult=(1,)", "num_res_blocks=1", "attn_resolutions=()", "resolution=8",
                   "in_channels=1", "out_ch=1", "seed=0") for a in ("--backbone-opt", kv)],
]  # fmt: skip


def _driver(mode: str, k: int, out: Path, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DRIVER), mode, str(k), *ARGS, "--dataset", str(folder), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _resume(out: Path, folder: Path) -> int:
    before = torch.get_num_threads()
    try:
        return cli.main([*ARGS, "--dataset", str(folder), "--out", str(out), "--resume"])
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_result(folder, tmp_path):
    reference = tmp_path / "reference"
    proc = _driver("none", 0, reference, folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    replaces = int(proc.stdout.rsplit("replaces=", 1)[1])
    assert replaces > 20  # header, 3 batch caches, final journal, results, table, grid, 24 images, manifest
    rng = random.Random(0)
    # kills inside every kind of write (the first and last few, and two drawn at random), in the
    # journal's appends, and at random moments of the restoring
    points = [("replace", k) for k in sorted({2, 5, 7, rng.randrange(8, replaces - 1), replaces - 1, replaces})]
    wall_ms = 1000 * json.loads((reference / "results.json").read_text())["wall_seconds"]
    points += [("append", 2), ("timer", int(rng.uniform(0.2, 0.9) * wall_ms))]
    for mode, k in points:
        out = tmp_path / f"{mode}-{k}"
        proc = _driver(mode, k, out, folder)
        # (a timer may outlast a run on a fast machine: then the run is complete and resume has nothing to do)
        assert proc.returncode == -9 or (mode == "timer" and proc.returncode == 0), (mode, k, proc.returncode, proc.stderr[-2000:])
        if (out / "manifest.json").exists():  # a kill before anything left no manifest, or after it
            assert mode == "timer" or k >= replaces, (mode, k)
        assert _resume(out, folder) == 0, (mode, k)
        assert _rows(out) == _rows(reference), (mode, k)
        assert _table(out) == _table(reference), (mode, k)
        assert (out / "grid.png").read_bytes() == (reference / "grid.png").read_bytes(), (mode, k)
        assert_clean_and_complete(out)
        images = sorted(p.relative_to(out) for p in (out / "images").rglob("*.png"))
        assert images == sorted(p.relative_to(reference) for p in (reference / "images").rglob("*.png"))
        for p in images:
            assert (out / p).read_bytes() == (reference / p).read_bytes(), (mode, k, p)
