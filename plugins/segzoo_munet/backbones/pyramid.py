"""The layers every MUNet backbone here shares, and the pyramid that exposes their five stages.

MUNet taps five feature maps C1..C5 (Section III) at strides 2, 4, 8, 16 and 32 from any backbone that keeps
the core's contract (:class:`segzoo.nn.Backbone`: ``out_channels``, ``strides``, ``forward`` returning the maps);
a third-party plugin registers one as a component of kind ``backbone`` and MUNet builds it by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from monai.networks.blocks import Convolution
from pydantic import Field
from torch import nn

from segzoo.nn import BackboneParams as CoreBackboneParams
from segzoo.nn import check_input_size

DownsampleMode = Literal["conv", "max"]
STRIDES = (2, 4, 8, 16, 32)


class BackboneParams(CoreBackboneParams):
    downsample: DownsampleMode = Field(
        "conv",
        description="conv: every max-pool becomes a learned 3x3/2 conv + BN + ReLU (MUNet Sec. III); max: the original pool",
    )


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3, stride: int = 1) -> Convolution:
    """Same-padded ``conv -> BN -> ReLU``; a stride-2 3x3 halves any even size exactly."""
    return Convolution(
        2, in_channels, out_channels, strides=stride, kernel_size=kernel_size, act="relu", norm="batch", bias=False
    )


class Downsample(nn.Sequential):
    """Where the original network max-pools (3x3, stride 2): halves H and W and keeps the channels."""

    def __init__(self, channels: int, mode: DownsampleMode) -> None:
        layer = conv_bn_relu(channels, channels, 3, 2) if mode == "conv" else nn.MaxPool2d(3, 2, padding=1)
        super().__init__(layer)
        self.out_channels = channels


class FeaturePyramid(nn.Module):
    """Five stages L1..L5 run in a row; ``forward`` returns every stage's output, C1..C5 (a :class:`segzoo.nn.Backbone`)."""

    strides = STRIDES

    def __init__(self, stages: Sequence[nn.Module], channels: Sequence[int], name: str) -> None:
        super().__init__()
        if len(stages) != len(STRIDES) or len(channels) != len(STRIDES):
            raise ValueError(
                f"{name}: a backbone has {len(STRIDES)} stages, got {len(stages)} stages and {len(channels)} channel counts"
            )
        self.stages = nn.ModuleList(stages)
        self.out_channels = list(channels)
        self.name = name

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input_size(x, self.strides[-1], self.name)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
