"""Which MONAI bundle workflow is running this code: what a handler or check built by a config reads the config from."""

from __future__ import annotations

import inspect
from typing import Any

from monai.bundle import ConfigWorkflow


def current_bundle_workflow() -> Any | None:
    """The MONAI bundle workflow running this code, if any: its parser holds the config (files merged, overrides
    applied), its ``config_root_path`` the bundle's ``configs/`` folder.

    Configs cannot reference themselves, so the tracker finds the ``ConfigWorkflow``
    that is instantiating it on the call stack.
    """
    for frame_info in inspect.stack(context=0):
        owner = frame_info.frame.f_locals.get("self")
        if isinstance(owner, ConfigWorkflow):
            return owner
    return None


def current_bundle_config() -> dict[str, Any] | None:
    """The config of the MONAI bundle workflow running this code (files merged, overrides applied), if any."""
    workflow = current_bundle_workflow()
    return workflow.parser.get() if workflow is not None else None
