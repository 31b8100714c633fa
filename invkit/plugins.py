"""The plugin manager and the name registries it fills.

One :class:`pluggy.PluginManager` named ``"invkit"`` loads every module of the ``invkit``
entry-point group: first the built-in plugins (the entry points of the ``invkit`` distribution
itself, declared once in its ``pyproject.toml``), then third parties in name order. Each registry
(operators, backbones, recipes, commands, benchmarks, metrics) calls its hook on every plugin with
a ``register`` callback and keeps ``name -> Spec``.

A plugin that fails to import, implements a hook with a wrong signature or a misspelled name, or
registers a name that another plugin already holds does not stop invkit: it is reported once with
a :class:`~invkit.errors.PluginWarning` (naming the distribution, the entry point and the fix),
listed as failed by ``invkit plugins``, and everything else keeps working.

Environment switches:

- ``INVKIT_DISABLE_PLUGINS=name1,name2`` skips those entry points; ``*`` skips every third-party
  plugin (built-ins stay).
- ``INVKIT_STRICT_PLUGINS=1`` makes every plugin failure a :class:`~invkit.errors.PluginError`
  (the test suite sets it, so a broken built-in fails loudly).

Why this module is long (~590 lines): loading plugins, reporting their failures and the
registries filled from their hooks are one mechanism — a registry's load is where a plugin's hook
runs and can fail, so the failure policy (warn once, strict mode, duplicate names) and the
registries share the manager's state and lock.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import os
import threading
import warnings
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from typing import Any, Callable, Iterator

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, PluginWarning, UnknownNameError

__all__ = [
    "Spec",
    "Registry",
    "PluginInfo",
    "get_plugin_manager",
    "register_plugin",
    "unregister_plugin",
    "reload_plugins",
    "plugin_names",
    "plugin_infos",
    "record_failure",
    "strict",
    "disabled_provider",
    "resolve_target",
    "lazy_attributes",
    "deprecated_command_module",
    "operators_registry",
    "backbones_registry",
    "recipes_registry",
    "commands_registry",
    "benchmarks_registry",
    "metrics_registry",
]

#: the distribution whose entry points are the built-in plugins
CORE_DIST = "invkit"

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_registries: list["Registry"] = []
_infos: dict[str, "PluginInfo"] = {}
_failures: dict[str, list[str]] = {}
_warned: set[str] = set()


# dataclasses, not attrs, in this module: it is on the path of `invkit --help`, and attrs costs
# more to import than the rest of that path together
@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """What invkit knows about one plugin: where it comes from and whether it loaded."""

    name: str
    dist: str | None = None
    version: str | None = None
    value: str | None = None
    builtin: bool = False
    status: str = "loaded"  # "loaded", "disabled" or "failed"

    def where(self) -> str:
        """``distribution 'x', entry point name = module`` (or "registered at run time")."""
        if self.value is None:
            return "registered at run time with invkit.plugins.register_plugin"
        return f"distribution {self.dist or '?'!r}, entry point {self.name} = {self.value}"


class _StrictFailure(PluginError):
    """A plugin failure made fatal by INVKIT_STRICT_PLUGINS (passed through the registries as is)."""


def _disabled() -> set[str]:
    raw = os.environ.get("INVKIT_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def strict() -> bool:
    """Whether ``INVKIT_STRICT_PLUGINS`` makes plugin failures fatal."""
    return os.environ.get("INVKIT_STRICT_PLUGINS", "").strip().lower() not in ("", "0", "false", "no")


def _fix(name: str) -> str:
    if name in _infos and _infos[name].value is None:
        return "fix it, or remove it with invkit.plugins.unregister_plugin"
    return f"fix or uninstall it, or skip it with INVKIT_DISABLE_PLUGINS={name}"


def record_failure(plugin: str, problem: str) -> None:
    """Report that ``plugin`` failed (``problem``: what went wrong, one line).

    Raises :class:`PluginError` under ``INVKIT_STRICT_PLUGINS=1``; otherwise warns once per
    distinct failure and lists the plugin as failed in ``invkit plugins``.
    """
    info = _infos.get(plugin, PluginInfo(plugin))
    text = f"invkit plugin {plugin!r} ({info.where()}) {problem}; {_fix(plugin)}".replace("\n", " ")
    if strict():
        raise _StrictFailure(text)
    with _lock:
        if text not in _failures.setdefault(plugin, []):
            _failures[plugin].append(text)
        first = text not in _warned
        _warned.add(text)
    if first:
        warnings.warn(text, PluginWarning, stacklevel=3)


def _entry_points() -> list:
    eps = list(entry_points(group="invkit"))
    try:
        distribution(CORE_DIST)
    except PackageNotFoundError:
        raise PluginError(
            "invkit is not installed, so its built-in plugins (declared as entry points in pyproject.toml) "
            "cannot be found: run `pip install -e .` in the checkout (PYTHONPATH alone is not enough)"
        ) from None
    return eps


def _dist(ep: Any) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _make_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("invkit")
    pm.add_hookspecs(hookspecs)
    disabled = _disabled()
    _infos.clear()
    _failures.clear()
    eps = _entry_points()
    builtin = sorted((ep for ep in eps if _dist(ep)[0] == CORE_DIST), key=lambda ep: ep.name)
    third = sorted((ep for ep in eps if _dist(ep)[0] != CORE_DIST), key=lambda ep: ep.name)
    for ep in builtin + third:
        dist, version = _dist(ep)
        is_builtin = dist == CORE_DIST
        if ep.name in _infos:
            other = _infos[ep.name]
            _warn_duplicate_entry_point(ep, other)
            continue
        info = PluginInfo(ep.name, dist, version, ep.value, is_builtin)
        if ep.name in disabled or (not is_builtin and "*" in disabled):
            _infos[ep.name] = dataclasses.replace(info, status="disabled")
            continue
        _infos[ep.name] = info
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken package must not hide which one it is
            record_failure(ep.name, f"failed to import: {type(exc).__name__}: {exc}")
            continue
        _admit(pm, plugin, ep.name)
    return pm


def _warn_duplicate_entry_point(ep: Any, other: PluginInfo) -> None:
    dist = _dist(ep)[0]
    text = (
        f"two invkit plugins are named {ep.name!r}: {other.where()} and distribution {dist!r} "
        f"({ep.value}); the second is skipped. Rename one entry point or uninstall one distribution"
    )
    if strict():
        raise PluginError(text)
    if text not in _warned:
        _warned.add(text)
        warnings.warn(text, PluginWarning, stacklevel=3)


def _admit(pm: pluggy.PluginManager, plugin: object, name: str) -> bool:
    """Register ``plugin`` after checking its hooks; a bad one is recorded as failed."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        if pm.is_registered(plugin):  # pluggy may have added some of its hooks before failing
            pm.unregister(plugin)
        detail = " ".join(str(exc).split())
        record_failure(name, f"has a hook whose signature does not match invkit's hookspec ({detail}); "
                             f"every invkit hook takes exactly one argument, `register`")
        return False
    except ValueError as exc:  # pluggy: the object or the name is already registered
        record_failure(name, f"could not be registered: {exc}")
        return False
    known = [n for n in dir(hookspecs) if n.startswith("invkit_")]
    unknown = [hc.name for hc in pm.get_hookcallers(plugin) or [] if hc.spec is None]
    if unknown:
        pm.unregister(plugin)
        hints = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, known, n=1, cutoff=0.6)
            hints.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        record_failure(name, f"implements unknown hook(s) {', '.join(hints)}; invkit's hooks are {', '.join(known)}")
        return False
    return True


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading plugins on first use."""
    global _pm
    with _lock:
        if _pm is None:
            _pm = _make_manager()
        return _pm


def plugin_names() -> list[str]:
    """Names of the loaded plugins, in load order."""
    return [name for name, _ in get_plugin_manager().list_name_plugin()]


def plugin_infos() -> list[dict[str, Any]]:
    """Every plugin invkit found, loaded or not: name, distribution, version, entry point, status,
    the hooks it implements and the failures recorded for it (after every registry has loaded)."""
    pm = get_plugin_manager()
    for reg in _registries:
        reg._load()
    rows = []
    names = list(_infos) + [n for n, _ in pm.list_name_plugin() if n not in _infos]
    for name in names:
        info = _infos.get(name, PluginInfo(name))
        plugin = pm.get_plugin(name)
        hooks = sorted(hc.name for hc in pm.get_hookcallers(plugin) or []) if plugin is not None else []
        failures = list(_failures.get(name, []))
        status = "failed" if failures else ("loaded" if plugin is not None else info.status)
        rows.append(
            dict(name=name, distribution=info.dist, version=info.version, entry_point=info.value,
                 builtin=info.builtin, status=status, hooks=hooks, errors=failures)
        )
    return rows


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object at run time (no packaging needed); returns its name.

    Its hooks are checked as an installed plugin's are: a wrong signature or an unknown hook name
    is a :class:`PluginError` under ``INVKIT_STRICT_PLUGINS=1`` and a warning otherwise.
    """
    pm = get_plugin_manager()
    with _lock:
        name = name or pm.get_canonical_name(plugin)
        if pm.has_plugin(name) or name in _failures:
            raise PluginError(f"plugin {name!r} is already registered; unregister it first or pick another name")
        _infos.setdefault(name, PluginInfo(name))
        _admit(pm, plugin, name)
        _reset_registries()
        return name


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin` (or any plugin) by name."""
    pm = get_plugin_manager()
    with _lock:
        plugin = pm.get_plugin(name)
        if plugin is None and name not in _failures:
            raise UnknownNameError(f"no plugin named {name!r}; loaded: {', '.join(plugin_names())}")
        if plugin is not None:
            pm.unregister(plugin)
        _failures.pop(name, None)
        if name in _infos and _infos[name].value is None:
            del _infos[name]
        _reset_registries()


def reload_plugins() -> None:
    """Forget everything and load plugins again (e.g. after changing INVKIT_DISABLE_PLUGINS)."""
    global _pm
    with _lock:
        _pm = None
        _infos.clear()
        _failures.clear()
        _reset_registries()


def _reset_registries() -> None:
    for reg in _registries:
        reg._specs = None


def disabled_provider(hook: str, name: str) -> str | None:
    """Which disabled or failed plugin would register ``name`` through ``hook``, for error messages.

    Only called on an error path: it imports the disabled entry point's module in isolation (never
    registering it) and collects the names its hook registers. Returns e.g. ``"plugin 'ddpm',
    disabled by INVKIT_DISABLE_PLUGINS"`` or None.
    """
    get_plugin_manager()
    for pname, info in list(_infos.items()):
        if info.value is None or (info.status != "disabled" and pname not in _failures):
            continue
        try:
            ep = next(ep for ep in entry_points(group="invkit") if ep.name == pname and ep.value == info.value)
            impl = getattr(ep.load(), hook, None)
            if impl is None:
                continue
            seen: list[str] = []
            impl(register=lambda n, *a, **k: seen.append(n))
        except Exception:  # a plugin broken enough to be disabled may fail here too
            continue
        if name in seen:
            why = (
                f"disabled by INVKIT_DISABLE_PLUGINS; remove {pname!r} from it"
                if info.status == "disabled"
                else "which failed to load (see `invkit plugins`)"
            )
            return f"plugin {pname!r} ({info.where()}), {why}"
    return None


def resolve_target(target: Any, what: str) -> Any:
    """A registered ``"package.module"`` or ``"package.module:attr"`` string → the object (imported now)."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{what}: cannot import {target!r}: {type(exc).__name__}: {exc}") from exc
    return obj


@dataclasses.dataclass(frozen=True)
class Spec:
    """One registered thing: its name, the factory that builds it, a description, the plugin."""

    name: str
    factory: Any
    description: str
    plugin: str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def build(self, kind: str, **params: Any) -> Any:
        """Call the factory, turning a bad keyword set into a :class:`ConfigError` that lists the
        accepted parameters."""
        factory = resolve_target(self.factory, f"{kind} {self.name!r}")
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            try:
                sig.bind(**params)
            except TypeError as exc:
                accepted = ", ".join(
                    str(p) for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                )
                raise ConfigError(f"{kind} {self.name!r}: {exc}; it accepts ({accepted})") from None
        return factory(**params)


def _first_line(obj: Any) -> str:
    if isinstance(obj, str):
        return ""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _callable(kind: str, name: str, factory: Any) -> str | None:
    return None if callable(factory) else f"{kind} {name!r} needs a callable factory, got {type(factory).__name__}"


def _module_target(kind: str, name: str, target: Any) -> str | None:
    """A command or benchmark: a module path string (imported only when it runs) or an object with
    ``add_arguments(parser, name)`` and ``run(args)``."""
    if isinstance(target, str) and target and all(p.isidentifier() for p in target.replace(":", ".").split(".")):
        return None
    if not isinstance(target, str) and callable(getattr(target, "run", None)):
        return None
    return f"{kind} {name!r} needs a module path string (e.g. 'my_pkg.cli') or an object with run(args), got {target!r}"


class Registry:
    """Name → :class:`Spec` for one kind of thing, filled from one hook.

    ``meta_keys`` are the keyword arguments ``register`` accepts besides ``description``: a
    misspelled one (``exmaple=``) fails the registering plugin instead of being kept silently.
    """

    def __init__(
        self,
        kind: str,
        hook: str,
        meta_keys: tuple[str, ...] = (),
        check: Callable[[str, str, Any], str | None] = _callable,
        description_key: str = "description",
    ):
        self.kind = kind
        self.hook = hook
        self.meta_keys = tuple(meta_keys)
        self.check = check
        self.description_key = description_key
        self._specs: dict[str, Spec] | None = None
        _registries.append(self)

    def _load(self) -> dict[str, Spec]:
        with _lock:
            if self._specs is not None:
                return self._specs
            pm = get_plugin_manager()
            specs: dict[str, Spec] = {}
            order = {name: i for i, (name, _) in enumerate(pm.list_name_plugin())}
            impls = sorted(getattr(pm.hook, self.hook).get_hookimpls(), key=lambda h: order.get(h.plugin_name, 1 << 30))
            for impl in impls:
                own = self._call(impl.plugin_name, impl.function, specs)
                if own is not None:
                    specs.update(own)
            self._specs = specs
            return specs

    def _call(self, plugin: str, function: Callable[..., Any], specs: dict[str, Spec]) -> dict[str, Spec] | None:
        """Run one plugin's hook; its registrations count only if the whole hook succeeds."""
        own: dict[str, Spec] = {}
        accepted = (self.description_key, *self.meta_keys)

        def register(name: str, factory: Any = None, **kw: Any) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"registered a {self.kind} with an invalid name {name!r}")
            unknown = [k for k in kw if k not in accepted]
            if unknown:
                hints = []
                for k in unknown:
                    close = difflib.get_close_matches(k, accepted, n=1, cutoff=0.6)
                    hints.append(f"{k}=" + (f" (did you mean {close[0]}=?)" if close else ""))
                raise PluginError(
                    f"register({name!r}, ...) for a {self.kind} got unknown keyword(s) {', '.join(hints)}; "
                    f"it accepts {', '.join(accepted)}"
                )
            problem = self.check(self.kind, name, factory)
            if problem:
                raise PluginError(problem)
            if name in own:
                raise PluginError(f"registered the {self.kind} {name!r} twice")
            if name in specs:
                # the first plugin keeps the name; only this registration is dropped
                record_failure(
                    plugin,
                    f"clashes with another plugin: {self.kind} {name!r} is registered twice: by plugin "
                    f"{specs[name].plugin!r} and by plugin {plugin!r}; the first one is kept",
                )
                return
            description = kw.pop(self.description_key, None)
            own[name] = Spec(name, factory, description or _first_line(factory), plugin, dict(kw))

        try:
            function(register=register)
        except _StrictFailure:
            raise
        except PluginError as exc:
            record_failure(plugin, f"failed in {self.hook}: {exc}")
            return None
        except Exception as exc:
            record_failure(plugin, f"failed in {self.hook}: {type(exc).__name__}: {exc}")
            return None
        return own

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._load()))

    def __len__(self) -> int:
        return len(self._load())

    def names(self) -> list[str]:
        """The registered names, sorted (loads the plugins on first use)."""
        return sorted(self._load())

    def specs(self) -> dict[str, Spec]:
        """``name → Spec`` for every registered name, sorted by name."""
        return dict(sorted(self._load().items()))

    def get(self, name: str) -> Spec:
        """The ``Spec`` registered as ``name``.

        Args:
            name: a registered name.

        Returns:
            Its ``Spec`` (factory, description, providing plugin, meta such as ``example``).

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists the closest names.
        """
        specs = self._load()
        if not isinstance(name, str):
            raise UnknownNameError(f"{self.kind} name must be a string, got {type(name).__name__}")
        if name in specs:
            return specs[name]
        provider = disabled_provider(self.hook, name)
        if provider:
            raise UnknownNameError(f"{self.kind} {name!r} is provided by {provider}")
        close = difflib.get_close_matches(name, list(specs), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Registered: {', '.join(sorted(specs)) or '(none)'}"
        )

    def build(self, name: str, **params: Any) -> Any:
        """Build the thing registered as ``name``: ``get(name).build(kind, **params)``.

        Args:
            name: a registered name.
            **params: keyword arguments for its factory.

        Returns:
            What the factory returns (an ``Operator``, a ``Backbone``, a ``Recipe``).

        Raises:
            UnknownNameError: ``name`` is not registered.
            ConfigError: the factory does not take one of ``params``; the message lists the
                parameters it accepts.
        """
        return self.get(name).build(self.kind, **params)


operators_registry = Registry("operator", "invkit_register_operators", ("example",))
backbones_registry = Registry("backbone", "invkit_register_backbones", ("checkpoint", "url", "params", "arch_aliases"))
recipes_registry = Registry("recipe", "invkit_register_recipes", ("nfe", "tasks"))
commands_registry = Registry("command", "invkit_register_commands", (), _module_target, "help")
benchmarks_registry = Registry("benchmark", "invkit_register_benchmarks", (), _module_target, "help")
metrics_registry = Registry("metric", "invkit_register_metrics", ("net", "dim", "shape", "weights"))


def lazy_attributes(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports ``table[name]`` (a submodule, relative as
    ``".nets"`` or absolute) on first access of ``name``: how a plugin keeps its entry module light
    (``invkit --help`` imports every plugin) while its public names stay importable from it."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__


def deprecated_command_module(module: str, kind: str, name: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a core command module that moved into a plugin: it serves the
    names of the module the plugin registered for ``name`` (``kind`` "command" or "benchmark"),
    with a :class:`DeprecationWarning`."""
    from ._compat import _warn

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        registry = commands_registry if kind == "command" else benchmarks_registry
        try:
            target = registry.get(name).factory
        except UnknownNameError as exc:
            raise AttributeError(f"{module}.{attr}: {exc}") from None
        mod = resolve_target(target, f"{kind} {name!r}")
        value = getattr(mod, attr)
        _warn(f"{module}.{attr}", f"{getattr(mod, '__name__', target)}.{attr}")
        return value

    return __getattr__
