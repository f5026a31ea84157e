"""Attention U-Net (Oktay et al. 2018): a U-Net whose skips pass through additive attention gates.

MONAI's attention gate (``AttentionBlock``) is reused as is, but not MONAI's ``AttentionUnet``: it
down-samples with strided convolutions and up-samples with transposed convolutions, which at base 64
gives 31.74 M parameters and 169.7 GMac at 512x512 instead of the paper's 34.88 M and 266.54 GMac.
The paper's network max-pools, and up-samples by nearest-neighbour interpolation followed by a
3x3 convolution + BN + ReLU at the finer resolution.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv, Pool
from monai.networks.nets.attentionunet import AttentionBlock
from pydantic import Field
from torch import nn

import segzoo
from segzoo.nn import (
    ConvNormAct,
    DoubleConv,
    EncoderDecoderParams,
    FinalActivation,
    check_input_size,
    output_activation,
    plain_conv,
)

CITATION = (
    "Oktay O, Schlemper J, Le Folgoc L, et al. Attention U-Net: learning where to look for the pancreas. "
    "arXiv:1804.03999 (2018)"
)


class AttentionUNet(nn.Module):
    """``depth`` poolings; before each decoder concatenation the skip is re-weighted by a gate
    driven by the up-sampled deeper features.

    The gate's intermediate width is half the skip's channels, as in the paper.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_channels: int = 64,
        depth: int = 4,
        spatial_dims: int = 2,
        final_activation: FinalActivation = "auto",
    ) -> None:
        super().__init__()
        self.stride = 2**depth
        channels = [base_channels * 2**level for level in range(depth + 1)]
        conv = plain_conv(3, bias=True, spatial_dims=spatial_dims)
        self.pool = Pool[Pool.MAX, spatial_dims](2)
        self.encoder = nn.ModuleList(
            DoubleConv(cin, cout, conv, spatial_dims) for cin, cout in zip([in_channels, *channels[:-1]], channels)
        )
        self.up = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth)):
            deep, skip = channels[level + 1], channels[level]
            self.up.append(nn.Sequential(nn.Upsample(scale_factor=2), ConvNormAct(deep, skip, conv, spatial_dims)))
            self.gates.append(AttentionBlock(spatial_dims, f_int=skip // 2, f_g=skip, f_l=skip))
            self.decoder.append(DoubleConv(2 * skip, skip, conv, spatial_dims))
        self.head = Conv[Conv.CONV, spatial_dims](channels[0], out_channels, 1)
        self.activation = output_activation(final_activation, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.stride, "Attention U-Net")
        skips = []
        for level, stage in enumerate(self.encoder):
            x = stage(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, gate, stage in zip(self.up, self.gates, self.decoder):
            x = up(x)
            x = stage(torch.cat([gate(g=x, x=skips.pop()), x], dim=1))
        return self.activation(self.head(x))


class AttentionUNetParams(EncoderDecoderParams):
    base_channels: int = Field(64, ge=2, description="features at full resolution; doubled after each pooling")


@segzoo.component(
    "architecture",
    "attention_unet",
    params=AttentionUNetParams,
    summary="Attention U-Net: U-Net with additive attention gates on the skips, up-sampling + 3x3 conv",
    citation=CITATION,
    presets={"paper": {"base_channels": 64, "depth": 4}},
    reported={
        "paper": {
            "params_m": 34.88,
            "gmac": 266.54,
            # Table 2 (its "MIoU" is the per-image foreground IoU, not eq. 1: docs/papers/pyconvunet.md; Dice)
            "kaggle_lung.foreground_iou": 0.7723, "kaggle_lung.dice": 0.8278,
            "liver.foreground_iou": 0.6989, "liver.dice": 0.8083,
            "isbi2012.foreground_iou": 0.8269, "isbi2012.dice": 0.8945,
        }
    },
)
def attention_unet(
    in_channels: int, out_channels: int, base_channels: int, depth: int, spatial_dims: int, final_activation: FinalActivation
) -> AttentionUNet:
    return AttentionUNet(in_channels, out_channels, base_channels, depth, spatial_dims, final_activation)
