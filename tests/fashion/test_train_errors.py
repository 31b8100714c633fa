"""``invkit train`` and ``invkit bench``: every user mistake is one line on stderr and exit status 2,
found before any training or timing starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from invkit.checkpoint import save_state_dict
from invkit.cli import main

TINY = ["--ch", "32", "--ch-mult", "1,2", "--res-blocks", "1", "--attn", "none", "--batch-size", "3", "--warmup", "2"]


def one_line_error(capsys, argv: list[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (a bad --dtype) leave this way, also one line
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (argv, captured.out, err)
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Broken weights files of every extension invkit reads, plus a folder and a plain file."""
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(3)}, good)
    save_state_dict({"w": torch.zeros(3)}, tmp_path / "good.safetensors")
    out: dict[str, Path] = {}
    rng = torch.Generator().manual_seed(0)
    noise = bytes(torch.randint(0, 256, (4096,), generator=rng, dtype=torch.uint8).tolist())
    for ext in (".pt", ".ckpt", ".pth", ".bin", ".safetensors", ".json"):
        (tmp_path / f"random{ext}").write_bytes(noise)
        src = (tmp_path / "good.safetensors") if ext == ".safetensors" else good
        data = src.read_bytes()
        (tmp_path / f"truncated{ext}").write_bytes(data[: len(data) // 2])
        out[f"random{ext}"] = tmp_path / f"random{ext}"
        out[f"truncated{ext}"] = tmp_path / f"truncated{ext}"
    torch.save([1, 2, 3], tmp_path / "list.ckpt")
    out["list.ckpt"] = tmp_path / "list.ckpt"
    (tmp_path / "empty.pth").write_bytes(b"")
    out["empty.pth"] = tmp_path / "empty.pth"
    (tmp_path / "folder").mkdir()
    out["folder"] = tmp_path / "folder"
    (tmp_path / "plain.txt").write_text("not a folder")
    out["plain"] = tmp_path / "plain.txt"
    return out


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--limit", "0"], "--limit must be an integer >= 1"),
        (["--limit", "-5"], "--limit"),
        (["--lr", "nan"], "--lr must be a finite number > 0"),
        (["--lr", "-1e-3"], "--lr"),
        (["--steps", "0"], "--steps must be an integer >= 1"),
        (["--attn", "7"], "never works at that resolution"),
        (["--attn", "64"], "choose among 32,16"),
        (["--ema", "1.0"], "--ema must be a number in [0, 1)"),
        (["--dropout", "1.5"], "--dropout"),
        (["--ch-mult", "0,1"], "--ch-mult"),
        (["--threads", "0"], "--threads"),
        (["--save-every", "0"], "--save-every"),
        (["--warmup", "-1"], "--warmup must be >= 0"),
        (["--epochs", "3"], "--epochs do(es) not apply to --what ddpm"),
        (["--device", "banana"], "unknown device"),
        (["--device", "cuda:7"], "--device cuda:7"),
        (["--init-from", "x.safetensors", "--resume"], "cannot be combined"),
    ],
)
def test_bad_training_values(capsys, tmp_path: Path, fake_fashion: Path, extra: list[str], needle: str) -> None:
    argv = ["train", "--out", str(tmp_path / "run"), "--data-dir", str(fake_fashion), "--quiet", *TINY, *extra]
    if "--device" in extra and extra[1].startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert needle in one_line_error(capsys, argv)
    assert not (tmp_path / "run" / "ckpt.pt").exists()


def test_classifier_rejects_ddpm_only_flags(capsys, tmp_path: Path, fake_fashion: Path) -> None:
    base = ["train", "--what", "classifier", "--out", str(tmp_path / "c"), "--data-dir", str(fake_fashion)]
    assert "--steps" in one_line_error(capsys, [*base, "--steps", "5"])
    assert "--resume" in one_line_error(capsys, [*base, "--resume"])


def test_output_locations_are_checked_first(capsys, tmp_path: Path, fake_fashion: Path, files) -> None:
    base = ["train", "--data-dir", str(fake_fashion), "--quiet", *TINY, "--steps", "1"]
    assert "is a folder" in one_line_error(capsys, [*base, "--out", str(tmp_path / "r"), "--export", str(files["folder"])])
    assert "is a folder" in one_line_error(capsys, [*base, "--out", str(tmp_path / "r"), "--export", str(tmp_path / "new") + "/"])
    assert "not a folder" in one_line_error(capsys, [*base, "--out", str(files["plain"])])
    assert "not a folder" in one_line_error(capsys, [*base, "--out", str(files["plain"] / "run")])
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "cannot write" in one_line_error(capsys, [*base, "--out", str(locked / "run")])
    assert not (tmp_path / "r").exists(), "a run folder was created before the checks"


