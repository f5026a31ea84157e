"""Entry point of the frem plugin (``segzoo`` group)."""

import segzoo


@segzoo.hookimpl
def segzoo_components() -> list:
    return []
