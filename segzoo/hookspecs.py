"""Hook specifications: the whole contract between segzoo and a plugin.

A plugin is any module (or object) with functions marked ``@segzoo.hookimpl``
whose names match the specs below. Installed packages announce their plugin
module in the ``segzoo`` entry-point group; segzoo's own built-ins are
registered through the same hooks, as pytest does with its built-in plugins.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("segzoo")
hookimpl = pluggy.HookimplMarker("segzoo")


@hookspec
def segzoo_components() -> list[Any]:
    """Return the components this plugin contributes.

    Each item is a factory decorated with :func:`segzoo.component` (or a
    :class:`segzoo.registry.Component`).
    """


@hookspec
def segzoo_requires() -> str | None:
    """Return the segzoo versions this plugin supports, as a PEP 440 specifier such as ``">=0.1,<0.2"``.

    A plugin whose specifier excludes the running segzoo is refused with a message naming both.
    """
