"""``invkit restore`` under ``torchrun``: two CPU processes (gloo) write the same files as one
process, and one manifest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invkit import cli

ARGS = [
    "--task", "sr2", "--batch-size", "2", "--quiet", "--tile", "off", "--backbone", "ddpm", "--samples", "2",
    "--recipe", "ssd:inversion_steps=2,generation_steps=3",
    *[a for kv in ("ch=32", "ch_mult=(1,)", "num_res_blocks=1", "attn_resolutions=()", "resolution=16",
                   "in_channels=1", "out_ch=1", "seed=0") for a in ("--backbone-opt", kv)],
]  # fmt: skip
#: what may differ between two runs of the same files
VOLATILE = {"run", "seconds", "finished"}


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    rng = np.random.default_rng(2)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i, size in enumerate([8, 8, 12, 8, 12, 8, 8]):  # two sizes: batches of 2 of each
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(folder / ("sub" if i % 2 else "") / f"p{i}.png")
    single, multi = tmp_path / "single", tmp_path / "multi"
    before = torch.get_num_threads()
    try:
        assert cli.main(["restore", str(folder), "--out", str(single), *ARGS]) == 0
    finally:
        torch.set_num_threads(before)
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "plugins"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "invkit.cli", "restore", str(folder), "--out", str(multi), *ARGS],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = {str(p.relative_to(single)): p.read_bytes() for p in single.rglob("*.png")}
    b = {str(p.relative_to(multi)): p.read_bytes() for p in multi.rglob("*.png")}
    assert len(a) == 14 and a == b  # 7 means + 7 spread maps, bit for bit
    ma = json.loads((single / "manifest.json").read_text())
    mb = json.loads((multi / "manifest.json").read_text())
    assert mb["run_options"]["world_size"] == 2 and mb["summary"]["complete"] and mb["summary"]["ok"] == 7
    assert sorted(p.name for p in multi.glob("manifest*")) == ["manifest.journal.jsonl", "manifest.journal.r1.jsonl", "manifest.json"]
    assert ma["settings_sha256"] == mb["settings_sha256"]
    strip = lambda f: {k: v for k, v in f.items() if k not in VOLATILE}  # noqa: E731
    assert [strip(f) for f in ma["files"]] == [strip(f) for f in mb["files"]]
    # both processes did work: each journal holds some files
    for j in multi.glob("manifest.journal*.jsonl"):
        assert j.read_text().strip()
