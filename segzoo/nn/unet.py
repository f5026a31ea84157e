"""The U-Net skeleton: encoder, bottleneck, decoder with skips; stages are supplied by the caller.

U-Net, PyConvU-Net and SE U-Net differ only in what a stage is, so the
plugins pass a ``make_stage(in_channels, out_channels, level)`` factory and
share the wiring here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from segzoo.nn.blocks import FinalActivation, check_input_size, output_activation

StageFactory = Callable[[int, int, int], nn.Module]


class UNetSkeleton(nn.Module):
    """``len(channels) - 1`` poolings; level ``i`` has ``channels[i]`` features at stride ``2**i``.

    Up-sampling is a stride-2 transposed convolution (the papers' U-Net) or
    bilinear interpolation followed by the decoder stage.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        make_stage: StageFactory,
        spatial_dims: int = 2,
        upsample: Literal["transpose", "bilinear"] = "transpose",
        final_activation: FinalActivation = "auto",
        name: str = "U-Net",
    ) -> None:
        super().__init__()
        self.name = name
        self.stride = 2 ** (len(channels) - 1)
        ins = [in_channels, *channels[:-1]]
        self.encoder = nn.ModuleList(make_stage(i, o, level) for level, (i, o) in enumerate(zip(ins, channels)))
        self.pool = Pool[Pool.MAX, spatial_dims](2)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(len(channels) - 1)):
            deep, skip = channels[level + 1], channels[level]
            if upsample == "transpose":
                self.up.append(Conv[Conv.CONVTRANS, spatial_dims](deep, skip, 2, stride=2))
                self.decoder.append(make_stage(2 * skip, skip, level))
            else:
                self.up.append(nn.Upsample(scale_factor=2, mode="bilinear" if spatial_dims == 2 else "trilinear"))
                self.decoder.append(make_stage(deep + skip, skip, level))
        self.head = Conv[Conv.CONV, spatial_dims](channels[0], out_channels, 1)
        self.activation = output_activation(final_activation, out_channels)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every level, shallowest first (train hooks attach to the last one)."""
        check_input_size(x, self.stride, self.name)
        skips = []
        for level, stage in enumerate(self.encoder):
            x = stage(x if level == 0 else self.pool(x))
            skips.append(x)
        return skips

    def decode(self, skips: list[torch.Tensor]) -> torch.Tensor:
        """Logits from the encoder's feature maps (variants add heads between ``encode`` and ``decode``)."""
        skips = list(skips)
        x = skips.pop()
        for up, stage in zip(self.up, self.decoder):
            x = stage(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.decode(self.encode(x)))
