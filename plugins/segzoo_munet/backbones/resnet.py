"""ResNet-50 and ResNet-152 backbones: MONAI's 2D ResNet, cut into the five stages MUNet taps."""

from __future__ import annotations

from collections.abc import Callable

from monai.networks.nets import ResNet
from monai.networks.nets import resnet50 as monai_resnet50
from monai.networks.nets import resnet152 as monai_resnet152
from monai.networks.nets.resnet import ResNetBottleneck, get_inplanes
from torch import nn

import segzoo
from segzoo_munet.backbones.pyramid import BackboneParams, Downsample, DownsampleMode, FeaturePyramid

CITATION = "He K, Zhang X, Ren S, Sun J. Deep residual learning for image recognition. CVPR 2016"


def resnet_pyramid(make: Callable[..., ResNet], in_channels: int, downsample: DownsampleMode, name: str) -> FeaturePyramid:
    """C1 is the 7x7/2 stem; the stem's max-pool is replaced by :class:`Downsample` ahead of layer1 (C2)."""
    net = make(
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_stride=2,
        no_max_pool=True,
        feed_forward=False,
        bias_downsample=False,
    )
    stem_channels = net.conv1.out_channels
    stages = [
        nn.Sequential(net.conv1, net.bn1, net.act),
        nn.Sequential(Downsample(stem_channels, downsample), net.layer1),
        net.layer2,
        net.layer3,
        net.layer4,
    ]
    channels = [stem_channels, *(planes * ResNetBottleneck.expansion for planes in get_inplanes())]
    return FeaturePyramid(stages, channels, name)


@segzoo.component(
    "backbone", "resnet50", params=BackboneParams, summary="ResNet-50 (MONAI), C1..C5 at strides 2..32", citation=CITATION
)
def resnet50(in_channels: int, downsample: DownsampleMode) -> FeaturePyramid:
    return resnet_pyramid(monai_resnet50, in_channels, downsample, "ResNet-50")


@segzoo.component(
    "backbone", "resnet152", params=BackboneParams, summary="ResNet-152 (MONAI), C1..C5 at strides 2..32", citation=CITATION
)
def resnet152(in_channels: int, downsample: DownsampleMode) -> FeaturePyramid:
    return resnet_pyramid(monai_resnet152, in_channels, downsample, "ResNet-152")
