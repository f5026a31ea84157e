"""Entry point of the frem plugin (``segzoo`` group)."""

import segzoo
from segzoo_frem.data import synthetic_em_dataset
from segzoo_frem.deep_supervision import deep_supervision
from segzoo_frem.drosophila import drosophila_dataset
from segzoo_frem.frem import FeatureRandomEnhancement
from segzoo_frem.se import se
from segzoo_frem.se_unet import se_unet


@segzoo.hookimpl
def segzoo_components() -> list:
    return [se, se_unet, FeatureRandomEnhancement, deep_supervision, synthetic_em_dataset, drosophila_dataset]
