"""MUNet (Sec. III, Fig. 1): any backbone, a classification branch on C5, and four mask branches B5..B2.

The decoder walks up the pyramid: step B_k up-samples the deeper features x2,
concatenates C_{k-1}, runs 3 DBL blocks (3x3 conv, BN, leaky ReLU) that halve
the width, and a 1x1 conv gives branch k's mask at 1/2^(k-1) of the input
(B5 at 1/16 .. B2 at 1/2). A fusion (area-weighted voting by default) merges
the four masks, resized to the input, into the one mask the model predicts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Literal, TypedDict

import torch
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.factories import Conv
from pydantic import Field, field_validator
from torch import nn

import segzoo
from segzoo.nn import check_backbone, check_input_size, output_activation
from segzoo_munet import CITATION
from segzoo_munet.backbones import BACKBONE_NAMES
from segzoo_munet.backbones.pyramid import STRIDES

DBL_PER_STEP = 3
LEAKY_SLOPE = 0.1  # Darknet's DBL slope; the paper names the block, not the slope


class MUNetOutput(TypedDict):
    """What :class:`MUNet` returns (a plain dict, so MONAI engines and ``from_engine`` can pick keys).

    * ``masks``: the four branch masks B2..B5 (``masks[k - 2]`` is B_k), finest first, each ``(B, C, H/2^(k-1), W/2^(k-1))``,
      after ``final_activation`` (logits with ``identity``, as the losses want);
    * ``fused``: the fused mask ``(B, C, H, W)``, always probabilities (eq. 1 combines masks in [0, 1]);
    * ``logits``: the classification branch's class logits ``(B, num_classes)``.
    """

    masks: list[torch.Tensor]
    fused: torch.Tensor
    logits: torch.Tensor


def dbl(in_channels: int, out_channels: int) -> Convolution:
    """DBL: 3x3 convolution, batch normalisation, leaky ReLU."""
    return Convolution(
        2, in_channels, out_channels, kernel_size=3, act=("leakyrelu", {"negative_slope": LEAKY_SLOPE}), norm="batch", bias=False
    )


class DecoderStep(nn.Module):
    """One mask branch: up-sample x2, concatenate the encoder map, 3 DBL blocks, and a 1x1 conv to the mask."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, mask_channels: int) -> None:
        super().__init__()
        self.up = UpSample(2, scale_factor=2, mode="nontrainable", interp_mode="bilinear", align_corners=False)
        widths = [in_channels + skip_channels] + [out_channels] * DBL_PER_STEP
        self.blocks = nn.Sequential(*(dbl(i, o) for i, o in itertools.pairwise(widths)))
        self.mask = Conv[Conv.CONV, 2](out_channels, mask_channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.blocks(torch.cat([self.up(x), skip], dim=1))
        return x, self.mask(x)


class MUNet(nn.Module):
    """Encoder-decoder with a classification head on C5 and one mask per decoder step; see :class:`MUNetOutput`."""

    def __init__(
        self,
        backbone: nn.Module,
        fusion: nn.Module,
        out_channels: int = 1,
        num_classes: int = 2,
        decoder_channels: Sequence[int] | None = None,
        final_activation: str = "auto",
    ) -> None:
        super().__init__()
        encoder_channels = check_backbone(backbone, "MUNet", STRIDES)
        if decoder_channels is None:
            decoder_channels = [encoder_channels[-1] // 2**i for i in range(1, 5)]
        self.backbone = backbone
        self.fusion = fusion
        self.stride = STRIDES[-1]
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(encoder_channels[-1], num_classes))
        deeper = [encoder_channels[-1], *decoder_channels[:-1]]
        skips = encoder_channels[-2::-1]
        self.decoder = nn.ModuleList(DecoderStep(d, s, o, out_channels) for d, s, o in zip(deeper, skips, decoder_channels))
        self.to_probability = output_activation("auto", out_channels)
        self.activation = output_activation(final_activation, out_channels)

    def forward(self, x: torch.Tensor) -> MUNetOutput:
        check_input_size(x, self.stride, "MUNet")
        features = self.backbone(x)
        y = features[-1]
        masks = []
        for step, skip in zip(self.decoder, reversed(features[:-1])):
            y, mask = step(y, skip)
            masks.append(mask)
        masks.reverse()
        fused = self.fusion([self.to_probability(m) for m in masks], x.shape[2:])
        return {"masks": [self.activation(m) for m in masks], "fused": fused, "logits": self.classifier(features[-1])}


class MUNetParams(segzoo.Params):
    in_channels: int = Field(3, gt=0, description="input image channels")
    out_channels: int = Field(1, gt=0, description="mask channels: 1 for a binary mask (the paper), k+1 for k classes")
    num_classes: int = Field(2, ge=2, description="classes of the classification branch (benign / malignant in the paper)")
    backbone: str = Field("resnet50", description=f"registered backbone name ({', '.join(BACKBONE_NAMES)} or a plugin's)")
    backbone_params: dict[str, Any] = Field(default_factory=dict, description="extra parameters of the backbone, e.g. downsample")
    decoder_channels: list[int] | None = Field(
        None, description="width of the steps B5, B4, B3, B2; unset: C5's channels halved at every step"
    )
    fusion: str = Field(
        "area_weighted", description="registered fusion that merges the branch masks (area_weighted, mean, max, single_branch)"
    )
    fusion_params: dict[str, Any] = Field(default_factory=dict, description="parameters of the fusion, e.g. {'branch': 2}")
    final_activation: Literal["auto", "sigmoid", "softmax", "identity"] = Field(
        "auto", description="applied to the branch masks: auto is sigmoid for 1 channel (the paper); identity returns logits"
    )

    @field_validator("decoder_channels")
    @classmethod
    def _four_steps(cls, channels: list[int] | None) -> list[int] | None:
        if channels is not None and (len(channels) != 4 or min(channels) <= 0):
            raise ValueError(f"decoder_channels needs 4 positive widths (B5, B4, B3, B2), got {channels}")
        return channels


# One preset per row of Table I; "paper" is MUNet-ResNet152, the row with the best sensitivity, accuracy
# and AUC and the model Table II's tricks are built on.
@segzoo.component(
    "architecture",
    "munet",
    params=MUNetParams,
    summary="MUNet: backbone encoder, class branch on C5, four mask branches fused by area-weighted voting",
    citation=CITATION,
    presets={"paper": {"backbone": "resnet152"}, **{name: {"backbone": name} for name in BACKBONE_NAMES}},
)
def munet(
    in_channels: int,
    out_channels: int,
    num_classes: int,
    backbone: str,
    backbone_params: dict[str, Any],
    decoder_channels: list[int] | None,
    fusion: str,
    fusion_params: dict[str, Any],
    final_activation: str,
) -> MUNet:
    encoder = segzoo.build("backbone", backbone, in_channels=in_channels, **backbone_params)
    merge = segzoo.build("fusion", fusion, **fusion_params)
    return MUNet(encoder, merge, out_channels, num_classes, decoder_channels, final_activation)
