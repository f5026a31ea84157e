"""Network building blocks and contracts shared by more than one plugin: the U-Net skeleton, conv-norm-act, output
heads, the parameter models every architecture and backbone derives from, and the backbone contract."""

from segzoo.nn.backbone import Backbone, BackboneParams, check_backbone
from segzoo.nn.blocks import (
    ConvFactory,
    ConvNormAct,
    DoubleConv,
    FinalActivation,
    block_factory,
    check_input_size,
    output_activation,
    plain_conv,
)
from segzoo.nn.params import ArchitectureParams, EncoderDecoderParams
from segzoo.nn.unet import StageFactory, UNetSkeleton

__all__ = [
    "ArchitectureParams",
    "Backbone",
    "BackboneParams",
    "ConvFactory",
    "ConvNormAct",
    "DoubleConv",
    "EncoderDecoderParams",
    "FinalActivation",
    "StageFactory",
    "UNetSkeleton",
    "block_factory",
    "check_backbone",
    "check_input_size",
    "output_activation",
    "plain_conv",
]
