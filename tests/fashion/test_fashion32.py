"""The shipped fashion32 backbone and FID classifier: strict loading, shapes, finite outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import invkit
from invkit.models import NetBackbone
from invkit.errors import MissingFileError
from invkit.metrics import fid_fashion, load_fashion_classifier
from invkit.schedule import NoiseSchedule
from invkit_fashion32 import CLASSIFIER, CONFIG, WEIGHTS
from invkit_fashion32.classifier import FashionClassifier


def test_fashion32_loads_strictly_and_predicts_finite_eps() -> None:
    model = invkit.backbone("fashion32")
    assert isinstance(model, NetBackbone)
    assert model.image_size == 32 and model.channels == 1 and model.schedule == NoiseSchedule.linear(1000)
    shipped = load_file(str(WEIGHTS))
    state = model.net.state_dict()
    assert shipped.keys() == state.keys() and all(torch.equal(shipped[k], state[k]) for k in state)
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eps = model(x, torch.tensor([0, 500, 999]))
    assert eps.shape == x.shape and eps.dtype == x.dtype and torch.isfinite(eps).all()


def test_fashion32_options_and_size() -> None:
    meta = json.loads(CONFIG.read_text())
    assert WEIGHTS.stat().st_size <= 20 * 2**20
    assert invkit.backbones_registry.specs()["fashion32"].meta["params"] == meta["params"]
    model = invkit.backbone("fashion32", dtype="float64")
    x = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert model(x, 10).dtype == torch.float64
    with pytest.raises(MissingFileError):
        invkit.backbone("fashion32", checkpoint="/nonexistent/fashion32.safetensors")


def test_fashion32_denoises_a_test_image() -> None:
    # a trained ε-predictor beats the trivial guess ε̂ = 0 (whose MSE is 1) on real data
    from invkit.data import FASHION_MNIST_DIR, fashion_mnist

    if not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist not installed")
    x0 = fashion_mnist("test", limit=16)[0]
    model = invkit.backbone("fashion32")
    g = torch.Generator().manual_seed(0)
    t = torch.full((16,), 300)
    abar = float(model.schedule.abar[300])
    eps = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        pred = model(abar**0.5 * x0 + (1 - abar) ** 0.5 * eps, t)
    assert (pred - eps).pow(2).mean() < 0.5


def test_classifier_weights_load_and_fid_of_identical_sets_is_zero() -> None:
    net = load_fashion_classifier()
    assert isinstance(net, FashionClassifier) and not net.training
    assert CLASSIFIER.stat().st_size < 2 * 2**20
    x = torch.rand(40, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert abs(fid_fashion(x, x)) < 1e-6
    assert fid_fashion(x, -x) > 1e-3


def test_card_eta_grid_is_seeded_and_eta_changes_the_samples(tmp_path) -> None:
    from PIL import Image

    from invkit_fashion32 import card

    model = invkit.backbone("fashion32")
    rows = card.eta_rows(model, [0.0, 1.0, 0.0], n=2, steps=3, seed=5)
    assert rows.shape == (6, 1, 32, 32) and torch.isfinite(rows).all()
    assert torch.equal(rows[0:2], rows[4:6])  # same seed, same η: same samples
    assert not torch.allclose(rows[0:2], rows[2:4])  # η = 1 draws fresh noise each step
    out = tmp_path / "eta.png"
    assert card.main(["--eta-grid", str(out), "--steps", "2", "--seed", "1"]) == 0
    assert Image.open(out).size == (2 * (8 * 34 + 2), 2 * (4 * 34 + 2))  # 8 wide, 4 rows of η
