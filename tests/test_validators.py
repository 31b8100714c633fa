"""The shared attrs validators: typed errors naming the class and field; bools are not numbers."""

from __future__ import annotations

import math

import attrs
import pytest

from invkit.errors import ConfigError, InvalidInputError
from invkit.validators import (
    boolean,
    instance_of,
    nonneg_int,
    nonneg_number,
    one_of,
    optional,
    positive_int,
    positive_number,
    unit_interval,
)


@attrs.frozen
class Knobs:
    flag: bool = attrs.field(default=True, validator=boolean)
    n: int = attrs.field(default=1, validator=positive_int())
    k: int = attrs.field(default=0, validator=nonneg_int())
    s: float = attrs.field(default=0.0, validator=nonneg_number(error=InvalidInputError))
    p: float = attrs.field(default=1.0, validator=positive_number())
    u: float = attrs.field(default=0.5, validator=unit_interval())
    h: float = attrs.field(default=0.5, validator=unit_interval(closed_right=False))
    o: float | None = attrs.field(default=None, validator=optional(unit_interval()))
    mode: str = attrs.field(default="a", validator=one_of(("a", "b")))
    name: str | None = attrs.field(default=None, validator=instance_of(str, "a string", allow_none=True))


def test_defaults_pass():
    Knobs()


@pytest.mark.parametrize(
    ("field", "value", "error", "text"),
    [
        ("flag", 1, ConfigError, "Knobs.flag must be True or False"),
        ("n", 0, ConfigError, "Knobs.n must be an integer >= 1"),
        ("n", True, ConfigError, "Knobs.n must be an integer >= 1"),
        ("n", 2.0, ConfigError, "Knobs.n must be an integer >= 1"),
        ("k", -1, ConfigError, "Knobs.k must be an integer >= 0"),
        ("s", math.nan, InvalidInputError, "Knobs.s must be a finite number >= 0"),
        ("s", -0.1, InvalidInputError, "Knobs.s must be a finite number >= 0"),
        ("p", 0.0, ConfigError, "Knobs.p must be a finite number > 0"),
        ("p", math.inf, ConfigError, "Knobs.p must be a finite number > 0"),
        ("u", 1.5, ConfigError, r"Knobs.u must be a number in [0, 1]"),
        ("u", False, ConfigError, r"Knobs.u must be a number in [0, 1]"),
        ("h", 1.0, ConfigError, r"Knobs.h must be a number in [0, 1)"),
        ("o", -1, ConfigError, r"Knobs.o must be a number in [0, 1]"),
        ("mode", "c", ConfigError, "Knobs.mode must be 'a' or 'b'"),
        ("name", 3, ConfigError, "Knobs.name must be a string, got int"),
    ],
)
def test_bad_values_raise_typed_errors(field, value, error, text):
    with pytest.raises(error) as info:
        Knobs(**{field: value})
    assert text in str(info.value)


def test_accepted_edges():
    Knobs(u=0.0, h=0.0, o=1.0, p=1e-300, s=0, k=0, mode="b", name="x")
