"""Entry point of the baselines plugin (``segzoo`` group)."""

import segzoo
from segzoo_baselines.attention_unet import attention_unet
from segzoo_baselines.fcn8s import fcn8s
from segzoo_baselines.resnet34_unet import resnet34, resnet34_unet
from segzoo_baselines.unet import unet
from segzoo_baselines.unetpp import unetpp


@segzoo.hookimpl
def segzoo_components() -> list:
    return [unet, unetpp, attention_unet, resnet34_unet, fcn8s, resnet34]
