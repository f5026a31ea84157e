"""Network building blocks shared by more than one plugin (U-Net skeleton, conv-norm-act, output heads)."""

from segzoo.nn.blocks import ConvNormAct, DoubleConv, check_input_size, output_activation, plain_conv
from segzoo.nn.params import ArchitectureParams, EncoderDecoderParams
from segzoo.nn.unet import UNetSkeleton

__all__ = [
    "ArchitectureParams",
    "EncoderDecoderParams","ConvNormAct", "DoubleConv", "UNetSkeleton", "check_input_size", "output_activation", "plain_conv"]
