"""``invkit tune --fid-cap``: configurations over the reference's FID rank after those under it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from invkit import cli
from invkit.errors import ConfigError
from invkit.metrics import fid_from_features
from invkit.tuning import JOURNAL, OVER_CAP, REFERENCE_TRIAL, TuneConfig, tune

D = 8
TRUTH = np.random.default_rng(0).normal(size=(200, D))


class _Shifted:
    """Rows whose features are the truth's shifted by a per-method offset (FID grows with it) and
    whose PSNR grows with the same offset: the PSNR-best configurations are the FID-worst."""

    def __init__(self, nfe, shift_of):
        self.nfe, self.shift_of, self.chunks = nfe, shift_of, []

    def __call__(self, method, x, names, offset):
        self.chunks.append((method, offset, len(names)))
        s = self.shift_of(method)
        return [{"index": offset + j, "psnr": 20.0 + s, "ssim": 0.5, "nfe": self.nfe if not method.startswith("ddnm") else 30,
                 "seconds": 0.0, "features": list(TRUTH[offset + j] + s)} for j in range(len(names))]  # fmt: skip


def _shift(method):
    # the reference sits at 0.5; sampled configurations at 0.1 .. 1.0 by their method string
    return 0.5 if method == "ddnm-30" else 0.1 + (sum(map(ord, method)) % 10) / 10


CFG = dict(nfe=10, task="sr4", configs=9, rungs=(32, 64, 96), keep=3, fid_cap="ddnm-30")


def test_the_winner_is_the_best_objective_under_the_cap(tmp_path):
    fake = _Shifted(10, _shift)
    doc = tune(TuneConfig(**CFG), tmp_path / "o", restore=fake, truth_features=TRUTH)
    rung0 = doc["rungs"][0]
    cap = rung0["fid"]["cap"]
    assert cap == pytest.approx(fid_from_features(TRUTH[:32] + 0.5, TRUTH[:32]))
    methods = {t["trial"]: t["method"] for t in doc["trials"]}
    for t, score in rung0["scores"].items():
        f = rung0["fid"][t]
        assert f == pytest.approx(fid_from_features(TRUTH[:32] + _shift(methods[int(t)]), TRUTH[:32]))
        # under the cap: the objective; over it: below every objective value, by the excess
        assert score == pytest.approx(20.0 + _shift(methods[int(t)]) if f <= cap else OVER_CAP - (f - cap))
    under = [int(t) for t in rung0["scores"] if rung0["fid"][t] <= cap]
    assert under, "the synthetic space must hold configurations under the cap"
    best_under = max(_shift(methods[t]) for t in under)
    assert _shift(doc["winner"]["method"]) == pytest.approx(best_under)
    assert doc["winner"]["under_cap"] is True and doc["winner"]["fid_fashion"] <= doc["winner"]["cap_fid_fashion"]
    entry = next(iter(doc["preset"].values()))
    assert entry["found_by"]["fid_cap"] == "ddnm-30" and entry["found_by"]["under_cap"] is True
    assert "fid_fashion at most ddnm-30's" in entry["description"]
    # without the cap the PSNR-best (and FID-worst) configuration wins instead
    free = tune(TuneConfig(**{**CFG, "fid_cap": None}), tmp_path / "free", restore=_Shifted(10, _shift))
    assert _shift(free["winner"]["method"]) > best_under


def test_the_reference_is_journalled_once_and_exempt_from_the_budget(tmp_path):
    fake = _Shifted(10, _shift)
    tune(TuneConfig(**CFG), tmp_path / "o", restore=fake, truth_features=TRUTH)
    ref = [c for c in fake.chunks if c[0] == "ddnm-30"]
    assert [(o, n) for _, o, n in ref] == [(0, 32), (32, 32)]  # rung 0, then only rung 1's new images
    records = [json.loads(line) for line in (tmp_path / "o" / JOURNAL).read_text().splitlines()[1:]]
    assert sum(r["trial"] == REFERENCE_TRIAL for r in records) == 2
    assert all(len(row["features"]) == D for r in records for row in r["rows"])
    again = _Shifted(10, _shift)
    tune(TuneConfig(**CFG), tmp_path / "o", restore=again, truth_features=TRUTH)
    assert again.chunks == []  # features came back from the journal


def test_nobody_under_the_cap_gives_the_closest_and_says_so(tmp_path):
    doc = tune(TuneConfig(**CFG), tmp_path / "o", restore=_Shifted(10, lambda m: 0.0 if m == "ddnm-30" else 1.0 + len(m) % 3),
               truth_features=TRUTH)  # fmt: skip
    assert doc["winner"]["under_cap"] is False and doc["winner"]["score"] < OVER_CAP


def test_bad_caps_are_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="at least 32 images"):
        TuneConfig(**{**CFG, "rungs": (8, 24, 64)})
    with pytest.raises(ConfigError, match="needs a recipe"):
        TuneConfig(**{**CFG, "fid_cap": " "})
    fake = _Shifted(10, _shift)
    with pytest.raises(Exception, match="no-such-recipe"):
        tune(TuneConfig(**{**CFG, "fid_cap": "no-such-recipe"}), tmp_path / "o", restore=fake, truth_features=TRUTH)
    with pytest.raises(ConfigError, match="ground truth's features"):
        tune(TuneConfig(**CFG), tmp_path / "p", restore=fake)
    assert fake.chunks == []


def test_cli_refuses_a_cap_on_images_the_classifier_cannot_read(tiny, tmp_path_factory, capsys):
    from PIL import Image

    folder = tmp_path_factory.mktemp("train-images")  # a path naming no test set, which tune refuses
    tmp_path = tmp_path_factory.mktemp("cap-out")
    for i in range(32):
        Image.fromarray(np.full((16, 16), 8 * i, np.uint8), "L").save(folder / f"img{i:02d}.png")
    # 16×16 training images: fid_fashion needs 1×32×32, a one-line error before any restoration
    rc = cli.main(["tune", "--nfe", "4", "--backbone", tiny, "--train-folder", str(folder), "--configs", "2",
                   "--rungs", "32", "--fid-cap", "ddnm-30", "--out", str(tmp_path / "o"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "1×32×32" in err[0]
    assert not (tmp_path / "o" / JOURNAL).exists()
