"""Entry point of the munet plugin (``segzoo`` group)."""

import segzoo


@segzoo.hookimpl
def segzoo_components() -> list:
    return []
