"""MultiResUNet (Ibtehaz & Rahman, Neural Networks 2020): MultiRes blocks in place of U-Net stages, ResPaths on the skips.

A MultiRes block approximates parallel 3x3, 5x5 and 7x7 convolutions by a chain of three 3x3
convolutions whose outputs are concatenated, plus a 1x1 convolution as a residual. A ResPath replaces
each plain skip by a chain of 3x3 convolutions with 1x1 residuals, longest at the shallowest level,
to narrow the semantic gap between encoder and decoder features.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Norm, Pool
from pydantic import Field, model_validator
from torch import nn

import segzoo
from segzoo.nn import EncoderDecoderParams, FinalActivation, check_input_size, output_activation

CITATION = (
    "Ibtehaz N, Rahman MS. MultiResUNet: rethinking the U-Net architecture for multimodal biomedical "
    "image segmentation. Neural Networks 121, 74-87 (2020)"
)

# Shares of a MultiRes block's width W = alpha * U taken by the 3x3, "5x5" and "7x7" outputs:
# 1/6, 1/3 and 1/2, rounded as in the authors' implementation (their parameter count depends on it).
SHARES = (0.167, 0.333, 0.5)


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, spatial_dims: int, relu: bool) -> Convolution:
    """``conv (no bias, BN follows) -> BN [-> ReLU]``, the unit both blocks are made of."""
    return Convolution(
        spatial_dims, in_channels, out_channels, kernel_size=kernel_size, norm="batch", act="relu" if relu else None, bias=False
    )


def residual_output(channels: int, spatial_dims: int) -> nn.Sequential:
    """What follows ``body + shortcut`` in both blocks: ReLU, then BN."""
    return nn.Sequential(nn.ReLU(inplace=True), Norm[Norm.BATCH, spatial_dims](channels))


def multires_widths(width: float) -> list[int]:
    """Output channels of the three chained convolutions of a block of width ``width``."""
    return [int(width * share) for share in SHARES]


class MultiResBlock(nn.Module):
    """Three chained 3x3 conv-BN-ReLU (receptive fields 3, 5, 7) concatenated, plus a 1x1 conv-BN residual."""

    def __init__(self, in_channels: int, width: float, spatial_dims: int = 2) -> None:
        super().__init__()
        widths = multires_widths(width)
        self.out_channels = sum(widths)
        self.chain = nn.ModuleList(
            conv_bn(cin, cout, 3, spatial_dims, relu=True) for cin, cout in zip([in_channels, *widths[:-1]], widths)
        )
        self.concat_norm = Norm[Norm.BATCH, spatial_dims](self.out_channels)
        self.shortcut = conv_bn(in_channels, self.out_channels, 1, spatial_dims, relu=False)
        self.output = residual_output(self.out_channels, spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scales = []
        y = x
        for conv in self.chain:
            y = conv(y)
            scales.append(y)
        return self.output(self.concat_norm(torch.cat(scales, dim=1)) + self.shortcut(x))


class ResPathUnit(nn.Module):
    """3x3 conv-BN-ReLU with a 1x1 conv-BN residual."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 2) -> None:
        super().__init__()
        self.conv = conv_bn(in_channels, out_channels, 3, spatial_dims, relu=True)
        self.shortcut = conv_bn(in_channels, out_channels, 1, spatial_dims, relu=False)
        self.output = residual_output(out_channels, spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.conv(x) + self.shortcut(x))


class ResPath(nn.Sequential):
    """``length`` :class:`ResPathUnit` in a row, the first mapping ``in_channels`` to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, length: int, spatial_dims: int = 2) -> None:
        super().__init__(
            *(ResPathUnit(in_channels if i == 0 else out_channels, out_channels, spatial_dims) for i in range(length))
        )


class MultiResUNet(nn.Module):
    """``depth`` poolings; level ``i`` has ``U = base_channels * 2**i`` filters and a MultiRes block of width ``alpha * U``.

    The skip of level ``i`` goes through a ResPath of length ``depth - i`` (4, 3, 2, 1 in the paper) with
    ``U`` filters; the decoder up-samples by a stride-2 transposed convolution to ``U`` filters,
    concatenates the ResPath's output and applies a MultiRes block.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_channels: int = 32,
        depth: int = 4,
        alpha: float = 1.67,
        spatial_dims: int = 2,
        final_activation: FinalActivation = "auto",
    ) -> None:
        super().__init__()
        self.stride = 2**depth
        filters = [base_channels * 2**level for level in range(depth + 1)]
        self.pool = Pool[Pool.MAX, spatial_dims](2)
        self.encoder = nn.ModuleList()
        channels = in_channels
        for level_filters in filters:
            self.encoder.append(MultiResBlock(channels, alpha * level_filters, spatial_dims))
            channels = self.encoder[-1].out_channels
        self.respaths = nn.ModuleList(
            ResPath(self.encoder[level].out_channels, filters[level], depth - level, spatial_dims) for level in range(depth)
        )
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up.append(Conv[Conv.CONVTRANS, spatial_dims](channels, filters[level], 2, stride=2))
            self.decoder.append(MultiResBlock(2 * filters[level], alpha * filters[level], spatial_dims))
            channels = self.decoder[-1].out_channels
        self.head = Conv[Conv.CONV, spatial_dims](channels, out_channels, 1)
        self.activation = output_activation(final_activation, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.stride, "MultiResUNet")
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        skips = [respath(skip) for respath, skip in zip(self.respaths, skips)]
        for up, block in zip(self.up, self.decoder):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.activation(self.head(x))


class MultiResUNetParams(EncoderDecoderParams):
    base_channels: int = Field(32, gt=0, description="filters U at full resolution; doubled after each pooling")
    depth: int = Field(4, ge=1, le=6, description="number of poolings; the ResPaths have lengths depth, ..., 1")
    alpha: float = Field(
        1.67, gt=0, description="MultiRes block width W = alpha * U (the paper's alpha, tuned to match U-Net's size)"
    )

    @model_validator(mode="after")
    def _every_scale_has_a_channel(self) -> MultiResUNetParams:
        if min(multires_widths(self.alpha * self.base_channels)) < 1:
            raise ValueError(
                f"alpha * base_channels = {self.alpha * self.base_channels:g} is too small: the 3x3 scale of the first "
                f"MultiRes block gets {SHARES[0]:g} of it, less than one channel; raise base_channels or alpha"
            )
        return self


# The paper reports 7.26 M parameters (a Keras count, which includes BN running statistics). The `paper`
# preset has 7.24 M trainable parameters; counted as Keras counts them it has 7,262,748. It gives no GMac.
@segzoo.component(
    "architecture",
    "multiresunet",
    params=MultiResUNetParams,
    summary="MultiResUNet: MultiRes blocks (chained 3x3 convs ~ 3/5/7 kernels + 1x1 residual) and ResPath skips",
    citation=CITATION,
    presets={"paper": {"base_channels": 32, "depth": 4, "alpha": 1.67}},
    reported={"paper": {"params_m": 7.26}},
)
def multiresunet(
    in_channels: int,
    out_channels: int,
    base_channels: int,
    depth: int,
    alpha: float,
    spatial_dims: int,
    final_activation: FinalActivation,
) -> MultiResUNet:
    return MultiResUNet(in_channels, out_channels, base_channels, depth, alpha, spatial_dims, final_activation)
