"""segzoo: a plugin registry of 2D biomedical segmentation components, built on MONAI bundles.

Plugins register components through pluggy hooks (see :mod:`segzoo.hookspecs`);
configs and code build them by name::

    import segzoo
    net = segzoo.build("architecture", "pyconvunet", preset="paper", in_channels=1)
"""

from __future__ import annotations

from typing import Any

from segzoo.errors import SegzooError
from segzoo.hookspecs import hookimpl
from segzoo.plugins import PluginManager
from segzoo.registry import (
    KINDS,
    Built,
    Component,
    ComponentContractError,
    ComponentParamsError,
    DuplicateComponentError,
    Params,
    UnknownComponentError,
    built,
    component,
)
from segzoo.version import __version__ as __version__  # re-exported: segzoo.__version__

__all__ = [
    "KINDS",
    "Built",
    "Component",
    "ComponentContractError",
    "ComponentParamsError",
    "DuplicateComponentError",
    "Params",
    "SegzooError",
    "UnknownComponentError",
    "build",
    "built",
    "component",
    "create_model",
    "get",
    "hookimpl",
    "list_components",
    "plugin_manager",
]

_manager = None


def plugin_manager(reload: bool = False) -> PluginManager:
    """The process-wide plugin manager, loaded on first use (built-ins, then entry points)."""
    global _manager
    if _manager is None or reload:
        _manager = PluginManager().load()
    return _manager


def get(kind: str, name: str) -> Component:
    """The registered :class:`Component` for ``(kind, name)``; the error names the closest registered names."""
    return plugin_manager().registry.get(kind, name)


def build(kind: str, name: str, preset: str | None = None, **params: Any) -> Any:
    """Validate ``params`` (over ``preset``'s values) with the component's pydantic model and build it."""
    return get(kind, name).build(preset, **params)


def create_model(name: str, preset: str | None = None, **params: Any) -> Any:
    """Shorthand for ``build("architecture", name, ...)``, as timm's ``create_model``."""
    return build("architecture", name, preset, **params)


def list_components(kind: str | None = None) -> list[Component]:
    """Every registered component (of ``kind`` if given), sorted by kind then name."""
    return plugin_manager().registry.components(kind)
