"""The hooks a plugin implements (one module, as pytest keeps its hook specifications).

A plugin is any module (or object) with functions decorated by :data:`invkit.hookimpl`. Each hook
receives a ``register`` callback and calls it once per thing it provides:

    from invkit import hookimpl

    @hookimpl
    def invkit_register_operators(register):
        register("shift", Shift, description="cyclic shift by one pixel", example=shift_example)

Third parties ship such a module and name it in ``[project.entry-points.invkit]``.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("invkit")
hookimpl = pluggy.HookimplMarker("invkit")


@hookspec
def invkit_register_operators(register):  # type: ignore[no-untyped-def]
    """Register operators: ``register(name, factory, *, description=None, example=None, **meta)``.

    ``factory(**params)`` builds the operator. ``example(rng)`` takes a ``numpy.random.Generator``
    and returns ``(operator, in_shape)``: an operator built with random valid parameters and a
    per-sample input shape it accepts. The property-test suite runs on every registered operator
    through ``example``; an operator registered without one fails that suite.
    """


@hookspec
def invkit_register_backbones(register):  # type: ignore[no-untyped-def]
    """Register backbones: ``register(name, factory, *, description=None, **meta)``.

    ``factory(checkpoint=None, device=None, dtype=None, **params)`` returns a Backbone. Useful
    meta keys: ``checkpoint`` (file name), ``url`` (where to get it), ``params`` (parameter count).
    """


@hookspec
def invkit_register_recipes(register):  # type: ignore[no-untyped-def]
    """Register recipe presets: ``register(name, factory, *, description=None, **meta)``.

    ``factory(task=None, **overrides)`` returns a :class:`invkit.Recipe`.
    """
