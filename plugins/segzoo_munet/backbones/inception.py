"""Inception building blocks and the Inception-v3 backbone (Szegedy et al. 2016), written for MUNet.

torchvision is not available, and the original nets use valid padding, which
makes feature sizes odd (299 -> 149 -> 73 -> 35 -> 17 -> 8). Here every
convolution is same-padded, so a size that is a multiple of 32 gives C1..C5 at
exactly 1/2 .. 1/32 of it. Filter counts follow the papers' figures.

A module is described as parallel *branches* whose outputs are concatenated;
a branch is a :class:`Chain` of ``(out_channels, kernel[, stride])`` convolutions,
where a list of such tuples is a split into parallel convolutions (Inception-v3's
``1x3 | 3x1`` fan-out).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

import segzoo
from segzoo_munet.backbones.pyramid import BackboneParams, Downsample, DownsampleMode, FeaturePyramid, conv_bn_relu

CITATION_V3 = (
    "Szegedy C, Vanhoucke V, Ioffe S, Shlens J, Wojna Z. Rethinking the inception architecture for computer vision. CVPR 2016"
)

Kernel = int | tuple[int, int]
ConvSpec = tuple[int, Kernel] | tuple[int, Kernel, int]
Step = ConvSpec | list[ConvSpec]


class Parallel(nn.Module):
    """Branches applied to the same input, concatenated along the channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.out_channels = sum(b.out_channels for b in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class Chain(nn.Sequential):
    """``conv -> BN -> ReLU`` layers in a row, each given as ``(out_channels, kernel[, stride])``."""

    def __init__(self, in_channels: int, *steps: Step) -> None:
        layers: list[nn.Module] = []
        channels = in_channels
        for step in steps:
            if isinstance(step, list):
                layer: nn.Module = Parallel(*(Chain(channels, spec) for spec in step))
            else:
                out, kernel, *stride = step
                layer = conv_bn_relu(channels, out, kernel, stride[0] if stride else 1)
            layers.append(layer)
            channels = layer.out_channels
        super().__init__(*layers)
        self.out_channels = channels


class PooledProjection(nn.Sequential):
    """The pooling branch of an Inception module: 3x3/1 average pool, then a 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn_relu(in_channels, out_channels, 1)
        )
        self.out_channels = out_channels


def reduction_a(in_channels: int, k: int, l: int, m: int, n: int, downsample: DownsampleMode) -> Parallel:  # noqa: E741 - Table 1 names
    """Reduction-A (Szegedy et al. 2017, Fig. 7; k, l, m, n as in its Table 1); also Inception-v3's first grid reduction."""
    return Parallel(
        Downsample(in_channels, downsample), Chain(in_channels, (n, 3, 2)), Chain(in_channels, (k, 1), (l, 3), (m, 3, 2))
    )


def v3_module_a(in_channels: int, pool_channels: int) -> Parallel:
    """35x35 module (Fig. 5): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1."""
    return Parallel(
        Chain(in_channels, (64, 1)),
        Chain(in_channels, (48, 1), (64, 5)),
        Chain(in_channels, (64, 1), (96, 3), (96, 3)),
        PooledProjection(in_channels, pool_channels),
    )


def v3_module_b(in_channels: int, width: int) -> Parallel:
    """17x17 module (Fig. 6, n = 7): 7x7 convolutions factorised into 1x7 and 7x1."""
    return Parallel(
        Chain(in_channels, (192, 1)),
        Chain(in_channels, (width, 1), (width, (1, 7)), (192, (7, 1))),
        Chain(in_channels, (width, 1), (width, (7, 1)), (width, (1, 7)), (width, (7, 1)), (192, (1, 7))),
        PooledProjection(in_channels, 192),
    )


def v3_reduction_b(in_channels: int, downsample: DownsampleMode) -> Parallel:
    """17x17 -> 8x8 grid reduction (Fig. 10)."""
    return Parallel(
        Chain(in_channels, (192, 1), (320, 3, 2)),
        Chain(in_channels, (192, 1), (192, (1, 7)), (192, (7, 1)), (192, 3, 2)),
        Downsample(in_channels, downsample),
    )


def v3_module_c(in_channels: int) -> Parallel:
    """8x8 module (Fig. 7): the widest, with split 1x3 | 3x1 outputs."""
    split = [(384, (1, 3)), (384, (3, 1))]
    return Parallel(
        Chain(in_channels, (320, 1)),
        Chain(in_channels, (384, 1), split),
        Chain(in_channels, (448, 1), (384, 3), split),
        PooledProjection(in_channels, 192),
    )


class Stack(nn.Sequential):
    """Modules in a row, each built by ``make(in_channels)`` from the previous one's output channels."""

    def __init__(self, in_channels: int, *makers: Callable[[int], nn.Module]) -> None:
        modules, channels = [], in_channels
        for make in makers:
            modules.append(make(channels))
            channels = modules[-1].out_channels
        super().__init__(*modules)
        self.out_channels = channels


def pyramid_of(stages: list[nn.Module], name: str) -> FeaturePyramid:
    """A :class:`FeaturePyramid` whose channels are read off the stages' ``out_channels``."""
    return FeaturePyramid(stages, [stage.out_channels for stage in stages], name)


@segzoo.component(
    "backbone",
    "inception_v3",
    params=BackboneParams,
    summary="Inception-v3 with same padding, C1..C5 at strides 2..32",
    citation=CITATION_V3,
)
def inception_v3(in_channels: int, downsample: DownsampleMode) -> FeaturePyramid:
    """C1 stem convs (64), C2 1x1-80 + 3x3-192 (192), C3 3 x A (288), C4 reduction + 4 x B (768), C5 reduction + 2 x C (2048)."""
    down = partial(Downsample, mode=downsample)
    l1 = Chain(in_channels, (32, 3, 2), (32, 3), (64, 3))
    l2 = Stack(l1.out_channels, down, lambda c: Chain(c, (80, 1), (192, 3)))
    l3 = Stack(l2.out_channels, down, *(partial(v3_module_a, pool_channels=p) for p in (32, 64, 64)))
    l4 = Stack(
        l3.out_channels,
        partial(reduction_a, k=64, l=96, m=96, n=384, downsample=downsample),
        *(partial(v3_module_b, width=w) for w in (128, 160, 160, 192)),
    )
    l5 = Stack(l4.out_channels, partial(v3_reduction_b, downsample=downsample), v3_module_c, v3_module_c)
    return pyramid_of([l1, l2, l3, l4, l5], "Inception-v3")
