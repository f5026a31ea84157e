"""The FREM paper's U-Net with SE blocks (Fig. 4) and its ablation rows (Tables 1-2) as presets.

Every stage is ``DoubleConv -> SE``; the last encoder stage (the bottleneck, the paper's
"yellow layer", 512 channels with the default widths) can also carry channel dropout or a
deep-supervision head. FREM itself is not part of the network: it is the ``frem`` train hook.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from monai.networks.layers.factories import Conv, Dropout
from pydantic import Field
from torch import nn

import segzoo
from segzoo.nn import ArchitectureParams, DoubleConv, StageFactory, UNetSkeleton, plain_conv
from segzoo_frem import CITATION, DROSOPHILA_FREM, ENCODER_END_CHANNELS, MOUSE_FREM
from segzoo_frem.se import se


class SEUNetParams(ArchitectureParams):
    in_channels: int = Field(1, gt=0, description="input image channels")
    out_channels: int = Field(4, gt=0, description="classes (softmax); the paper has 3 (mouse cells) or 4 (Drosophila)")
    base_channels: int = Field(32, gt=0, description="features at full resolution; doubled after each pooling (512 at depth 4)")
    depth: int = Field(4, ge=1, le=6, description="number of poolings; depth - 1 is the 'without deep layers' row")
    se_reduction: int = Field(16, gt=0, description="SE reduction ratio r")
    bottleneck_dropout: float = Field(0.0, ge=0, lt=1, description="channel-dropout rate at the encoder end (dropout row: B/512)")
    deep_supervision: bool = Field(False, description="add a 1x1-conv head at the encoder end; training returns [main, aux]")


class SEUNet(UNetSkeleton):
    """U-Net whose bottleneck may feed a deep-supervision head (the paper's 'SuperVision' row).

    With ``deep_supervision`` and in training mode ``forward`` returns ``[main, aux]``: ``main`` is the
    usual output, ``aux`` the 1x1-conv class map of the last encoder stage resized (bilinear) to the
    input size, both through ``final_activation``. The ``deep_supervision`` loss weights them
    ``1 - λ`` and ``λ``. In evaluation the head is skipped and the output is a single tensor.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: list[int],
        make_stage: StageFactory,
        spatial_dims: int,
        final_activation: str,
        deep_supervision: bool,
    ) -> None:
        super().__init__(in_channels, out_channels, channels, make_stage, spatial_dims, "transpose", final_activation, "SE U-Net")
        self.supervision_head: nn.Module | None = None
        if deep_supervision:
            self.supervision_head = nn.Sequential(
                Conv[Conv.CONV, spatial_dims](channels[-1], out_channels, 1),
                nn.Upsample(scale_factor=self.stride, mode="bilinear" if spatial_dims == 2 else "trilinear"),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = self.encode(x)
        main = self.activation(self.decode(skips))
        if self.supervision_head is None or not self.training:
            return main
        return [main, self.activation(self.supervision_head(skips[-1]))]


def se_stage(in_channels: int, out_channels: int, spatial_dims: int, se_reduction: int, dropout: float) -> nn.Sequential:
    """``conv`` (two conv-BN-ReLU) then ``se``, then ``dropout`` if a rate is given; the names make hook paths readable."""
    parts: OrderedDict[str, nn.Module] = OrderedDict(
        conv=DoubleConv(in_channels, out_channels, plain_conv(3, bias=True, spatial_dims=spatial_dims), spatial_dims),
        se=se(out_channels, se_reduction, spatial_dims),
    )
    if dropout > 0:
        parts["dropout"] = Dropout[Dropout.DROPOUT, spatial_dims](dropout)
    return nn.Sequential(parts)


BASELINE = {"base_channels": 32, "depth": 4}


@segzoo.component(
    "architecture",
    "se_unet",
    params=SEUNetParams,
    summary="U-Net with a squeeze-and-excitation block after every stage; FREM's network and its ablations",
    citation=CITATION,
    presets={
        "paper": BASELINE,
        "baseline": BASELINE,
        "without_deep_layers": {**BASELINE, "depth": BASELINE["depth"] - 1},
        "supervision": {**BASELINE, "deep_supervision": True},
        "dropout_mouse": {**BASELINE, "bottleneck_dropout": MOUSE_FREM["B"] / ENCODER_END_CHANNELS},
        "dropout_drosophila": {**BASELINE, "bottleneck_dropout": DROSOPHILA_FREM["B"] / ENCODER_END_CHANNELS},
    },
)
def se_unet(
    in_channels: int,
    out_channels: int,
    base_channels: int,
    depth: int,
    se_reduction: int,
    bottleneck_dropout: float,
    deep_supervision: bool,
    spatial_dims: int,
    final_activation: str,
) -> SEUNet:
    def make_stage(cin: int, cout: int, level: int) -> nn.Sequential:
        # Level ``depth`` is reached only by the last encoder stage; decoder stages sit at levels below it.
        return se_stage(cin, cout, spatial_dims, se_reduction, bottleneck_dropout if level == depth else 0.0)

    channels = [base_channels * 2**i for i in range(depth + 1)]
    return SEUNet(in_channels, out_channels, channels, make_stage, spatial_dims, final_activation, deep_supervision)
