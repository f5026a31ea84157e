"""DenseNet-121 backbone: MONAI's 2D DenseNet121 features, cut after each dense block."""

from __future__ import annotations

from monai.networks.nets import DenseNet121
from torch import nn

import segzoo
from segzoo_munet.backbones.pyramid import BackboneParams, Downsample, DownsampleMode, FeaturePyramid

CITATION = "Huang G, Liu Z, van der Maaten L, Weinberger KQ. Densely connected convolutional networks. CVPR 2017"


@segzoo.component(
    "backbone", "densenet121", params=BackboneParams, summary="DenseNet-121 (MONAI), C1..C5 at strides 2..32", citation=CITATION
)
def densenet121(in_channels: int, downsample: DownsampleMode) -> FeaturePyramid:
    """C2..C5 are the dense blocks' outputs; transitions (BN, 1x1 conv, 2x2 average pool) open the next stage.

    Only the stem's max-pool is a max-pool in DenseNet, so only it is replaced; the final BN gets the ReLU
    MONAI's classifier would apply, so C5 is activated like the other backbones' outputs.
    """
    f = DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=1).features
    stem_channels = f.conv0.out_channels
    stages = [
        nn.Sequential(f.conv0, f.norm0, f.relu0),
        nn.Sequential(Downsample(stem_channels, downsample), f.denseblock1),
        nn.Sequential(f.transition1, f.denseblock2),
        nn.Sequential(f.transition2, f.denseblock3),
        nn.Sequential(f.transition3, f.denseblock4, f.norm5, nn.ReLU(inplace=True)),
    ]
    channels = [stem_channels, *(t.conv.in_channels for t in (f.transition1, f.transition2, f.transition3)), f.norm5.num_features]
    return FeaturePyramid(stages, channels, "DenseNet-121")
