"""Parameter models every architecture shares, so plugins declare only what is their own."""

from __future__ import annotations

from pydantic import Field

from segzoo.nn.blocks import FinalActivation
from segzoo.registry import Params


class ArchitectureParams(Params):
    """What a bundle passes to any architecture: channels in and out, dimensionality, the head's activation."""

    in_channels: int = Field(3, gt=0, description="input image channels")
    out_channels: int = Field(1, gt=0, description="output channels: 1 for binary masks, k+1 for k classes")
    spatial_dims: int = Field(2, ge=2, le=3, description="2 for images, 3 for volumes")
    final_activation: FinalActivation = Field(
        "auto", description="auto: sigmoid for 1 output channel, softmax otherwise; identity returns logits"
    )


class EncoderDecoderParams(ArchitectureParams):
    """U-Net-like networks: a base width doubled at each of ``depth`` poolings."""

    base_channels: int = Field(32, gt=0, description="features at full resolution; doubled after each pooling")
    depth: int = Field(4, ge=1, le=6, description="number of poolings")
