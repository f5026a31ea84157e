"""Entry point of the MultiResUNet plugin (``segzoo`` group, declared in pyproject.toml)."""

import segzoo
from segzoo_multiresunet.multiresunet import multiresunet


@segzoo.hookimpl
def segzoo_components() -> list:
    return [multiresunet]


@segzoo.hookimpl
def segzoo_requires() -> str:
    return ">=0.1,<1"
