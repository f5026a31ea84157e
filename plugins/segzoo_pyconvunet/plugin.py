"""Entry point of the PyConvU-Net plugin (``segzoo`` group)."""

import segzoo
from segzoo_pyconvunet.pyconv import PyConv
from segzoo_pyconvunet.pyconvunet import pyconvunet
from segzoo_pyconvunet.released import pyconvunet_released


@segzoo.hookimpl
def segzoo_components() -> list:
    return [PyConv, pyconvunet, pyconvunet_released]