@pytest.mark.parametrize(
    "name", ["random.pt", "truncated.pt", "random.ckpt", "truncated.ckpt", "random.pth", "truncated.pth",
             "random.bin", "truncated.bin", "random.safetensors", "truncated.safetensors", "random.json",
             "list.ckpt", "empty.pth"],
)
def test_corrupt_init_from(capsys, tmp_path: Path, fake_fashion: Path, files, name: str) -> None:
    argv = ["train", "--out", str(tmp_path / "run"), "--data-dir", str(fake_fashion), "--quiet", *TINY,
            "--steps", "1", "--init-from", str(files[name])]
    assert "--init-from" in one_line_error(capsys, argv)


@pytest.mark.parametrize("name", ["random.pt", "truncated.pt", "list.ckpt", "empty.pth", "wrong keys"])
def test_corrupt_resume_checkpoint(capsys, tmp_path: Path, fake_fashion: Path, files, name: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    if name == "wrong keys":
        torch.save({"model": {}, "step": 3}, run / "ckpt.pt")
    else:
        (run / "ckpt.pt").write_bytes(files[name].read_bytes())
    argv = ["train", "--out", str(run), "--data-dir", str(fake_fashion), "--quiet", "--resume"]
    assert "ckpt.pt" in one_line_error(capsys, argv)


def test_resume_with_other_architecture_weights(capsys, tmp_path: Path, fake_fashion: Path) -> None:
    src = tmp_path / "src.safetensors"
    assert main(["train", "--out", str(tmp_path / "a"), "--data-dir", str(fake_fashion), "--quiet", *TINY,
                 "--steps", "1", "--export", str(src)]) == 0
    capsys.readouterr()
    argv = ["train", "--out", str(tmp_path / "b"), "--data-dir", str(fake_fashion), "--quiet", *TINY,
            "--ch-mult", "1,2,2", "--steps", "1", "--init-from", str(src)]
    assert "does not match the configured network" in one_line_error(capsys, argv)


# ---- benchmarks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bench", "speed", "--dtype", "int8"], "unknown dtype 'int8'"),
        (["bench", "speed", "--device", "nonsense"], "unknown device"),
        (["bench", "speed", "--checkpoint", "/no/such/file.pt"], "no such file"),
        (["bench", "speed", "--recipe", "none", "--task", "sr"], "--task"),
        (["bench", "speed", "--recipe", "ssd-3000"], "unknown recipe"),
        (["bench", "speed", "--threads", "0"], "--threads"),
        (["bench", "operators", "--batch-size", "0"], "--batch must be >= 1"),
        (["bench", "operators", "--dtype", "bfloat16"], "float32 or float64"),
        (["bench", "operators", "--device", "cuda:5"], "--device cuda:5"),
        (["bench", "gmm", "--zeta", "0.1", "--recipes", "ssd"], "--zeta"),
        (["bench", "gmm", "--t0", "100", "--recipes", "dps"], "--t0"),
        (["bench", "gmm", "--sigma-y", "nan"], "--sigma-y"),
        (["bench", "gmm", "--threads", "0"], "--threads"),
    ],
)
def test_bad_benchmark_values(capsys, argv: list[str], needle: str) -> None:
    if any(a.startswith("cuda") for a in argv) and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert needle in one_line_error(capsys, argv)


@pytest.mark.parametrize("name", ["random.pt", "truncated.safetensors", "random.json", "list.ckpt", "truncated.bin"])
def test_bench_speed_corrupt_checkpoint(capsys, files, name: str) -> None:
    argv = ["bench", "speed", "--backbone", "ddpm", "--checkpoint", str(files[name]), "--recipe", "none"]
    assert str(files[name].name) in one_line_error(capsys, argv)


def test_bench_outputs_are_checked_first(capsys, files) -> None:
    assert "is a folder" in one_line_error(capsys, ["bench", "speed", "--out", str(files["folder"])])
    assert "is a folder" in one_line_error(capsys, ["bench", "gmm", "--out", str(files["folder"])])
    assert "not a folder" in one_line_error(capsys, ["bench", "gmm", "--json", str(files["plain"] / "x.json")])
