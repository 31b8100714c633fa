"""The search space: every configuration makes exactly the budget's network calls."""

from __future__ import annotations

import pytest
import torch

import invkit
from invkit.errors import ConfigError
from invkit.evaluation import get_task, image_generators
from invkit.tuning import SearchSpace, method_string, paper_config

from .conftest import tiny_backbone


@pytest.mark.parametrize("nfe", [2, 3, 10, 30])
def test_splits_spend_the_budget_exactly(nfe):
    splits = SearchSpace(nfe).splits()
    assert splits and all((F - 1) + B == nfe and F >= 2 and B >= 1 for F, B in splits)
    assert splits[0][0] == 2 and len({F for F, _ in splits}) == len(splits)


@pytest.mark.parametrize("nfe", [4, 10])
def test_real_network_calls_equal_the_budget(nfe):
    """Run every split, spacing and extreme t0 of the space through the ``ssd`` preset: counted calls = nfe."""
    model = tiny_backbone()
    space = SearchSpace(nfe, t0=(300, 900))
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    op = get_task("sr4").build((1, 16, 16), image_generators(0, [0, 1], "operator"))
    y = op.A(x)
    for F, B in space.splits():
        for spacing in space.spacing:
            for t0 in space.t0:
                config = {"inversion_steps": F, "generation_steps": B, "t0": t0, "inversion_eta": 0.5, "eta": 0.3, "spacing": spacing}
                recipe = invkit.recipe("ssd", task="sr", **config)
                res = recipe.run(model, y, op, generator=torch.Generator().manual_seed(0), return_info=True)
                assert int(res.nfe) == nfe, (config, res.nfe)


def test_sample_is_seeded_distinct_and_starts_with_the_paper():
    space = SearchSpace(10)
    a, b = space.sample(20, seed=3), space.sample(20, seed=3)
    assert a == b and a[0] == paper_config(10) and space.sample(20, seed=4) != a
    assert len({tuple(sorted(c.items())) for c in a}) == 20
    for c in a:
        assert (c["inversion_steps"] - 1) + c["generation_steps"] == 10
        assert c["t0"] in space.t0 and c["spacing"] in space.spacing and 0 <= c["eta"] <= 1 and 0 <= c["inversion_eta"] <= 1


def test_paper_config_matches_the_presets_split():
    assert paper_config(30)["inversion_steps"] == 5 and paper_config(30)["generation_steps"] == 26  # ssd-30: F = 5
    assert paper_config(10)["inversion_steps"] == 2 and paper_config(10)["generation_steps"] == 9


def test_method_string_round_trips_through_eval():
    from invkit.evaluation import parse_method

    c = paper_config(10)
    assert dict(parse_method(method_string("ssd", c)).overrides) == c


@pytest.mark.parametrize(
    "kw, words",
    [({"nfe": 1}, "budget"), ({"nfe": 10, "t0": ()}, "t0"), ({"nfe": 10, "eta": (1.5,)}, "η"),
     ({"nfe": 10, "spacing": ("leading",)}, "spacings")],
)  # fmt: skip
def test_bad_spaces_are_refused(kw, words):
    with pytest.raises(ConfigError, match=words):
        SearchSpace(**kw)


def test_more_configs_than_the_space_holds_is_refused():
    space = SearchSpace(2, t0=(500,), inversion_eta=(0.0,), eta=(0.0, 1.0), spacing=("uniform",))
    assert space.size() == 2
    with pytest.raises(ConfigError, match="holds only 2"):
        space.sample(3, 0)
