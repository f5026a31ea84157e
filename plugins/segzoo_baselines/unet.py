"""The U-Net baseline as the PyConvU-Net paper trained it (Ronneberger et al. 2015, with padding and BN)."""

from __future__ import annotations

import segzoo
from segzoo.nn import DoubleConv, EncoderDecoderParams, UNetSkeleton, plain_conv

CITATION = "Ronneberger O, Fischer P, Brox T. U-Net: convolutional networks for biomedical image segmentation. MICCAI 2015"


class UNetParams(EncoderDecoderParams):
    """The U-Net needs nothing beyond width and depth."""


@segzoo.component(
    "architecture",
    "unet",
    params=UNetParams,
    summary="U-Net: double 3x3 conv + BN + ReLU per stage, 4 poolings, transposed-conv up-sampling",
    citation=CITATION,
    presets={"paper": {"base_channels": 32, "depth": 4}},
    reported={
        "paper": {
            "params_m": 7.77,
            "gmac": 48.57,
            # Table 2 (its "MIoU" is the per-image foreground IoU, not eq. 1: docs/papers/pyconvunet.md; Dice)
            "kaggle_lung.foreground_iou": 0.7279, "kaggle_lung.dice": 0.7834,
            "liver.foreground_iou": 0.6207, "liver.dice": 0.7386,
            "isbi2012.foreground_iou": 0.7742, "isbi2012.dice": 0.8639,
        }
    },
)
def unet(
    in_channels: int, out_channels: int, base_channels: int, depth: int, spatial_dims: int, final_activation: str
) -> UNetSkeleton:
    conv = plain_conv(3, bias=True, spatial_dims=spatial_dims)
    channels = [base_channels * 2**i for i in range(depth + 1)]
    return UNetSkeleton(
        in_channels,
        out_channels,
        channels,
        lambda cin, cout, level: DoubleConv(cin, cout, conv, spatial_dims),
        spatial_dims,
        "transpose",
        final_activation,
        "U-Net",
    )
