"""Every user mistake in ``invkit eval`` and ``invkit demo`` is one line on stderr and exit 2,
found before any work, with nothing written."""

from __future__ import annotations

import pytest
import torch

import invkit
from invkit import cli

from .test_cli import _eval

GPU = torch.cuda.is_available()


def _one_line(capsys, code, words):
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("invkit"), err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--device", "potato"], ["potato", "cpu"]),
        (["--device", "cuda:9"], ["cuda:9"]),
        pytest.param(["--device", "cuda"], ["CUDA is not available"], marks=pytest.mark.skipif(GPU, reason="has a GPU")),
        (["--device", "meta"], ["meta"]),
        (["--n", "-3"], ["--n", ">= 1"]),
        (["--offset", "-1"], ["--offset", ">= 0"]),
        (["--batch-size", "0"], ["--batch-size", ">= 1"]),
        (["--seed", "-1"], ["--seed"]),
        (["--grid", "-1"], ["--grid"]),
        (["--threads", "-2"], ["--threads"]),
        (["--noise-sigma", "-0.1"], ["--noise-sigma"]),
        (["--noise-sigma", "nan"], ["--noise-sigma"]),
        (["--noise-uniform", "inf"], ["--noise-uniform"]),
        (["--noise-jpeg", "0"], ["--noise-jpeg", "1..100"]),
        (["--noise-jpeg", "101"], ["--noise-jpeg"]),
        (["--families", "ssd"], ["--families", "--nfe-sweep"]),
        (["--nfe", "10"], ["--nfe", "--nfe-sweep"]),
        (["--nfe-sweep", "--recipes", "input"], ["--recipes"]),
        (["--nfe-sweep", "--nfe", "1"], [">= 2"]),
        (["--nfe-sweep", "--families", "ssd", "ssd"], ["twice"]),
        (["--set", "axis=-2"], ["--operator"]),
        (["--operator", "sr_bicubic", "--task", "sr4"], ["--task", "--operator"]),
        (["--resume", "--overwrite"], ["--resume", "--overwrite"]),
        (["--n", "7"], ["fewer than"]),
        (["--recipes", "input", "input"], ["twice"]),
        (["--recipes", "y"], ["'y' baseline"]),
        (["--recipes", "input:x=1"], ["takes no options"]),
        (["--recipes", "ssd-30:bogus=1"], ["bogus"]),
    ],
)
def test_eval_mistakes(tiny, folder, tmp_path, capsys, extra, words):
    _one_line(capsys, _eval(tiny, folder, tmp_path / "o", *extra), words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--operator", "no_such_op"], ["unknown operator", "sr_bicubic"]),
        (["--operator", "sr_bicubic", "--set", "bogus=1"], ["bogus", "scale"]),
        (["--operator", "inpainting"], ["mask"]),
        (["--operator", "sr_bicubic", "--set", "scale=3"], ["scale"]),
    ],
)
def test_eval_operator_mistakes(tiny, folder, tmp_path, capsys, extra, words):
    code = cli.main(["eval", "--backbone", tiny, "--dataset", str(folder), "--n", "2", "--recipes", "input",
                     "--out", str(tmp_path / "o"), "--quiet", *extra])  # fmt: skip
    _one_line(capsys, code, words)
    assert not (tmp_path / "o").exists()


def test_eval_output_locations_are_checked_first(tiny, folder, tmp_path, capsys, monkeypatch):
    import invkit.evaluation.restore as restore

    monkeypatch.setattr(restore, "load_images", lambda *a, **k: pytest.fail("loaded data before checking --out"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line(capsys, _eval(tiny, folder, afile), ["is a file"])
    _one_line(capsys, _eval(tiny, folder, afile / "sub"), ["afile", "is a file"])
    assert afile.read_text() == "x"


def test_a_corrupt_image_is_an_error_naming_it(tiny, folder, tmp_path, capsys):
    (folder / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    _one_line(capsys, _eval(tiny, folder, tmp_path / "o"), ["img2.png", "fix or remove"])
    assert not (tmp_path / "o").exists()
    # outside the images asked for, it does not matter
    assert _eval(tiny, folder, tmp_path / "o", "--n", "2", "--recipes", "input") == 0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--batch-size", "0"], ["--batch-size"]),
        (["--threads", "-1"], ["--threads"]),
        (["--seed", "-1"], ["--seed"]),
        (["--device", "potato"], ["potato"]),
        (["--device", "cuda:9"], ["cuda:9"]),
        (["--task", "sr5"], ["unknown task", "sr4"]),
        (["--task", "colorization"], ["RGB"]),
    ],
)
def test_demo_mistakes(tmp_path, capsys, monkeypatch, args, words):
    import invkit.commands.demo as demo

    monkeypatch.setattr(demo, "demo_backbone", lambda *a, **k: pytest.fail("loaded the backbone before checking"))
    out = tmp_path / "d.png"
    _one_line(capsys, cli.main(["demo", "--out", str(out), "--quiet", *args]), words)
    assert not out.exists()


def test_demo_output_is_checked_first(tmp_path, capsys, monkeypatch):
    import invkit.commands.demo as demo

    monkeypatch.setattr(demo, "demo_backbone", lambda *a, **k: pytest.fail("loaded the backbone before checking --out"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line(capsys, cli.main(["demo", "--out", str(tmp_path), "--quiet"]), ["is a folder"])
    _one_line(capsys, cli.main(["demo", "--out", str(afile / "d.png"), "--quiet"]), ["is a file"])
    _one_line(capsys, cli.main(["demo", "--out", str(tmp_path / "d.jpg"), "--quiet"]), [".png"])


def test_demo_default_output_is_in_an_ignored_folder():
    import invkit.commands.demo as demo
    import invkit.commands.eval as ev_cmd

    assert demo.DEFAULT_OUT.startswith("out/") and ev_cmd.DEFAULT_OUT.startswith("out/")  # /out/ is in .gitignore
    parser = cli.build_parser(["demo"])
    assert parser.parse_args(["demo"]).out == demo.DEFAULT_OUT
    assert parser.parse_args(["demo"]).threads == cli.build_parser(["eval"]).parse_args(["eval"]).threads == 1


def test_argument_mistakes_exit_2(tiny, folder, tmp_path, capsys):
    for extra in (["--dtype", "int8"], ["--backbone-opt", "noequals"], ["--set", "1x=2"], ["--n", "two"]):
        with pytest.raises(SystemExit) as exc:
            _eval(tiny, folder, tmp_path / "o", *extra)
        assert exc.value.code == 2
        assert capsys.readouterr().err.count("\n") <= 2  # argparse: usage line + one error line
    assert invkit is not None
