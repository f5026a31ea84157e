"""Small composable blocks, dims-agnostic through MONAI's layer factories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from monai.networks.layers.factories import Conv, Norm
from torch import nn

import segzoo

FinalActivation = Literal["auto", "sigmoid", "softmax", "identity"]
ConvFactory = Callable[[int, int], nn.Module]


def output_activation(kind: FinalActivation, out_channels: int) -> nn.Module:
    """The head's activation: ``auto`` is sigmoid for one output channel (binary masks) and softmax otherwise.

    Bundles train with ``identity`` (logits) because the losses apply the activation themselves,
    which is numerically stable and safe under mixed precision.
    """
    if kind == "auto":
        kind = "sigmoid" if out_channels == 1 else "softmax"
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "softmax":
        return nn.Softmax(dim=1)
    return nn.Identity()


def check_input_size(x: torch.Tensor, stride: int, network: str) -> None:
    """Fail with a clear message, instead of a shape crash in a skip connection, when a size is not a multiple of the stride."""
    bad = [s for s in x.shape[2:] if s % stride]
    if bad:
        sizes = "x".join(str(s) for s in x.shape[2:])
        fixed = "x".join(str(max(stride, round(s / stride) * stride)) for s in x.shape[2:])
        raise ValueError(
            f"{network} needs every spatial size to be a multiple of its total stride {stride}, got {sizes}; "
            f"pad or crop the input (e.g. to {fixed}), or use a sliding-window inferer with a roi of multiples of {stride}"
        )


class ConvNormAct(nn.Sequential):
    """``conv -> batch norm -> ReLU``; the conv comes from a factory so PyConv or any block can stand in for it."""

    def __init__(self, in_channels: int, out_channels: int, conv: ConvFactory, spatial_dims: int = 2) -> None:
        super().__init__(conv(in_channels, out_channels), Norm[Norm.BATCH, spatial_dims](out_channels), nn.ReLU(inplace=True))


class DoubleConv(nn.Sequential):
    """Two :class:`ConvNormAct` in a row: the stage of every U-Net in the papers."""

    def __init__(self, in_channels: int, out_channels: int, conv: ConvFactory, spatial_dims: int = 2) -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, conv, spatial_dims),
            ConvNormAct(out_channels, out_channels, conv, spatial_dims),
        )


def block_factory(name: str, **params: Any) -> ConvFactory:
    """A factory of the registered ``block`` ``name`` (built with ``params`` for each ``in_channels -> out_channels``), so
    a network that takes a block can take any registered one by name (e.g. ``pyconv``)."""
    segzoo.get("block", name)  # an unknown name fails now, naming the registered blocks

    def make(in_channels: int, out_channels: int) -> nn.Module:
        return segzoo.build("block", name, in_channels=in_channels, out_channels=out_channels, **params)

    return make


def plain_conv(kernel_size: int = 3, bias: bool = True, spatial_dims: int = 2) -> ConvFactory:
    """A same-padded convolution factory, the U-Net's default."""

    def make(in_channels: int, out_channels: int) -> nn.Module:
        return Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)

    return make
