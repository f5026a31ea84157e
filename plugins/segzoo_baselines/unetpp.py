"""UNet++ (Zhou et al. 2018): a U-Net whose skip pathways are nested, densely connected decoders.

Written here rather than wrapping MONAI's ``BasicUNetPlusPlus``: MONAI's up-sampling halves the channels
with a learned convolution before concatenating, which at base 32 gives 131.6 GMac at 512x512 instead of
the paper's 138.63. The paper's UNet++ concatenates the bilinearly up-sampled features as they are.
"""

from __future__ import annotations

from typing import Literal

import torch
from monai.networks.layers.factories import Conv, Pool
from pydantic import Field
from torch import nn

import segzoo
from segzoo.nn import DoubleConv, EncoderDecoderParams, FinalActivation, check_input_size, output_activation, plain_conv

EvalHead = Literal["mean", "full"]

CITATION = (
    "Zhou Z, Rahman Siddiquee MM, Tajbakhsh N, Liang J. UNet++: a nested U-Net architecture for medical image "
    "segmentation. DLMIA 2018, LNCS 11045:3-11"
)


class UNetPlusPlus(nn.Module):
    """Node ``X[i][j]`` (level ``i``, column ``j``) sees every earlier node of its level and the up-sampled ``X[i+1][j-1]``.

    Column 0 is the encoder; ``X[0][depth]`` is the plain output. With ``deep_supervision`` every top node
    ``X[0][1..depth]`` gets its own 1x1 head:

    * in training mode the network returns a **list** of the ``depth`` head outputs, the full network's
      (``X[0][depth]``) first, so ``monai.losses.DeepSupervisionLoss`` weights it most;
    * in eval mode it returns **one tensor**: with ``eval_head="mean"`` the mean of the heads' logits passed
      through the final activation (the UNet++ paper's "accurate mode"); with ``"full"`` the full network's
      head alone, as the PyConvU-Net authors' code scores its UNet++ row.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_channels: int = 32,
        depth: int = 4,
        deep_supervision: bool = False,
        spatial_dims: int = 2,
        final_activation: FinalActivation = "auto",
        eval_head: EvalHead = "mean",
    ) -> None:
        super().__init__()
        self.eval_head = eval_head
        self.depth = depth
        self.stride = 2**depth
        self.deep_supervision = deep_supervision
        channels = [base_channels * 2**level for level in range(depth + 1)]
        conv = plain_conv(3, bias=True, spatial_dims=spatial_dims)
        self.pool = Pool[Pool.MAX, spatial_dims](2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear" if spatial_dims == 2 else "trilinear")
        # nodes[i][j] is X[i][j]; its input is j same-level maps plus the up-sampled deeper map.
        self.nodes = nn.ModuleList()
        for level in range(depth + 1):
            encoder_in = in_channels if level == 0 else channels[level - 1]
            row = [DoubleConv(encoder_in, channels[level], conv, spatial_dims)]
            row += [
                DoubleConv(column * channels[level] + channels[level + 1], channels[level], conv, spatial_dims)
                for column in range(1, depth - level + 1)
            ]
            self.nodes.append(nn.ModuleList(row))
        head_count = depth if deep_supervision else 1
        self.heads = nn.ModuleList(Conv[Conv.CONV, spatial_dims](channels[0], out_channels, 1) for _ in range(head_count))
        self.activation = output_activation(final_activation, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        check_input_size(x, self.stride, "UNet++")
        grid: list[list[torch.Tensor]] = []
        for level in range(self.depth + 1):
            x = self.nodes[level][0](x if level == 0 else self.pool(x))
            grid.append([x])
        for column in range(1, self.depth + 1):
            for level in range(self.depth - column + 1):
                inputs = [*grid[level], self.up(grid[level + 1][column - 1])]
                grid[level].append(self.nodes[level][column](torch.cat(inputs, dim=1)))
        if not self.deep_supervision:
            return self.activation(self.heads[0](grid[0][-1]))
        logits = [head(top) for head, top in zip(self.heads, grid[0][1:])][::-1]
        if self.training:
            return [self.activation(out) for out in logits]
        return self.activation(logits[0] if self.eval_head == "full" else torch.stack(logits).mean(dim=0))


class UNetPlusPlusParams(EncoderDecoderParams):
    deep_supervision: bool = Field(
        False, description="a head on every top node: a list of outputs in training, their mean in eval"
    )
    eval_head: EvalHead = Field(
        "mean", description="with deep supervision, what eval returns: the mean of the heads, or the full network's head"
    )


@segzoo.component(
    "architecture",
    "unetpp",
    params=UNetPlusPlusParams,
    summary="UNet++: nested dense skip pathways, bilinear up-sampling, optional deep supervision",
    citation=CITATION,
    presets={"paper": {"base_channels": 32, "depth": 4, "deep_supervision": False}},
    reported={
        "paper": {
            "params_m": 9.16,
            "gmac": 138.63,
            # Table 2 (its "MIoU" is the per-image foreground IoU, not eq. 1: docs/papers/pyconvunet.md; Dice)
            "kaggle_lung.foreground_iou": 0.6078, "kaggle_lung.dice": 0.6471,
            "liver.foreground_iou": 0.6504, "liver.dice": 0.769,
            "isbi2012.foreground_iou": 0.7878, "isbi2012.dice": 0.8808,
        }
    },
)
def unetpp(
    in_channels: int,
    out_channels: int,
    base_channels: int,
    depth: int,
    deep_supervision: bool,
    spatial_dims: int,
    final_activation: FinalActivation,
    eval_head: EvalHead,
) -> UNetPlusPlus:
    return UNetPlusPlus(
        in_channels, out_channels, base_channels, depth, deep_supervision, spatial_dims, final_activation, eval_head
    )
