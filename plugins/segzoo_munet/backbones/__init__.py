"""The paper's six backbones, each a :class:`~segzoo_munet.backbones.pyramid.FeaturePyramid` of C1..C5."""

from segzoo_munet.backbones.densenet import densenet121
from segzoo_munet.backbones.inception import inception_v3
from segzoo_munet.backbones.inception_v4 import inception_resnet_v2, inception_v4
from segzoo_munet.backbones.resnet import resnet50, resnet152

BACKBONES = [resnet50, resnet152, densenet121, inception_v3, inception_v4, inception_resnet_v2]
BACKBONE_NAMES = [b.__segzoo_component__.name for b in BACKBONES]
