"""``invkit eval`` under ``torchrun``: two CPU processes (gloo) give the single-process result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from invkit import cli

# a random 8-px DDPM from the ddpm family, so the subprocesses need no test plugin
ARGS = [
    "eval", "--backbone", "ddpm", "--task", "sr2", "--num-images", "5", "--batch-size", "2", "--quiet", "--threads", "1",
    "--recipes", "input", "ssd:inversion_steps=2,generation_steps=3", "ddnm:generation_steps=3", "--noise-sigma", "0.05",
    *[a for kv in ("ch=32", "ch_mult=(1,)", "num_res_blocks=1", "attn_resolutions=()", "resolution=8",
                   "in_channels=1", "out_ch=1", "seed=0") for a in ("--backbone-opt", kv)],
]  # fmt: skip


@pytest.mark.slow
def test_torchrun_shards_reproduce_the_single_process_run(folder, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    single, multi = tmp_path / "single", tmp_path / "multi"
    before = __import__("torch").get_num_threads()
    try:
        assert cli.main([*ARGS, "--dataset", str(folder), "--out", str(single)]) == 0
    finally:
        __import__("torch").set_num_threads(before)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "invkit.cli", *ARGS, "--dataset", str(folder), "--out", str(multi)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = json.loads((single / "results.json").read_text())
    b = json.loads((multi / "results.json").read_text())
    assert b["environment"]["world_size"] == 2
    assert len(a["rows"]) == len(b["rows"]) == 15
    for ra, rb in zip(a["rows"], b["rows"]):
        assert (ra["method"], ra["index"]) == (rb["method"], rb["index"])
        for key in ("psnr", "ssim", "consistency", "nfe"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-6), (ra["method"], ra["index"], key)
    assert (multi / "grid.png").is_file() and (multi / "manifest.json").is_file()
