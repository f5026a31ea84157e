"""The backbone contract: an encoder any network can tap, in the style of segmentation_models_pytorch's encoders.

A backbone is an ``nn.Module`` registered as kind ``backbone`` whose parameter model derives from
:class:`BackboneParams` (so every network can pass ``in_channels``), with

- ``out_channels``: the channels of the feature maps ``forward`` returns, shallowest first;
- ``strides``: their strides relative to the input, increasing (e.g. ``(2, 4, 8, 16, 32)``);
- ``forward(x) -> list[Tensor]``: those feature maps, one per stride.

A network that needs particular strides (MUNet: five maps at 2..32) checks them with :func:`check_backbone`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from pydantic import Field

from segzoo.registry import Params


class BackboneParams(Params):
    """What a network passes to any backbone it builds by name."""

    in_channels: int = Field(3, gt=0, description="input image channels")


@runtime_checkable
class Backbone(Protocol):
    out_channels: Sequence[int]
    strides: Sequence[int]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]: ...


def check_backbone(backbone: object, network: str, strides: Sequence[int] | None = None) -> list[int]:
    """The backbone's ``out_channels``, after checking it keeps the contract (and has ``strides``, if given)."""
    name = type(backbone).__name__
    if not isinstance(backbone, Backbone):
        raise TypeError(f"{network}: backbone {name} lacks out_channels and strides (the contract of segzoo.nn.Backbone)")
    channels, own = list(backbone.out_channels), list(backbone.strides)
    if len(channels) != len(own) or any(b <= a for a, b in zip(own, own[1:])):
        raise ValueError(f"{network}: backbone {name} declares out_channels {channels} and strides {own}; "
                         "it needs one channel count per feature map and increasing strides")
    if strides is not None and own != list(strides):
        raise ValueError(f"{network} needs a backbone with feature maps at strides {list(strides)}; {name} has {own}")
    return channels
