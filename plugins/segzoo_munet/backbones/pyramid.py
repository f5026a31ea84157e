"""The backbone contract MUNet relies on, and the layers every backbone here shares.

A backbone is any ``nn.Module`` with a ``channels`` list of five ints and a
``forward(x)`` returning the five feature maps C1..C5 of Section III, at strides
2, 4, 8, 16 and 32. A third-party plugin registers one as a component of kind
``backbone`` whose factory takes ``in_channels``; MUNet builds it by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from monai.networks.blocks import Convolution
from pydantic import Field
from torch import nn

import segzoo
from segzoo.nn import check_input_size

DownsampleMode = Literal["conv", "max"]
STRIDES = (2, 4, 8, 16, 32)


class BackboneParams(segzoo.Params):
    in_channels: int = Field(3, gt=0, description="input image channels")
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
    """Five stages L1..L5 run in a row; ``forward`` returns every stage's output, C1..C5."""

    stride = STRIDES[-1]

    def __init__(self, stages: Sequence[nn.Module], channels: Sequence[int], name: str) -> None:
        super().__init__()
        if len(stages) != len(STRIDES) or len(channels) != len(STRIDES):
            raise ValueError(
                f"{name}: a backbone has {len(STRIDES)} stages, got {len(stages)} stages and {len(channels)} channel counts"
            )
        self.stages = nn.ModuleList(stages)
        self.channels = list(channels)
        self.name = name

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input_size(x, self.stride, self.name)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
