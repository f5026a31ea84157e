"""Squeeze-and-excitation block (Hu et al. 2018), MONAI's ``ChannelSELayer`` behind a segzoo name."""

from __future__ import annotations

from monai.networks.blocks import ChannelSELayer
from pydantic import Field

import segzoo

CITATION_SE = "Hu J, Shen L, Sun G. Squeeze-and-excitation networks. CVPR 2018"


class SEParams(segzoo.Params):
    in_channels: int = Field(gt=0, description="channels of the feature map to re-weight")
    reduction: int = Field(16, gt=0, description="r: the hidden layer has in_channels // r units (at least one)")
    spatial_dims: int = Field(2, ge=1, le=3, description="2 for images, 3 for volumes")


@segzoo.component(
    "block",
    "se",
    params=SEParams,
    summary="Squeeze-and-excitation: global average pool, bottleneck MLP, sigmoid channel gates (MONAI ChannelSELayer)",
    citation=CITATION_SE,
)
def se(in_channels: int, reduction: int = 16, spatial_dims: int = 2) -> ChannelSELayer:
    # MONAI refuses r > in_channels; narrow stages (tests, small bases) keep a one-unit bottleneck instead.
    return ChannelSELayer(spatial_dims, in_channels, r=min(reduction, in_channels))
