"""The plugin manager and the name registries it fills.

One :class:`pluggy.PluginManager` named ``"invkit"`` loads every module of the ``invkit``
entry-point group: the built-in plugins (shipped by the ``invkit`` distribution itself, loaded
first) and then third parties in name order. Each registry (operators, backbones, recipes) calls
its hook on every plugin with a ``register`` callback and keeps ``name -> Spec``.

Environment switches:

- ``INVKIT_DISABLE_PLUGINS=name1,name2`` skips those entry points; ``*`` skips every third-party
  plugin (built-ins stay).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import threading
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator

import attrs
import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, UnknownNameError

__all__ = ["Spec", "Registry", "get_plugin_manager", "register_plugin", "unregister_plugin", "plugin_names"]

# The built-in plugins: entry-point name -> module. pyproject.toml declares the same entry points;
# this table lets a source checkout that was never installed still find them.
BUILTIN_PLUGINS: dict[str, str] = {
    "operators": "invkit_operators",
    "recipes": "invkit_recipes",
    "gmm": "invkit_gmm",
    "ddpm": "invkit_ddpm",
    "adm": "invkit_adm",
    "fashion32": "invkit_fashion32",
}

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_registries: list["Registry"] = []


def _disabled() -> set[str]:
    raw = os.environ.get("INVKIT_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _make_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("invkit")
    pm.add_hookspecs(hookspecs)
    disabled = _disabled()
    eps = sorted(entry_points(group="invkit"), key=lambda ep: ep.name)
    builtin_values = set(BUILTIN_PLUGINS.values())
    seen_builtin = {ep.value for ep in eps if ep.value in builtin_values}
    for name, module in BUILTIN_PLUGINS.items():
        if module not in seen_builtin and name not in disabled:
            _register(pm, name, lambda module=module: importlib.import_module(module))
    ordered = [ep for ep in eps if ep.value in builtin_values] + [ep for ep in eps if ep.value not in builtin_values]
    for ep in ordered:
        third_party = ep.value not in builtin_values
        if ep.name in disabled or (third_party and "*" in disabled):
            continue
        if pm.has_plugin(ep.name):
            dist = getattr(ep.dist, "name", "?")
            raise PluginError(
                f"two invkit plugins are named {ep.name!r} (the second from distribution {dist!r}); "
                f"rename one entry point or disable it with INVKIT_DISABLE_PLUGINS={ep.name}"
            )
        _register(pm, ep.name, ep.load)
    pm.check_pending()
    return pm


def _register(pm: pluggy.PluginManager, name: str, load: Callable[[], Any]) -> None:
    try:
        plugin = load()
    except Exception as exc:  # a broken third-party package must not hide which one it is
        raise PluginError(
            f"invkit plugin {name!r} failed to import: {type(exc).__name__}: {exc}. "
            f"Fix or uninstall it, or skip it with INVKIT_DISABLE_PLUGINS={name}"
        ) from exc
    pm.register(plugin, name=name)


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


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object at run time (no packaging needed); returns its name."""
    pm = get_plugin_manager()
    with _lock:
        registered = pm.register(plugin, name=name)
        if registered is None:
            raise PluginError(f"plugin {name!r} is already registered or blocked")
        pm.check_pending()
        _reset_registries()
        return registered


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin` (or any plugin) by name."""
    pm = get_plugin_manager()
    with _lock:
        plugin = pm.get_plugin(name)
        if plugin is None:
            raise UnknownNameError(f"no plugin named {name!r}; loaded: {', '.join(plugin_names())}")
        pm.unregister(plugin)
        _reset_registries()


def reload_plugins() -> None:
    """Forget everything and load plugins again (e.g. after changing INVKIT_DISABLE_PLUGINS)."""
    global _pm
    with _lock:
        _pm = None
        _reset_registries()


def _reset_registries() -> None:
    for reg in _registries:
        reg._specs = None


@attrs.frozen
class Spec:
    """One registered thing: its name, the factory that builds it, a description, the plugin."""

    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str
    meta: dict[str, Any] = attrs.field(factory=dict)

    def build(self, kind: str, **params: Any) -> Any:
        """Call the factory, turning a bad keyword set into a :class:`ConfigError` that lists the
        accepted parameters."""
        try:
            sig = inspect.signature(self.factory)
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
        return self.factory(**params)


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """Name → :class:`Spec` for one kind of thing, filled from one hook."""

    def __init__(self, kind: str, hook: str):
        self.kind = kind
        self.hook = hook
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
                plugin_name = impl.plugin_name

                def register(
                    name: str,
                    factory: Callable[..., Any],
                    *,
                    description: str | None = None,
                    _plugin: str = plugin_name,
                    **meta: Any,
                ) -> None:
                    if not isinstance(name, str) or not name:
                        raise PluginError(f"plugin {_plugin!r} registered a {self.kind} with an invalid name {name!r}")
                    if not callable(factory):
                        raise PluginError(f"plugin {_plugin!r}: {self.kind} {name!r} needs a callable factory")
                    if name in specs:
                        other = specs[name].plugin
                        raise PluginError(
                            f"{self.kind} {name!r} is registered twice: by plugin {other!r} and by plugin "
                            f"{_plugin!r}; uninstall one or disable it with INVKIT_DISABLE_PLUGINS={_plugin}"
                        )
                    specs[name] = Spec(name, factory, description or _first_line(factory), _plugin, dict(meta))

                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(
                        f"plugin {plugin_name!r} failed in {self.hook}: {type(exc).__name__}: {exc}"
                    ) from exc
            self._specs = specs
            return specs

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


operators_registry = Registry("operator", "invkit_register_operators")
backbones_registry = Registry("backbone", "invkit_register_backbones")
recipes_registry = Registry("recipe", "invkit_register_recipes")
