"""attrs validators shared by the core and by plugins.

Each validator has the attrs signature ``(instance, attribute, value)`` and raises a typed
:class:`~invkit.errors.InvkitError` (a :class:`~invkit.errors.ConfigError` unless ``error=`` says
otherwise) whose message names the class and field, e.g. ``DA.eta must be a number in [0, 1]``,
so a bad part fails where it is built, not in the middle of a run.
Plugins use them the same way as the core:

    import attrs
    from invkit.validators import unit_interval, boolean

    @attrs.frozen
    class MyGuidance:
        weight: float = attrs.field(default=0.5, validator=unit_interval())
        clamp: bool = attrs.field(default=True, validator=boolean)

Booleans are never accepted as numbers (``True`` is not ``1`` here).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from .errors import ConfigError, InvkitError

__all__ = [
    "boolean",
    "positive_int",
    "nonneg_int",
    "nonneg_number",
    "positive_number",
    "unit_interval",
    "optional",
    "one_of",
    "instance_of",
]

Validator = Callable[[Any, Any, Any], None]


def _field(instance: Any, attribute: Any) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int)


def boolean(instance: Any, attribute: Any, value: Any) -> None:
    """``value`` is ``True`` or ``False`` (not 0/1, not a string).

    Use it directly as a validator: ``attrs.field(default=True, validator=boolean)``.

    Args:
        instance: the attrs instance being built.
        attribute: the attrs attribute (its name goes into the message).
        value: the value to check.

    Raises:
        ConfigError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise ConfigError(f"{_field(instance, attribute)} must be True or False, got {value!r}")


def _checker(ok: Callable[[Any], bool], requirement: str, hint: str, error: type[InvkitError]) -> Validator:
    """A validator raising ``error("<Class>.<field><hint> must be <requirement>, got <value>")``."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if not ok(value):
            raise error(f"{_field(instance, attribute)}{hint} must be {requirement}, got {value!r}")

    return check


def positive_int(hint: str = "", *, error: type[InvkitError] = ConfigError) -> Validator:
    """An integer ``>= 1``; ``hint`` is appended to the field's name (what the field means).

    Args:
        hint: text appended to the field's name in the error message (what the field means).
        error: the ``InvkitError`` subclass raised (default ``ConfigError``).

    Returns:
        An attrs validator ``(instance, attribute, value) -> None``.
    """
    return _checker(lambda v: _is_int(v) and v >= 1, "an integer >= 1", hint, error)


def nonneg_int(hint: str = "", *, error: type[InvkitError] = ConfigError) -> Validator:
    """An integer ``>= 0``.

    Args:
        hint: text appended to the field's name in the error message (what the field means).
        error: the ``InvkitError`` subclass raised (default ``ConfigError``).

    Returns:
        An attrs validator ``(instance, attribute, value) -> None``.
    """
    return _checker(lambda v: _is_int(v) and v >= 0, "an integer >= 0", hint, error)


def nonneg_number(hint: str = "", *, error: type[InvkitError] = ConfigError) -> Validator:
    """A finite real number ``>= 0``.

    Args:
        hint: text appended to the field's name in the error message (what the field means).
        error: the ``InvkitError`` subclass raised (default ``ConfigError``).

    Returns:
        An attrs validator ``(instance, attribute, value) -> None``.
    """
    return _checker(lambda v: _is_number(v) and math.isfinite(v) and v >= 0, "a finite number >= 0", hint, error)


def positive_number(hint: str = "", *, error: type[InvkitError] = ConfigError) -> Validator:
    """A finite real number ``> 0``.

    Args:
        hint: text appended to the field's name in the error message (what the field means).
        error: the ``InvkitError`` subclass raised (default ``ConfigError``).

    Returns:
        An attrs validator ``(instance, attribute, value) -> None``.
    """
    return _checker(lambda v: _is_number(v) and math.isfinite(v) and v > 0, "a finite number > 0", hint, error)


def unit_interval(hint: str = "", *, closed_right: bool = True, error: type[InvkitError] = ConfigError) -> Validator:
    """A number in ``[0, 1]`` (``[0, 1)`` with ``closed_right=False``).

    Args:
        hint: text appended to the error message.
        closed_right: whether 1 itself is allowed.
        error: the ``InvkitError`` subclass raised (default ``ConfigError``).

    Returns:
        An attrs validator ``(instance, attribute, value) -> None``.
    """
    interval = "[0, 1]" if closed_right else "[0, 1)"

    def check(instance: Any, attribute: Any, value: Any) -> None:
        ok = _is_number(value) and 0.0 <= value and (value <= 1.0 if closed_right else value < 1.0)
        if not ok:
            raise error(f"{_field(instance, attribute)} must be a number in {interval}{hint}, got {value!r}")

    return check


def optional(validator: Validator) -> Validator:
    """``None`` or whatever ``validator`` accepts.

    Args:
        validator: the validator applied to values other than ``None``.

    Returns:
        An attrs validator ``(instance, attribute, value) -> None``.
    """

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return check


def one_of(options: Iterable[Any], hint: str = "", *, error: type[InvkitError] = ConfigError) -> Validator:
    """One of a fixed set of values (compared with ``==``).

    Args:
        options: the allowed values.
        hint: text appended to the error message.
        error: the ``InvkitError`` subclass raised (default ``ConfigError``).

    Returns:
        An attrs validator ``(instance, attribute, value) -> None``.
    """
    allowed = tuple(options)

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value not in allowed:
            shown = " or ".join(repr(o) for o in allowed)
            raise error(f"{_field(instance, attribute)} must be {shown}{hint}, got {value!r}")

    return check


def instance_of(
    cls: type | tuple[type, ...], what: str, *, allow_none: bool = False, error: type[InvkitError] = ConfigError
) -> Validator:
    """An instance of ``cls`` (``what`` names the accepted kinds in the message).

    Args:
        cls: the accepted class or tuple of classes.
        what: how the message names the accepted kinds, e.g. ``"an Inverter (DA, DDIM, DDPM)"``.
        allow_none: also accept ``None``.
        error: the ``InvkitError`` subclass raised (default ``ConfigError``).

    Returns:
        An attrs validator ``(instance, attribute, value) -> None``.
    """

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is None and allow_none:
            return
        if not isinstance(value, cls):
            raise error(f"{_field(instance, attribute)} must be {what}, got {type(value).__name__}")

    return check
