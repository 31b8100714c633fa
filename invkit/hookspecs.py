"""The hooks a plugin implements (one module, as pytest keeps its hook specifications).

A plugin is any module (or object) with functions decorated by :data:`invkit.hookimpl`. Each hook
receives a ``register`` callback and calls it once per thing it provides:

    from invkit import hookimpl

    @hookimpl
    def invkit_register_operators(register):
        register("shift", Shift, description="cyclic shift by one pixel", example=shift_example)

Third parties ship such a module and name it in ``[project.entry-points.invkit]``. ``register``
accepts only the keywords each hook documents: a misspelled one fails the plugin. Keep the
module light (import heavy submodules inside the hook functions): ``invkit --help`` imports every
plugin to list their commands.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("invkit")
hookimpl = pluggy.HookimplMarker("invkit")


@hookspec
def invkit_register_operators(register):  # type: ignore[no-untyped-def]
    """Register operators: ``register(name, factory, *, description=None, example=None)``.

    ``factory(**params)`` builds the operator. ``example(rng)`` takes a ``numpy.random.Generator``
    and returns ``(operator, in_shape)``: an operator built with random valid parameters and a
    per-sample input shape it accepts. The property-test suite runs on every registered operator
    through ``example``; an operator registered without one fails that suite.
    """


@hookspec
def invkit_register_backbones(register):  # type: ignore[no-untyped-def]
    """Register backbones: ``register(name, factory, *, description=None, checkpoint=None, url=None,
    params=None, arch_aliases=())``.

    ``factory(checkpoint=None, device=None, dtype=None, **params)`` returns a Backbone. Accepted
    keywords: ``checkpoint`` (file name), ``url`` (where to get it), ``params`` (parameter count),
    ``arch_aliases`` (other identifiers of the architecture found in older checkpoint metadata,
    e.g. a class path). Any other keyword fails the registering plugin.
    """


@hookspec
def invkit_register_recipes(register):  # type: ignore[no-untyped-def]
    """Register recipe presets: ``register(name, factory, *, description=None, nfe=None, tasks=None)``.

    ``factory(task=None, **overrides)`` returns a :class:`invkit.Recipe`.
    """


@hookspec
def invkit_register_commands(register):  # type: ignore[no-untyped-def]
    """Register ``invkit`` sub-commands: ``register(name, module, *, help)``.

    ``module`` is a module path string such as ``"my_pkg.cli"`` (imported only when the command
    runs, so ``invkit --help`` stays fast: keep this hook free of heavy imports) or an object. It
    provides ``add_arguments(parser, name)`` and ``run(args) -> int``. ``help`` is the one-line
    summary shown by ``invkit --help``. A name already taken by a core command or another plugin
    fails the registering plugin.
    """


@hookspec
def invkit_register_benchmarks(register):  # type: ignore[no-untyped-def]
    """Register ``invkit bench`` benchmarks: ``register(name, module, *, help)``, as
    :func:`invkit_register_commands`."""


@hookspec
def invkit_register_metrics(register):  # type: ignore[no-untyped-def]
    """Register feature extractors for Fréchet distances: ``register(name, load, *, description=None,
    net=None, dim=None, shape=None, weights=None)``.

    ``load(weights=None, device=None)`` returns an ``nn.Module`` in eval mode whose
    ``features(x)`` maps images of per-sample ``shape`` (e.g. ``(1, 32, 32)``) in ``[-1, 1]`` to
    ``(N, dim)`` features. ``net`` is the ``"module:Class"`` path of the network class and
    ``weights`` the default weights file (both informational). ``invkit.metrics`` finds
    ``"fashion"`` here.
    """
