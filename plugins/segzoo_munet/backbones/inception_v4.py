"""Inception-v4 and Inception-ResNet-v2 backbones (Szegedy et al. 2017), same-padded like Inception-v3 here.

Both share the paper's stem (Fig. 3) and Reduction-A (Fig. 7, with Table 1's
k, l, m, n). The residual 1x1 projections of Inception-ResNet-v2 restore the
block's input width (the paper's figures print 1154 and 2048, which do not
match the 1152 and 2144 channels their reductions produce).
"""

from __future__ import annotations

from functools import partial

import torch
from monai.networks.layers.factories import Conv
from pydantic import Field
from torch import nn

import segzoo
from segzoo_munet.backbones.inception import Chain, Parallel, PooledProjection, Stack, pyramid_of, reduction_a
from segzoo_munet.backbones.pyramid import BackboneParams, Downsample, DownsampleMode, FeaturePyramid

CITATION = (
    "Szegedy C, Ioffe S, Vanhoucke V, Alemi AA. Inception-v4, Inception-ResNet and the impact of residual connections "
    "on learning. AAAI 2017"
)


def stem(in_channels: int, downsample: DownsampleMode) -> tuple[Chain, Stack]:
    """Fig. 3 up to its third stride: C1 (64 channels at 1/2) and C2 (192 at 1/4)."""
    l1 = Chain(in_channels, (32, 3, 2), (32, 3), (64, 3))
    l2 = Stack(
        l1.out_channels,
        lambda c: Parallel(Downsample(c, downsample), Chain(c, (96, 3, 2))),
        lambda c: Parallel(Chain(c, (64, 1), (96, 3)), Chain(c, (64, 1), (64, (7, 1)), (64, (1, 7)), (96, 3))),
    )
    return l1, l2


def stem_reduction(in_channels: int, downsample: DownsampleMode) -> Parallel:
    """The end of Fig. 3: 3x3/2 conv | pool, opening the 1/8 stage with 384 channels."""
    return Parallel(Chain(in_channels, (192, 3, 2)), Downsample(in_channels, downsample))


def v4_module_a(in_channels: int) -> Parallel:
    """Fig. 4."""
    return Parallel(
        PooledProjection(in_channels, 96),
        Chain(in_channels, (96, 1)),
        Chain(in_channels, (64, 1), (96, 3)),
        Chain(in_channels, (64, 1), (96, 3), (96, 3)),
    )


def v4_module_b(in_channels: int) -> Parallel:
    """Fig. 5."""
    return Parallel(
        PooledProjection(in_channels, 128),
        Chain(in_channels, (384, 1)),
        Chain(in_channels, (192, 1), (224, (1, 7)), (256, (7, 1))),
        Chain(in_channels, (192, 1), (192, (1, 7)), (224, (7, 1)), (224, (1, 7)), (256, (7, 1))),
    )


def v4_reduction_b(in_channels: int, downsample: DownsampleMode) -> Parallel:
    """Fig. 8."""
    return Parallel(
        Downsample(in_channels, downsample),
        Chain(in_channels, (192, 1), (192, 3, 2)),
        Chain(in_channels, (256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2)),
    )


def v4_module_c(in_channels: int) -> Parallel:
    """Fig. 6."""
    return Parallel(
        PooledProjection(in_channels, 256),
        Chain(in_channels, (256, 1)),
        Chain(in_channels, (384, 1), [(256, (1, 3)), (256, (3, 1))]),
        Chain(in_channels, (384, 1), (448, (1, 3)), (512, (3, 1)), [(256, (3, 1)), (256, (1, 3))]),
    )


