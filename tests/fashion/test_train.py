"""``invkit train``: a tiny DDPM run, bit-identical resume, strict export; the classifier trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import invkit
from invkit.cli import main
from invkit_ddpm.train import DDPMTrainConfig, DDPMTrainer
from invkit.data import fashion_mnist
from invkit.errors import CheckpointError, ConfigError, MissingFileError
from invkit.metrics import classifier_accuracy, load_fashion_classifier

TINY = ["--ch", "32", "--ch-mult", "1,2", "--res-blocks", "1", "--attn", "none", "--batch-size", "3", "--warmup", "2", "--ema", "0.9"]


def train(out: Path, data: Path, *extra: str) -> int:
    return main(["train", "--out", str(out), "--data-dir", str(data), "--no-progress", *TINY, *extra])


def load(out: Path) -> dict:
    return torch.load(out / "ckpt.pt", weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert torch.equal(a["generator"], b["generator"]) and a["step"] == b["step"]


def test_resume_is_bit_identical_and_export_loads_strictly(tmp_path: Path, fake_fashion: Path) -> None:
    full, split = tmp_path / "full", tmp_path / "split"
    assert train(full, fake_fashion, "--steps", "4", "--save-every", "2") == 0
    assert train(split, fake_fashion, "--steps", "2", "--save-every", "2") == 0
    first = load(split)
    assert first["step"] == 2
    assert train(split, fake_fashion, "--steps", "4", "--resume", "--export", str(tmp_path / "e.safetensors")) == 0
    a, b = load(full), load(split)
    assert_same_state(a, b)
    # training changed the weights, and the EMA differs from the raw weights
    assert any(not torch.equal(first["model"][k], b["model"][k]) for k in b["model"])
    assert any(not torch.equal(b["ema"][k], b["model"][k]) for k in b["model"] if b["model"][k].is_floating_point())

    manifest = json.loads((split / "manifest.json").read_text())
    assert manifest["step"] == 4 and manifest["config"]["ch_mult"] == [1, 2]
    assert manifest["versions"]["torch"] == torch.__version__ and manifest["data"]["n"] == 64
    assert [h["step"] for h in manifest["history"]] == [2, 4]

    meta = json.loads((tmp_path / "e.json").read_text())
    assert meta["training"]["step"] == 4 and meta["schedule"] == {"name": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02}
    exported = load_file(str(tmp_path / "e.safetensors"))
    assert all(torch.equal(exported[k], b["ema"][k].float()) for k in b["ema"])
    model = invkit.backbone("ddpm", checkpoint=tmp_path / "e.safetensors", **meta["model"])
    assert model.image_size == 32 and model.channels == 1
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    eps = model(x, torch.tensor([0, 999]))
    assert eps.shape == x.shape and torch.isfinite(eps).all()


def test_training_reduces_the_loss(tmp_path: Path, fake_fashion: Path) -> None:
    images, _ = fashion_mnist("train", root=fake_fashion)
    config = DDPMTrainConfig(steps=0, batch_size=8, lr=2e-3, warmup=0, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=())
    before = torch.random.get_rng_state()
    trainer = DDPMTrainer(config, images, tmp_path)
    losses = [trainer.train_step() for _ in range(12)]
    assert sum(losses[-4:]) < sum(losses[:4])
    assert torch.equal(torch.random.get_rng_state(), before), "training touched torch's global RNG"


def test_resume_refuses_architecture_change_and_missing_checkpoint(tmp_path: Path, fake_fashion: Path) -> None:
    with pytest.raises(MissingFileError):
        DDPMTrainer.resume(tmp_path / "none", torch.zeros(1, 1, 32, 32))
    assert train(tmp_path / "r", fake_fashion, "--steps", "1") == 0
    images, _ = fashion_mnist("train", root=fake_fashion)
    with pytest.raises(ConfigError, match="ch"):
        DDPMTrainer.resume(tmp_path / "r", images, overrides={"ch": 64})
    # the CLI refuses to overwrite a run without --resume (one line, exit status 2)
    assert train(tmp_path / "r", fake_fashion, "--steps", "2") == 2


def test_init_from_warm_starts_from_an_export_and_keeps_the_lineage(tmp_path: Path, fake_fashion: Path) -> None:
    src = tmp_path / "src.safetensors"
    assert train(tmp_path / "a", fake_fashion, "--steps", "3", "--export", str(src)) == 0
    weights = load_file(str(src))
    # a warm-started run begins at the exported EMA weights, for both its net and its EMA
    images, _ = fashion_mnist("train", root=fake_fashion)
    config = DDPMTrainConfig(steps=0, batch_size=3, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), warmup=2, ema=0.9)
    trainer = DDPMTrainer(config, images, tmp_path / "probe")
    trainer.init_weights(src)
    assert all(torch.equal(trainer.net.state_dict()[k], weights[k]) for k in weights)
    assert all(torch.equal(trainer.ema.state_dict()[k], weights[k]) for k in weights)
    assert trainer.init_from["step"] == 3 and trainer.total_steps == 3

    out = tmp_path / "b"
    assert train(out, fake_fashion, "--steps", "2", "--seed", "1", "--init-from", str(src)) == 0
    assert train(out, fake_fashion, "--steps", "4", "--resume", "--export", str(tmp_path / "b.safetensors")) == 0
    meta = json.loads((tmp_path / "b.json").read_text())["training"]
    assert meta["step"] == 4 and meta["total_steps"] == 7
    assert meta["init_from"]["step"] == 3 and len(meta["init_from"]["sha256"]) == 64
    assert json.loads((out / "manifest.json").read_text())["total_steps"] == 7
    # resuming kept the lineage and moved on from the warm start, not from a fresh init
    assert any(not torch.equal(load(out)["model"][k], weights[k]) for k in weights)

    # typed refusals: wrong architecture, missing file, warm start combined with --resume
    with pytest.raises(CheckpointError):
        DDPMTrainer(DDPMTrainConfig(steps=0, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=()), images, tmp_path / "c").init_weights(src)
    with pytest.raises(MissingFileError):
        trainer.init_weights(tmp_path / "none.safetensors")
    assert train(out, fake_fashion, "--steps", "5", "--resume", "--init-from", str(src)) == 2


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        DDPMTrainConfig(ema=1.0)
    with pytest.raises(ConfigError, match="divisible"):
        DDPMTrainConfig(ch_mult=(1, 2, 2, 2, 2, 2, 2))
    c = DDPMTrainConfig(lr=1e-3, warmup=10)
    assert c.lr_at(0) == pytest.approx(1e-4) and c.lr_at(9) == pytest.approx(1e-3) and c.lr_at(10_000) == 1e-3


def test_classifier_training_is_reproducible_and_learns(tmp_path: Path, fake_fashion: Path) -> None:
    args = ["train", "--what", "classifier", "--data-dir", str(fake_fashion), "--epochs", "8", "--batch-size", "16", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    wa = load_file(str(tmp_path / "a" / "classifier.safetensors"))
    wb = load_file(str(tmp_path / "b" / "classifier.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    net = load_fashion_classifier(tmp_path / "a" / "classifier.safetensors")
    x, y = fashion_mnist("test", root=fake_fashion)
    acc = classifier_accuracy(net, x, y)
    assert acc > 0.9
    info = json.loads((tmp_path / "a" / "classifier.json").read_text())
    assert info["test_accuracy"] == pytest.approx(acc)


def test_exports_name_their_backbone_and_old_exports_still_load(tmp_path: Path, fake_fashion: Path) -> None:
    from invkit.checkpoint import backbone_from_export

    src = tmp_path / "e.safetensors"
    assert train(tmp_path / "run", fake_fashion, "--steps", "1", "--export", str(src)) == 0
    meta = json.loads(src.with_suffix(".json").read_text())
    assert meta["backbone"] == "ddpm" and "arch" not in meta
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["net"]["backbone"] == "ddpm"
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    eps = backbone_from_export(src)(x, 10)
    # an export written before backbone names (a class path under "arch") loads the same weights
    old = dict(meta, arch="invkit_ddpm.model.DDPMUNet")
    del old["backbone"]
    (tmp_path / "old.safetensors").write_bytes(src.read_bytes())
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert torch.equal(backbone_from_export(tmp_path / "old.safetensors")(x, 10), eps)
    (tmp_path / "old.json").write_text(json.dumps(dict(old, arch="somewhere.Else")))
    with pytest.raises(CheckpointError, match="'somewhere.Else' is not known to any loaded backbone plugin"):
        backbone_from_export(tmp_path / "old.safetensors")
    (tmp_path / "old.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable JSON config"):
        backbone_from_export(tmp_path / "old.safetensors")
    with pytest.raises(MissingFileError, match="no config next to"):
        backbone_from_export(tmp_path / "run" / "ckpt.pt")
