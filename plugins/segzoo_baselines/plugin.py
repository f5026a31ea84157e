"""Entry point of the baselines plugin (``segzoo`` group)."""

import segzoo
from segzoo_baselines.unet import unet


@segzoo.hookimpl
def segzoo_components() -> list:
    return [unet]
