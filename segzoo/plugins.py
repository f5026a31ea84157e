"""Plugin discovery: built-ins first, then every ``segzoo`` entry point.

A plugin that fails to import (or declares an incompatible segzoo version)
costs a warning naming it; every other plugin still loads. The failures are
kept so ``segzoo plugins`` can show them.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from segzoo import hookspecs
from segzoo.registry import Component, Registry
from segzoo.version import __version__

ENTRY_POINT_GROUP = "segzoo"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "segzoo.builtin.losses",
    "segzoo.builtin.metrics",
    "segzoo.builtin.datasets",
)


# What loading a plugin may raise without stopping segzoo: any error, and sys.exit() (SystemExit). Ctrl-C still stops.
PLUGIN_FAILURES = (Exception, SystemExit)


class SegzooPluginWarning(UserWarning):
    """A plugin could not be loaded; the others were."""


@dataclass
class PluginInfo:
    name: str
    module: str
    version: str
    components: list[Component] = field(default_factory=list)
    error: str | None = None


def segzoo_version() -> str:
    return __version__


def _dist_version(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else "?"


class PluginManager:
    """Loads plugins into a pluggy manager and collects their components into a :class:`Registry`."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("segzoo")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: list[PluginInfo] = []

    def load(self, entry_points: list[metadata.EntryPoint] | None = None) -> PluginManager:
        for modname in BUILTIN_PLUGINS:
            self.register(importlib.import_module(modname), name=modname, version=segzoo_version())
        if entry_points is None:
            entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        for ep in sorted(entry_points, key=lambda e: e.name):
            version = _dist_version(ep)
            try:
                plugin = ep.load()
            except PLUGIN_FAILURES as exc:  # any import failure, sys.exit() included, must not take the others down
                self._fail(ep.name, ep.value, version, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self.register(plugin, name=ep.name, version=version)
        return self

    def register(self, plugin: ModuleType | Any, name: str, version: str) -> PluginInfo | None:
        """Register one plugin object and add its components; a plugin that cannot load is reported, not raised."""
        module = getattr(plugin, "__name__", type(plugin).__name__)
        try:
            self.pm.register(plugin, name=name)
            requires = self._call_own("segzoo_requires", plugin)
            problem = _incompatible(requires[0]) if requires and requires[0] else None
            if problem:
                self.pm.unregister(plugin)
                self._fail(name, module, version, problem)
                return None
            contributed = [obj for result in self._call_own("segzoo_components", plugin) for obj in _as_list(result)]
            components = self.registry.add_all(contributed, plugin=name, plugin_version=version)
        except PLUGIN_FAILURES as exc:  # a broken plugin must not take the others down
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(name, module, version, f"{type(exc).__name__}: {exc}")
            return None
        info = PluginInfo(name=name, module=module, version=version, components=components)
        self.plugins.append(info)
        return info

    def _call_own(self, hook_name: str, plugin: Any) -> list[Any]:
        """Call one hook of one plugin only, so every component is attributed to the plugin that brought it."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        return [impl.function() for impl in impls if impl.plugin is plugin]

    def _fail(self, name: str, module: str, version: str, reason: str) -> None:
        self.plugins.append(PluginInfo(name=name, module=module, version=version, error=reason))
        warnings.warn(f"segzoo plugin '{name}' ({module}) was not loaded: {reason}", SegzooPluginWarning, stacklevel=3)


def _as_list(result: Any) -> list[Any]:
    """What one ``segzoo_components()`` returned, which must be a list (or tuple) of components, or None."""
    if result is None:
        return []
    if not isinstance(result, (list, tuple)):
        raise TypeError(f"segzoo_components() must return a list of components, got {type(result).__name__} {result!r:.80}")
    return list(result)


def _incompatible(requires: str) -> str | None:
    try:
        spec = SpecifierSet(requires)
    except InvalidSpecifier:
        return f"it declares segzoo_requires() = {requires!r}, which is not a PEP 440 version specifier"
    current = segzoo_version()
    if Version(current) not in spec:
        return (
            f"it supports segzoo {requires} but segzoo {current} is installed; "
            "install a plugin release made for this segzoo, or a segzoo within that range"
        )
    return None
