"""ResNet34-UNet: a ResNet-34 encoder with a LinkNet decoder (Chaurasia & Culurciello 2017).

The encoder is MONAI's ``ResNet`` configured as torchvision's ResNet-34 (7x7/2 stem, max pooling,
projection shortcuts without bias) and used up to ``layer4``; MONAI's ``ResNetFeatures`` is not used
because its ResNet-34 has parameter-free (type A) shortcuts. LinkNet joins encoder and decoder by
addition, not concatenation, which keeps the decoder and head light (0.37 M of the 21.66 M parameters).
The encoder keeps the core's backbone contract and is registered as backbone ``resnet34``, so MUNet (or any
network that builds a backbone by name) can use it.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv
from monai.networks.nets import ResNet
from torch import nn

import segzoo
from segzoo.nn import ArchitectureParams, BackboneParams, FinalActivation, check_input_size, output_activation

CITATION = (
    "He K, Zhang X, Ren S, Sun J. Deep residual learning for image recognition. CVPR 2016; "
    "Chaurasia A, Culurciello E. LinkNet: exploiting encoder representations for efficient semantic segmentation. VCIP 2017"
)

RESNET34_WIDTHS = (64, 128, 256, 512)
RESNET34_BLOCKS = (3, 4, 6, 3)


class ResNet34Encoder(nn.Module):
    """Feature maps of the stem and the four residual stages, at strides 2, 4, 8, 16 and 32 (a :class:`segzoo.nn.Backbone`)."""

    out_channels = (RESNET34_WIDTHS[0], *RESNET34_WIDTHS)
    strides = (2, 4, 8, 16, 32)

    def __init__(self, in_channels: int, spatial_dims: int = 2) -> None:
        super().__init__()
        self.resnet = ResNet(
            "basic",
            list(RESNET34_BLOCKS),
            list(RESNET34_WIDTHS),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=2,
            shortcut_type="B",
            feed_forward=False,
            bias_downsample=False,
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.resnet
        x = net.act(net.bn1(net.conv1(x)))
        features = [x]
        x = net.maxpool(x)
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = stage(x)
            features.append(x)
        return features


class LinkNetDecoderBlock(nn.Sequential):
    """1x1 conv to a quarter of the channels, 3x3 transposed conv x2, 1x1 conv to ``out_channels``; each with BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 2) -> None:
        narrow = in_channels // 4
        super().__init__(
            Convolution(spatial_dims, in_channels, narrow, kernel_size=1, norm="batch", act="relu"),
            Convolution(spatial_dims, narrow, narrow, strides=2, kernel_size=3, norm="batch", act="relu", is_transposed=True),
            Convolution(spatial_dims, narrow, out_channels, kernel_size=1, norm="batch", act="relu"),
        )


class ResNet34UNet(nn.Module):
    """Each decoder block doubles the resolution and is added to the next shallower encoder stage.

    The head returns from stride 2 to full resolution with a 4x4 transposed conv (64 -> 32) + ReLU,
    then a 3x3 conv + ReLU and a 3x3 conv to the classes.
    """

    stride = 32

    def __init__(
        self, in_channels: int, out_channels: int, spatial_dims: int = 2, final_activation: FinalActivation = "auto"
    ) -> None:
        super().__init__()
        self.encoder = ResNet34Encoder(in_channels, spatial_dims)
        widths = RESNET34_WIDTHS
        # Deepest first, each block narrowing to the next shallower stage: 512->256, 256->128, 128->64, 64->64.
        self.decoder = nn.ModuleList(
            LinkNetDecoderBlock(widths[stage], widths[max(stage - 1, 0)], spatial_dims) for stage in reversed(range(len(widths)))
        )
        head_width = RESNET34_WIDTHS[0] // 2
        self.head = nn.Sequential(
            Conv[Conv.CONVTRANS, spatial_dims](RESNET34_WIDTHS[0], head_width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            Conv[Conv.CONV, spatial_dims](head_width, head_width, 3, padding=1),
            nn.ReLU(inplace=True),
            Conv[Conv.CONV, spatial_dims](head_width, out_channels, 3, padding=1),
        )
        self.activation = output_activation(final_activation, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.stride, "ResNet34-UNet")
        skips = self.encoder(x)[1:]  # the residual stages, strides 4..32; the decoder's head rebuilds stride 2
        x = skips.pop()
        for block in self.decoder:
            x = block(x)
            if skips:
                x = x + skips.pop()
        return self.activation(self.head(x))


class ResNet34UNetParams(ArchitectureParams):
    """ResNet-34 fixes the encoder widths; the decoder follows them."""


@segzoo.component(
    "architecture",
    "resnet34_unet",
    params=ResNet34UNetParams,
    summary="ResNet-34 encoder (MONAI ResNet) with a LinkNet decoder: additive skips, transposed-conv up-sampling",
    citation=CITATION,
    presets={"paper": {}},
    reported={
        "paper": {
            "params_m": 21.66,
            "gmac": 24.27,
            # Table 2 (its "MIoU" is the per-image foreground IoU, not eq. 1: docs/papers/pyconvunet.md; Dice)
            "kaggle_lung.foreground_iou": 0.9494, "kaggle_lung.dice": 0.9721,
            "liver.foreground_iou": 0.6623, "liver.dice": 0.7451,
            "isbi2012.foreground_iou": 0.8398, "isbi2012.dice": 0.9115,
        }
    },
)
def resnet34_unet(
    in_channels: int, out_channels: int, spatial_dims: int, final_activation: FinalActivation
) -> ResNet34UNet:
    return ResNet34UNet(in_channels, out_channels, spatial_dims, final_activation)


@segzoo.component(
    "backbone", "resnet34", params=BackboneParams, citation=CITATION.split("; ")[0],
    summary="ResNet-34 (MONAI ResNet, torchvision layout): stem and four stages at strides 2..32, ResNet34-UNet's encoder",
)
def resnet34(in_channels: int) -> ResNet34Encoder:
    return ResNet34Encoder(in_channels)
