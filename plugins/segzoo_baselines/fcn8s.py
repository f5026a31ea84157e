"""FCN-8s (Long, Shelhamer & Darrell 2015) on the 13 convolutions of VGG-16, written without torchvision.

FCN-8s fuses the stride-32 prediction with the pool4 (stride 16) and pool3 (stride 8) features before
returning to full resolution. The paper's variant (18.64 M parameters) keeps VGG-16's convolutions only:
instead of fc6/fc7 (which alone hold 117 M parameters) and a fixed x8 bilinear up-sampling, five learned
x2 transposed convolutions (+ ReLU + BN) halve the width at each step, and the first two add the pool4
and pool3 features before their BN. MONAI has no VGG, so the encoder is written here.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Norm, Pool
from torch import nn

import segzoo
from segzoo.nn import ArchitectureParams, FinalActivation, check_input_size, output_activation

CITATION = (
    "Long J, Shelhamer E, Darrell T. Fully convolutional networks for semantic segmentation. CVPR 2015; "
    "Simonyan K, Zisserman A. Very deep convolutional networks for large-scale image recognition. ICLR 2015"
)

# (width, convolutions) of VGG-16's five stages, each followed by a 2x2 max pooling.
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
FUSED_STAGES = 2  # the decoder adds pool4, then pool3: the "8s" of FCN-8s


class VGGStage(nn.Sequential):
    """``convolutions`` 3x3 convs + ReLU (no BN, as in VGG-16), then a 2x2 max pooling."""

    def __init__(self, in_channels: int, out_channels: int, convolutions: int, spatial_dims: int = 2) -> None:
        widths = [in_channels] + [out_channels] * convolutions
        super().__init__(
            *(
                Convolution(spatial_dims, cin, cout, kernel_size=3, act="relu", norm=None)
                for cin, cout in zip(widths, widths[1:])
            ),
            Pool[Pool.MAX, spatial_dims](2),
        )


class FCN8s(nn.Module):
    """VGG-16 encoder (stride 32) and a decoder of five x2 transposed convs, fusing pool4 and pool3 on the way up."""

    stride = 2 ** len(VGG16_STAGES)

    def __init__(
        self, in_channels: int, out_channels: int, spatial_dims: int = 2, final_activation: FinalActivation = "auto"
    ) -> None:
        super().__init__()
        widths = [in_channels] + [width for width, _ in VGG16_STAGES]
        self.encoder = nn.ModuleList(
            VGGStage(cin, cout, convolutions, spatial_dims) for cin, (cout, convolutions) in zip(widths, VGG16_STAGES)
        )
        # Decoder widths: pool5's 512, then the encoder's widths going up (512, 256, 128, 64), then half of 64.
        up_widths = [*reversed(widths[1:]), widths[1] // 2]
        self.up = nn.ModuleList(
            Convolution(spatial_dims, cin, cout, strides=2, kernel_size=3, act="relu", norm=None, is_transposed=True)
            for cin, cout in zip(up_widths, up_widths[1:])
        )
        self.norms = nn.ModuleList(Norm[Norm.BATCH, spatial_dims](width) for width in up_widths[1:])
        self.head = Conv[Conv.CONV, spatial_dims](up_widths[-1], out_channels, 1)
        self.activation = output_activation(final_activation, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.stride, "FCN8s")
        pooled = []
        for stage in self.encoder:
            x = stage(x)
            pooled.append(x)
        fused = pooled[-1 - FUSED_STAGES : -1]  # pool3, pool4
        x = pooled[-1]
        for up, norm in zip(self.up, self.norms):
            x = up(x)
            if fused:
                x = x + fused.pop()
            x = norm(x)
        return self.activation(self.head(x))


class FCN8sParams(ArchitectureParams):
    """FCN-8s has no width parameter: the VGG-16 widths are fixed."""


@segzoo.component(
    "architecture",
    "fcn8s",
    params=FCN8sParams,
    summary="FCN-8s: VGG-16 convolutions, learned x2 up-sampling fused with pool4 and pool3",
    citation=CITATION,
    presets={"paper": {}},
    reported={
        "paper": {
            "params_m": 18.64,
            "gmac": 85.86,
            # Table 2 (its "MIoU" is the per-image foreground IoU, not eq. 1: docs/papers/pyconvunet.md; Dice)
            "kaggle_lung.foreground_iou": 0.9545, "kaggle_lung.dice": 0.9752,
            "liver.foreground_iou": 0.5139, "liver.dice": 0.6447,
            "isbi2012.foreground_iou": 0.8345, "isbi2012.dice": 0.9005,
        }
    },
)
def fcn8s(in_channels: int, out_channels: int, spatial_dims: int, final_activation: FinalActivation) -> FCN8s:
    return FCN8s(in_channels, out_channels, spatial_dims, final_activation)
