"""``invkit.restoration.files.restore_files``: discovery, every task in both modes, resume, refusal,
corrupt files, samples, journal and manifest (a random 16-px DDPM, a 3-call recipe)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invkit.errors import ConfigError, InvkitError, MissingFileError
from invkit import evaluation

from invkit.restoration.files import (
    Journal,
    _batch_plan,
    discover,
    journal_path,
    load_config,
    read_journal,
    restore_files,
)

TASKS = getattr(evaluation, "EVAL_TASKS", None) or evaluation.TASKS  # renamed EVAL_TASKS on main
FAST = "ssd:inversion_steps=2,generation_steps=2"


def tiny(channels: int = 1) -> dict:
    """A random fully convolutional ddim-repo DDPM (no test plugin needed, any image size)."""
    return dict(ch=32, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(), resolution=16,
                in_channels=channels, out_ch=channels, seed=0)  # fmt: skip


KW = dict(backbone="ddpm", backbone_options=tiny(), recipe=FAST, tile="off")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def smooth(rng: np.random.Generator, size: int = 16, channels: int = 1) -> np.ndarray:
    base = rng.random((size // 4, size // 4, channels))
    img = np.kron(base, np.ones((4, 4, 1))) * 200 + rng.random((size, size, channels)) * 55
    return img.astype(np.uint8).squeeze(-1) if channels == 1 else img.astype(np.uint8)


def write_images(root: Path, n: int, size: int = 16, channels: int = 1, seed: int = 0, names: list[str] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = names[i] if names else f"img{i}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth(rng, size, channels)).save(root / name)
    return root


def outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


# ---------------------------------------------------------------------------------------------
# discovery


def test_discover_mirrors_tree_sorted_and_rejects_duplicate_stems(tmp_path):
    write_images(tmp_path / "a", 3, names=["z.png", "sub/b.jpg", "sub/a.tif"])
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"")
    single = write_images(tmp_path / "b", 1, names=["one.bmp"]) / "one.bmp"
    found = discover([tmp_path / "a", single])
    assert [s.key for s in found] == ["sub/a", "sub/b", "z", "one"]
    assert [s.index for s in found] == [0, 1, 2, 3]
    write_images(tmp_path / "c", 1, names=["z.webp"])
    with pytest.raises(ConfigError, match="same output z.png"):
        discover([tmp_path / "a", tmp_path / "c"])
    with pytest.raises(MissingFileError):
        discover([tmp_path / "nope"])
    with pytest.raises(MissingFileError, match="no images"):
        discover([tmp_path / "empty"]) if (tmp_path / "empty").mkdir() is None else None
    with pytest.raises(ConfigError, match="not an image"):
        discover([tmp_path / "a" / "notes.txt"])


def test_batch_plan_groups_equal_sizes_in_order(tmp_path):
    root = tmp_path / "in"
    write_images(root, 3, size=16)
    write_images(root, 2, size=8, names=["s0.png", "s1.png"])
    src = discover([root])
    sizes = {s.key: (16, 16) if s.key.startswith("img") else (8, 8) for s in src}
    sizes["s1"] = None  # unreadable header: alone
    plan = _batch_plan(src, sizes, 2)
    assert [[s.key for s in b] for b in plan] == [["img0", "img1"], ["img2"], ["s0"], ["s1"]]


# ---------------------------------------------------------------------------------------------
# every task, both modes


def _task_inputs(tmp_path: Path, name: str) -> tuple[dict, int]:
    """Options a task needs (mask, kernel) and the channel count of its backbone."""
    channels = 3 if TASKS.get(name) is not None and TASKS[name].rgb else 1
    extra: dict = {}
    if name == "inpainting":
        m = np.ones((16, 16), np.uint8) * 255
        m[4:10, 5:12] = 0
        Image.fromarray(m).save(tmp_path / "mask.png")
        extra["mask"] = str(tmp_path / "mask.png")
    if name == "blur":
        k = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float64)
        np.save(tmp_path / "k.npy", k)
        extra["kernel"] = str(tmp_path / "k.npy")
    return extra, channels


@pytest.mark.parametrize("name", [*TASKS, "inpainting", "blur"])
def test_every_task_degrade_then_measured(tmp_path, name):
    extra, channels = _task_inputs(tmp_path, name)
    clean = write_images(tmp_path / "clean", 2, channels=channels)
    kw = {**KW, "backbone_options": tiny(channels)}
    deg = restore_files([clean], tmp_path / "deg", task=name, degrade=True, **extra, **kw)
    assert deg.exit_status == 0 and len(deg.done) == 2
    files = deg.manifest["files"]
    for rec in files:
        assert rec["status"] == "ok" and rec["nfe"] == 3
        assert np.isfinite(rec["psnr"]) and -1 <= rec["ssim"] <= 1  # a random backbone: any quality
        assert rec["seeds"]["noise"] and rec["seeds"]["operator"]
        for kind in ("restoration", "pinv"):
            assert (tmp_path / "deg" / rec["outputs"][kind]["path"]).is_file()
    # the synthesised y is an image for every task: restore it in measured mode
    ys = [tmp_path / "deg" / r["outputs"]["y"]["path"] for r in files if "y" in r["outputs"]]
    if name in ("inpaint-box", "inpaint-random"):
        return  # their masks were drawn per file; measured mode needs the user's mask (tested below)
    assert len(ys) == 2, name
    mres = restore_files(ys, tmp_path / "meas", task=name, **extra, **kw)
    assert mres.exit_status == 0, mres.summary()
    for rec in mres.manifest["files"]:
        out = Image.open(tmp_path / "meas" / rec["output"])
        assert out.size == Image.open(clean / "img0.png").size
        assert rec["consistency"] < 1.0  # back projection keeps A x = y (up to uint8 y)


def test_operator_with_set_params_and_input_recipe(tmp_path):
    clean = write_images(tmp_path / "clean", 2)
    rep = restore_files([clean], tmp_path / "o", operator="sr_avgpool", operator_params={"scale": 2}, degrade=True,
                        **{**KW, "recipe": "input"})  # fmt: skip
    assert rep.exit_status == 0
    rec = rep.manifest["files"][0]
    assert rec["nfe"] == 0 and rep.manifest["settings"]["task_resolved"]["operator"] == "sr_avgpool"
    assert Image.open(tmp_path / "o" / rec["outputs"]["y"]["path"]).size == (8, 8)


# ---------------------------------------------------------------------------------------------
# resume, refusal, overwrite


def test_rerun_skips_everything_and_is_identical(tmp_path):
    src = write_images(tmp_path / "in", 3, names=["a.png", "d/b.png", "d/e/c.png"])
    first = restore_files([src], tmp_path / "out", task="sr2", **KW)
    assert sorted(first.done) == ["a", "d/b", "d/e/c"] and (tmp_path / "out" / "d" / "e" / "c.png").is_file()
    before = outputs(tmp_path / "out")
    again = restore_files([src], tmp_path / "out", task="sr2", **KW)
    assert again.done == [] and sorted(again.skipped) == ["a", "d/b", "d/e/c"]
    assert outputs(tmp_path / "out") == before
    # a changed input is redone, and only it
    write_images(src, 1, seed=5, names=["d/b.png"])
    third = restore_files([src], tmp_path / "out", task="sr2", **KW)
    assert third.done == ["d/b"] and sorted(third.skipped) == ["a", "d/e/c"]
    # a damaged output is redone too
    (tmp_path / "out" / "a.png").write_bytes(b"junk")
    assert restore_files([src], tmp_path / "out", task="sr2", **KW).done == ["a"]
    assert outputs(tmp_path / "out")["a.png"] == before["a.png"]


def test_other_settings_are_refused_unless_overwrite(tmp_path):
    src = write_images(tmp_path / "in", 2)
    restore_files([src], tmp_path / "out", task="sr2", **KW)
    manifest = (tmp_path / "out" / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match="other settings.*--overwrite"):
        restore_files([src], tmp_path / "out", task="sr2", **{**KW, "recipe": "ssd:inversion_steps=2,generation_steps=3"})
    assert (tmp_path / "out" / "manifest.json").read_bytes() == manifest  # nothing written
    rep = restore_files([src], tmp_path / "out", task="sr2", overwrite=True, **{**KW, "seed": 1})
    assert sorted(rep.done) == ["img0", "img1"] and rep.manifest["settings"]["seed"] == 1
    # an output folder with foreign files where outputs would go
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "img0.png").write_bytes(b"mine")
    with pytest.raises(ConfigError, match="no invkit manifest"):
        restore_files([src], tmp_path / "foreign", task="sr2", **KW)
    assert (tmp_path / "foreign" / "img0.png").read_bytes() == b"mine"


def test_corrupt_and_wrong_sized_inputs_do_not_stop_the_others(tmp_path):
    src = write_images(tmp_path / "in", 3)
    (src / "broken.png").write_bytes(Image.open(src / "img0.png").tobytes()[:40])
    (src / "truncated.png").write_bytes((src / "img1.png").read_bytes()[:60])
    write_images(src, 1, size=12, names=["a-small.png"])  # first in order; the mask below does not fit it
    m = np.full((16, 16), 255, np.uint8)
    m[2:6] = 0
    Image.fromarray(m).save(tmp_path / "mask.png")
    rep = restore_files([src], tmp_path / "out", task="inpainting", mask=str(tmp_path / "mask.png"), **KW)
    assert rep.exit_status == 1
    assert sorted(rep.failed) == ["a-small", "broken", "truncated"] and sorted(rep.done) == ["img0", "img1", "img2"]
    by_key = {r["key"]: r for r in rep.manifest["files"]}
    assert "12×12" in by_key["a-small"]["error"] and by_key["broken"]["status"] == "error"
    assert rep.manifest["summary"]["error"] == 3 and rep.manifest["summary"]["ok"] == 3
    assert "failed: " in rep.summary() and not (tmp_path / "out" / "broken.png").exists()
    # the failed files are retried on the next run, the others skipped
    again = restore_files([src], tmp_path / "out", task="inpainting", mask=str(tmp_path / "mask.png"), **KW)
    assert sorted(again.failed) == ["a-small", "broken", "truncated"] and len(again.skipped) == 3


# ---------------------------------------------------------------------------------------------
# checks before any work


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(task="sr5"), "unknown task"),
        (dict(task=None, operator="nope"), "unknown operator"),
        (dict(task="sr2", recipe="ssd-31"), "unknown recipe"),
        (dict(task="sr2", operator="sr_bicubic"), "exactly one"),
        (dict(task="inpainting", mask="MISSING"), "not found"),
        (dict(task="inpainting", mask="BIG"), "no input has that size"),
        (dict(task="deblur", kernel="MISSING.npy"), "no such kernel"),
        (dict(task="sr2", checkpoint="MISSING.pt"), "not found"),
        (dict(task="sr2", backbone_options={"ch": 3}), "could not load"),
        (dict(task="colorization"), "colour"),
        (dict(task="sr2", samples=0), "samples"),
        (dict(task="sr2", save_samples=True), "--samples K"),
        (dict(task="sr2", tile="7"), "--tile"),
        (dict(task="sr2", bit_depth=12), "bit-depth"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(tmp_path, kw, match):
    src = write_images(tmp_path / "in", 2)
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "big.png")
    kw = {k: (str(tmp_path / "big.png") if v == "BIG" else str(tmp_path / v) if isinstance(v, str) and v.startswith("MISSING") else v) for k, v in kw.items()}
    with pytest.raises(InvkitError, match=match):
        restore_files([src], tmp_path / "out", **{**KW, **kw})
    assert not (tmp_path / "out").exists()


def test_mask_folder_matches_by_relative_stem(tmp_path):
    src = write_images(tmp_path / "in", 2, names=["a.png", "sub/b.png"])
    masks = tmp_path / "masks"
    for name in ("a.png", "sub/b.jpg"):
        (masks / name).parent.mkdir(parents=True, exist_ok=True)
        m = np.full((16, 16), 255, np.uint8)
        m[:8] = 0
        Image.fromarray(m).save(masks / name)
    rep = restore_files([src], tmp_path / "out", task="inpainting", mask=str(masks), **KW)
    assert rep.exit_status == 0 and rep.manifest["files"][1]["mask"].endswith("b.jpg")
    (masks / "sub" / "b.jpg").unlink()
    with pytest.raises(MissingFileError, match="no mask for input"):
        restore_files([src], tmp_path / "out2", task="inpainting", mask=str(masks), **KW)


# ---------------------------------------------------------------------------------------------
# samples, bit depth, journal


def test_samples_mean_std_and_saved_samples(tmp_path):
    src = write_images(tmp_path / "in", 1)
    rep = restore_files([src], tmp_path / "out", task="inpaint-box", degrade=True, samples=3, save_samples=True, **KW)
    rec = rep.manifest["files"][0]
    assert set(rec["outputs"]) == {"restoration", "y", "pinv", "std", "sample0", "sample1", "sample2"}
    assert rec["std_scale"] > 0 and rec["nfe"] == 9 and len(rec["seeds"]["recipe"]) == 3
    std = np.asarray(Image.open(tmp_path / "out" / "img0.std.png"))
    assert std.max() == 255  # white is the largest spread
    samples = [np.asarray(Image.open(tmp_path / "out" / f"img0.sample{k}.png"), float) for k in range(3)]
    mean = np.asarray(Image.open(tmp_path / "out" / "img0.png"), float)
    assert np.abs(np.mean(samples, axis=0) - mean).max() <= 1.0  # uint8 rounding
    assert not np.array_equal(samples[0], samples[1])


def test_sixteen_bit_output(tmp_path):
    src = write_images(tmp_path / "in", 1)
    restore_files([src], tmp_path / "out", task="sr2", bit_depth=16, **KW)
    assert Image.open(tmp_path / "out" / "img0.png").mode in ("I;16", "I")


def test_journal_ignores_a_torn_last_line_and_appends_on_a_fresh_line(tmp_path):
    j = Journal(journal_path(tmp_path))
    j.append({"key": "a", "status": "ok", "finished": 1.0})
    j.close()
    with open(journal_path(tmp_path), "ab") as f:
        f.write(b'{"key": "b", "stat')  # killed mid-write
    assert set(read_journal(tmp_path)) == {"a"}
    j = Journal(journal_path(tmp_path))
    j.append({"key": "c", "status": "ok", "finished": 2.0})
    j.close()
    assert set(read_journal(tmp_path)) == {"a", "c"}


def test_config_file_paths_are_relative_to_it(tmp_path):
    cfg = tmp_path / "run" / "run.toml"
    cfg.parent.mkdir()
    cfg.write_text('inputs = ["in"]\nout = "out"\ntask = "sr4"\nsamples = 2\n[backbone-opt]\nseed = 1\n')
    c = load_config(cfg)
    assert c["inputs"] == [str(cfg.parent / "in")] and c["out"] == str(cfg.parent / "out") and c["backbone_opt"] == {"seed": 1}
    cfg.write_text('task = "sr4"\nsampels = 2\n')
    with pytest.raises(ConfigError, match="unknown key.*sampels"):
        load_config(cfg)
    cfg.write_text('samples = "two"\n')
    with pytest.raises(ConfigError, match="samples must be int"):
        load_config(cfg)
    cfg.write_text("samples = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(cfg)


def test_manifest_records_everything_needed_to_reproduce(tmp_path):
    src = write_images(tmp_path / "in", 2)
    np.save(tmp_path / "k.npy", np.ones((3, 3)))
    rep = restore_files([src], tmp_path / "out", task="deblur", kernel=str(tmp_path / "k.npy"), degrade=True, **KW)
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m == json.loads(json.dumps(rep.manifest, default=str))
    assert m["invkit"] and m["torch"] and m["environment"]["device"] == "cpu"
    s = m["settings"]
    assert s["task_resolved"]["operator"] == "blur_fft" and s["kernel_sha256"] and "Recipe(" in s["recipe_resolved"]
    assert m["summary"]["complete"] and m["summary"]["ok"] == 2
    for rec in m["files"]:
        assert {"input", "input_sha256", "output", "output_sha256", "nfe", "seconds", "consistency", "status", "seeds"} <= set(rec)


def test_a_third_party_operator_by_name(tmp_path):
    from invkit.plugins import operators_registry

    if "cyclic_diff" not in operators_registry:
        pytest.skip("the example plugin is not installed")
    clean = write_images(tmp_path / "clean", 2)
    deg = restore_files([clean], tmp_path / "deg", operator="cyclic_diff", operator_params={"axis": -1}, degrade=True, **KW)
    assert deg.exit_status == 0 and deg.manifest["settings"]["task_resolved"]["operator"] == "cyclic_diff"
    ys = [tmp_path / "deg" / f["outputs"]["y"]["path"] for f in deg.manifest["files"]]
    meas = restore_files(ys, tmp_path / "meas", operator="cyclic_diff", operator_params={"axis": -1}, **KW)
    assert meas.exit_status == 0 and all(f["status"] == "ok" for f in meas.manifest["files"])
