"""The authors' released PyConvU-Net (``PyconvUnet.py`` of their public repository), rebuilt to be counted beside Table 3.

As released it cannot run: its 1x1 - PyConv - 1x1 block widens its output to 4x its planes (``expansion = 4``, as in
ResNet's bottleneck block), while the batch norm after the block and the next block expect the planes themselves. The
one fix here is ``expansion = 1``, so every block returns the width the rest of the network was written for. Everything
else is as released: widths 128 to 2048, kernels 3/5/7/9 in groups 1/4/8/16 with 1/8, 1/8, 1/4 and 1/2 of the
channels, no bias in the block's convolutions, a batch norm and ReLU after every block on top of the block's own, and
no residual sum (commented out in the release). The paper describes none of this; docs/papers/pyconvunet.md compares.
"""

from __future__ import annotations

from monai.networks.layers.factories import Conv, Norm
from pydantic import Field
from torch import nn

import segzoo
from segzoo.nn import EncoderDecoderParams, UNetSkeleton
from segzoo_pyconvunet.pyconv import PyConv
from segzoo_pyconvunet.pyconvunet import CITATION, TABLE3

RELEASED_KERNELS, RELEASED_GROUPS, RELEASED_SHARES = [3, 5, 7, 9], [1, 4, 8, 16], [1.0, 1.0, 2.0, 4.0]


class ReleasedParams(EncoderDecoderParams):
    base_channels: int = Field(128, gt=0, description="features at full resolution (the release: 32 * 4); "
                                                      "doubled after each pooling")


class BottleneckPyConv(nn.Sequential):
    """The release's block: 1x1 to ``planes``, PyConv, 1x1 to ``planes`` (fixed: the release writes 4 * planes), each
    followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, planes: int, spatial_dims: int) -> None:
        conv, norm = Conv[Conv.CONV, spatial_dims], Norm[Norm.BATCH, spatial_dims]
        super().__init__(
            conv(in_channels, planes, 1, bias=False),
            norm(planes),
            nn.ReLU(inplace=True),
            PyConv(planes, planes, RELEASED_KERNELS, RELEASED_GROUPS, RELEASED_SHARES, spatial_dims),
            norm(planes),
            nn.ReLU(inplace=True),
            conv(planes, planes, 1, bias=False),
            norm(planes),
            nn.ReLU(inplace=True),
        )


def released_stage(in_channels: int, out_channels: int, spatial_dims: int) -> nn.Sequential:
    """The release's ``DoublePyConv``: two blocks, each followed by another batch norm and ReLU."""
    norm = Norm[Norm.BATCH, spatial_dims]
    return nn.Sequential(
        BottleneckPyConv(in_channels, out_channels, spatial_dims), norm(out_channels), nn.ReLU(inplace=True),
        BottleneckPyConv(out_channels, out_channels, spatial_dims), norm(out_channels), nn.ReLU(inplace=True),
    )


@segzoo.component(
    "architecture",
    "pyconvunet_released",
    params=ReleasedParams,
    summary="The authors' released PyConvU-Net code (1x1-PyConv-1x1 blocks), with its one fix: block expansion 4 -> 1",
    citation=CITATION,
    presets={"released": {"base_channels": 128, "depth": 4}},
    reported={"released": TABLE3},
)
def pyconvunet_released(
    in_channels: int, out_channels: int, base_channels: int, depth: int, spatial_dims: int, final_activation: str
) -> UNetSkeleton:
    channels = [base_channels * 2**i for i in range(depth + 1)]
    return UNetSkeleton(
        in_channels,
        out_channels,
        channels,
        lambda i, o, _level: released_stage(i, o, spatial_dims),
        spatial_dims,
        "transpose",
        final_activation,
        "PyConvU-Net (released code)",
    )