@segzoo.component(
    "backbone",
    "inception_v4",
    params=BackboneParams,
    summary="Inception-v4 with same padding, C1..C5 at strides 2..32",
    citation=CITATION,
)
def inception_v4(in_channels: int, downsample: DownsampleMode) -> FeaturePyramid:
    """C1 64, C2 192, C3 stem + 4 x A (384), C4 Reduction-A + 7 x B (1024), C5 Reduction-B + 3 x C (1536)."""
    l1, l2 = stem(in_channels, downsample)
    l3 = Stack(l2.out_channels, partial(stem_reduction, downsample=downsample), *[v4_module_a] * 4)
    l4 = Stack(l3.out_channels, partial(reduction_a, k=192, l=224, m=256, n=384, downsample=downsample), *[v4_module_b] * 7)
    l5 = Stack(l4.out_channels, partial(v4_reduction_b, downsample=downsample), *[v4_module_c] * 3)
    return pyramid_of([l1, l2, l3, l4, l5], "Inception-v4")


class ResidualInception(nn.Module):
    """Inception-ResNet block: ``relu(x + scale * project(branches(x)))``; the 1x1 projection is linear (no BN, no ReLU).

    Scaling the residual by 0.1-0.3 is the paper's Sec. 3.3 remedy for the instability of very wide residual nets.
    """

    def __init__(self, branches: Parallel, channels: int, scale: float) -> None:
        super().__init__()
        self.branches = branches
        self.project = Conv[Conv.CONV, 2](branches.out_channels, channels, 1)
        self.scale = scale
        self.act = nn.ReLU(inplace=True)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.scale * self.project(self.branches(x)))


def resnet_module_a(channels: int, scale: float) -> ResidualInception:
    """Fig. 16."""
    branches = Parallel(Chain(channels, (32, 1)), Chain(channels, (32, 1), (32, 3)), Chain(channels, (32, 1), (48, 3), (64, 3)))
    return ResidualInception(branches, channels, scale)


def resnet_module_b(channels: int, scale: float) -> ResidualInception:
    """Fig. 17."""
    branches = Parallel(Chain(channels, (192, 1)), Chain(channels, (128, 1), (160, (1, 7)), (192, (7, 1))))
    return ResidualInception(branches, channels, scale)


def resnet_module_c(channels: int, scale: float) -> ResidualInception:
    """Fig. 19."""
    branches = Parallel(Chain(channels, (192, 1)), Chain(channels, (192, 1), (224, (1, 3)), (256, (3, 1))))
    return ResidualInception(branches, channels, scale)


def resnet_reduction_b(in_channels: int, downsample: DownsampleMode) -> Parallel:
    """Fig. 18."""
    return Parallel(
        Downsample(in_channels, downsample),
        Chain(in_channels, (256, 1), (384, 3, 2)),
        Chain(in_channels, (256, 1), (288, 3, 2)),
        Chain(in_channels, (256, 1), (288, 3), (320, 3, 2)),
    )


class InceptionResNetParams(BackboneParams):
    residual_scale: float = Field(0.2, gt=0, le=1, description="factor on every residual branch (the paper scales by 0.1-0.3)")


@segzoo.component(
    "backbone",
    "inception_resnet_v2",
    params=InceptionResNetParams,
    summary="Inception-ResNet-v2 with same padding, C1..C5 at strides 2..32",
    citation=CITATION,
)
def inception_resnet_v2(in_channels: int, downsample: DownsampleMode, residual_scale: float) -> FeaturePyramid:
    """C1 64, C2 192, C3 stem + 5 x A (384), C4 Reduction-A + 10 x B (1152), C5 Reduction-B + 5 x C (2144)."""
    l1, l2 = stem(in_channels, downsample)
    module_a, module_b, module_c = (
        partial(make, scale=residual_scale) for make in (resnet_module_a, resnet_module_b, resnet_module_c)
    )
    l3 = Stack(l2.out_channels, partial(stem_reduction, downsample=downsample), *[module_a] * 5)
    l4 = Stack(l3.out_channels, partial(reduction_a, k=256, l=256, m=384, n=384, downsample=downsample), *[module_b] * 10)
    l5 = Stack(l4.out_channels, partial(resnet_reduction_b, downsample=downsample), *[module_c] * 5)
    return pyramid_of([l1, l2, l3, l4, l5], "Inception-ResNet-v2")
