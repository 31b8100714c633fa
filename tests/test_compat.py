"""Moved names keep working for one release, with a DeprecationWarning; the new homes are silent."""

from __future__ import annotations

import importlib
import warnings

import pytest

import invkit


def test_functions_are_not_shadowed_by_modules():
    # the modules were renamed, so importing anything cannot rebind the package functions
    importlib.import_module("invkit.models")
    importlib.import_module("invkit.sampling")
    assert callable(invkit.backbone) and callable(invkit.recipe)
    assert invkit.backbone.__module__ == "invkit" and invkit.recipe.__module__ == "invkit"


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("invkit.backbone", "NetBackbone", "invkit.models"),
        ("invkit.backbone", "Backbone", "invkit.models"),
        ("invkit.recipe", "Recipe", "invkit.sampling"),
        ("invkit.recipe", "travel_schedule", "invkit.plan"),
        ("invkit.guidance", "GenStep", "invkit.plan"),
        ("invkit.guidance", "Context", "invkit.plan"),
    ],
)
def test_old_paths_warn_and_give_the_same_object(old, name, new):
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} is deprecated"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)
    assert callable(invkit.backbone)  # still the function after importing the alias


def test_from_import_of_old_path_warns():
    with pytest.warns(DeprecationWarning):
        from invkit.backbone import NetBackbone  # noqa: F401


def test_preset_tasks_renamed():
    import invkit_recipes

    with pytest.warns(DeprecationWarning, match="PRESET_TASKS"):
        assert invkit_recipes.TASKS == invkit_recipes.PRESET_TASKS


def test_new_homes_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from invkit.models import NetBackbone  # noqa: F401
        from invkit.plan import Context, GenStep  # noqa: F401
        from invkit.sampling import Recipe  # noqa: F401

        assert invkit.GenStep is GenStep and invkit.Recipe is Recipe


def test_unknown_attribute_is_attribute_error():
    with pytest.raises(AttributeError):
        importlib.import_module("invkit.guidance").NoSuchThing  # noqa: B018
