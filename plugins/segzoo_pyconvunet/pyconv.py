"""Pyramidal convolution (Duta et al. 2020), as PyConvU-Net uses it.

A PyConv has ``n`` levels; level ``z`` convolves the whole input with a
``K_z x K_z`` kernel in ``G_z`` groups and produces its share of the output
channels. Larger kernels use more groups, so parameters and MACs stay close
to a single ``K_1 x K_1`` convolution (the paper's eq. 5-8).
"""

from __future__ import annotations

from typing import Sequence

import torch
from monai.networks.layers.factories import Conv
from pydantic import Field, model_validator
from torch import nn

import segzoo

CITATION_PYCONV = "Duta IC, Liu L, Zhu F, Shao L. Pyramidal convolution: rethinking convolutional neural networks for visual recognition. arXiv:2006.11538 (2020)"


def split_channels(out_channels: int, shares: Sequence[float] | None, levels: int) -> list[int]:
    """Output channels per level: ``shares`` (normalised) of ``out_channels``; the rounding remainder goes to the last level."""
    weights = [1.0] * levels if shares is None else [float(s) for s in shares]
    total = sum(weights)
    counts = [int(out_channels * w / total) for w in weights[:-1]]
    counts.append(out_channels - sum(counts))
    if min(counts) <= 0:
        raise ValueError(f"PyConv: {out_channels} output channels cannot be split by shares {list(weights)} (a level would get {min(counts)})")
    return counts


def level_groups(in_channels: int, level_out: Sequence[int], groups: Sequence[int]) -> list[int]:
    """Groups each level can actually use: the largest divisor of both channel counts not above the requested one.

    Narrow layers (the first layer sees 1-3 input channels) cannot be split in 16 groups; shrinking the
    group count keeps the block valid there instead of refusing the configuration.
    """
    used = []
    for out, g in zip(level_out, groups):
        g = min(g, in_channels, out)
        while in_channels % g or out % g:
            g -= 1
        used.append(g)
    return used


class PyConvParams(segzoo.Params):
    in_channels: int = Field(gt=0, description="input feature maps FM_i")
    out_channels: int = Field(gt=0, description="output feature maps FM_o (sum over levels)")
    kernels: list[int] = Field([3, 5, 7, 9], description="kernel size K_z of each pyramid level (odd)")
    groups: list[int] = Field([1, 4, 8, 16], description="groups G_z of each level; reduced where the channels do not divide")
    shares: list[float] | None = Field(None, description="share of the output channels of each level; equal when unset")
    spatial_dims: int = Field(2, ge=1, le=3, description="2 for images, 3 for volumes")
    bias: bool = Field(False, description="add a bias to every level (BN follows in PyConvU-Net, so off)")

    @model_validator(mode="after")
    def _levels_agree(self) -> "PyConvParams":
        n = len(self.kernels)
        if len(self.groups) != n or (self.shares is not None and len(self.shares) != n):
            raise ValueError(f"kernels ({n}), groups ({len(self.groups)}) and shares must have one entry per pyramid level")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels must be odd for same padding, got {self.kernels}")
        return self


@segzoo.component(
    "block",
    "pyconv",
    params=PyConvParams,
    summary="Pyramidal convolution: parallel levels with growing kernels and groups, concatenated",
    citation=CITATION_PYCONV,
)
class PyConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernels: Sequence[int] = (3, 5, 7, 9),
        groups: Sequence[int] = (1, 4, 8, 16),
        shares: Sequence[float] | None = None,
        spatial_dims: int = 2,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.level_out = split_channels(out_channels, shares, len(kernels))
        self.level_groups = level_groups(in_channels, self.level_out, groups)
        conv = Conv[Conv.CONV, spatial_dims]
        self.levels = nn.ModuleList(
            conv(in_channels, out, k, padding=k // 2, groups=g, bias=bias)
            for k, g, out in zip(kernels, self.level_groups, self.level_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([level(x) for level in self.levels], dim=1)


def pyconv_parameters(in_channels: int, level_out: Sequence[int], kernels: Sequence[int], groups: Sequence[int]) -> int:
    """Eq. (7) with the groups made explicit: sum_z K_z^2 * (FM_i / G_z) * FM_oz (no bias)."""
    return sum(k * k * (in_channels // g) * out for k, g, out in zip(kernels, groups, level_out))


def pyconv_macs(in_channels: int, level_out: Sequence[int], kernels: Sequence[int], groups: Sequence[int], height: int, width: int) -> int:
    """Eq. (8): eq. (7) times the output area W * H."""
    return pyconv_parameters(in_channels, level_out, kernels, groups) * height * width
