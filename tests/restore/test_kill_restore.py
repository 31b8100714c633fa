"""A ``kill -9`` mid-folder, then the same command again: only complete images and a manifest
that parses after the kill; after the rerun, outputs byte-identical to an uninterrupted run and
no file computed twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invkit import cli

ROOT = Path(__file__).resolve().parents[2]
N = 16
ARGS = [
    "--task", "sr2", "--batch-size", "1", "--quiet", "--tile", "off", "--backbone", "ddpm",
    "--recipe", "ssd:inversion_steps=2,generation_steps=12",
    *[a for kv in ("ch=32", "ch_mult=(1,)", "num_res_blocks=1", "attn_resolutions=()", "resolution=32",
                   "in_channels=1", "out_ch=1", "seed=0") for a in ("--backbone-opt", kv)],
]  # fmt: skip


def run(folder: Path, out: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "invkit.cli", "restore", str(folder), "--out", str(out), *ARGS],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # fmt: skip


def ok_records(out: Path) -> list[dict]:
    recs = []
    for path in sorted(out.glob("manifest.journal*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("status") == "ok":
                recs.append(rec)
    return recs


@pytest.mark.slow
def test_sigkill_mid_folder_then_resume(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "in"
    (folder / "d").mkdir(parents=True)
    for i in range(N):
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(folder / ("d" if i % 3 else "") / f"f{i:02d}.png")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    threads = torch.get_num_threads()
    try:  # the uninterrupted reference, in this process
        assert cli.main(["restore", str(folder), "--out", str(whole), *ARGS]) == 0
    finally:
        torch.set_num_threads(threads)

    proc = run(folder, killed)
    deadline = time.monotonic() + 300
    while len(ok_records(killed)) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed: make it slower"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {r["key"] for r in ok_records(killed)}
    assert 4 <= len(done_before) < N
    # only complete images (a killed write leaves at most a hidden temporary), a manifest that parses
    for png in killed.rglob("*.png"):
        if not png.name.startswith("."):
            with Image.open(png) as im:
                im.load()
    json.loads((killed / "manifest.json").read_text())

    again = run(folder, killed)
    assert again.wait(timeout=600) == 0, again.stderr.read().decode()[-2000:]
    recs = ok_records(killed)
    keys = [r["key"] for r in recs]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == N  # every file once: none computed twice
    rerun = {r["key"] for r in recs if r["run"] != next(r0["run"] for r0 in recs if r0["key"] in done_before)}
    assert rerun == {r["key"] for r in recs} - done_before
    assert not [p for p in killed.rglob(".*.tmp")]
    a = {str(p.relative_to(whole)): p.read_bytes() for p in whole.rglob("*.png")}
    b = {str(p.relative_to(killed)): p.read_bytes() for p in killed.rglob("*.png")}
    assert len(a) == N and a == b
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["summary"]["complete"] and manifest["summary"]["ok"] == N
    ref_manifest = json.loads((whole / "manifest.json").read_text())
    assert [f["output_sha256"] for f in manifest["files"]] == [f["output_sha256"] for f in ref_manifest["files"]]


def test_interrupt_between_image_and_journal_then_resume(tmp_path, monkeypatch, capsys):
    """Ctrl-C right after an image is written but before its journal line: status 130, a manifest
    marked incomplete, and the rerun redoes that file (same bytes) and nothing that was recorded."""
    from invkit.restoration import files

    rng = np.random.default_rng(3)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(folder / f"f{i}.png")
    args = [a.replace("resolution=32", "resolution=16") for a in ARGS]
    threads = torch.get_num_threads()
    try:
        assert cli.main(["restore", str(folder), "--out", str(tmp_path / "whole"), *args]) == 0
        real = files.Journal.append
        calls = []

        def append(self, record):
            calls.append(record["key"])
            if len(calls) == 3:
                raise KeyboardInterrupt
            real(self, record)

        monkeypatch.setattr(files.Journal, "append", append)
        assert cli.main(["restore", str(folder), "--out", str(tmp_path / "cut"), *args]) == 130
        monkeypatch.setattr(files.Journal, "append", real)
        m = json.loads((tmp_path / "cut" / "manifest.json").read_text())
        assert not m["summary"]["complete"] and m["summary"]["ok"] == 2 and m["summary"]["pending"] == 3
        assert (tmp_path / "cut" / "f2.png").is_file()  # written, not recorded
        capsys.readouterr()
        assert cli.main(["restore", str(folder), "--out", str(tmp_path / "cut"), *args]) == 0
    finally:
        torch.set_num_threads(threads)
    m = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert m["summary"]["complete"] and m["summary"]["ok"] == 5
    assert sorted(f["key"] for f in m["files"] if f["run"] != m["run"]) == ["f0", "f1"]  # skipped, not redone
    a = {p.name: p.read_bytes() for p in (tmp_path / "whole").glob("*.png")}
    b = {p.name: p.read_bytes() for p in (tmp_path / "cut").glob("*.png")}
    assert len(a) == 5 and a == b
