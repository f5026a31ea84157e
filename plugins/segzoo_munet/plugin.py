"""Entry point of the munet plugin (``segzoo`` group)."""

import segzoo
from segzoo_munet.backbones import BACKBONES
from segzoo_munet.data import DATASETS
from segzoo_munet.fusion import FUSIONS
from segzoo_munet.losses import LOSSES
from segzoo_munet.metrics import METRICS
from segzoo_munet.munet import munet


@segzoo.hookimpl
def segzoo_components() -> list:
    return [*BACKBONES, *DATASETS, *FUSIONS, *LOSSES, *METRICS, munet]
