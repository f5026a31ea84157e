"""The 'SuperVision' row's loss, eq. (1): (1 - λ) * loss(main) + λ * loss(aux), via MONAI's DeepSupervisionLoss."""

from __future__ import annotations

from typing import Any

from monai.losses import DeepSupervisionLoss
from pydantic import Field

import segzoo
from segzoo_frem import CITATION, DROSOPHILA_SUPERVISION_WEIGHT, MOUSE_SUPERVISION_WEIGHT


class DeepSupervisionParams(segzoo.Params):
    aux_weight: float = Field(
        MOUSE_SUPERVISION_WEIGHT, ge=0, le=1, description="λ of eq. (1): weight of the encoder-end loss; the main loss gets 1 - λ"
    )
    loss: str = Field("ce", description="registered loss applied to each output (the paper: softmax cross entropy)")
    loss_params: dict[str, Any] = Field(default_factory=dict, description="parameters of that loss")


@segzoo.component(
    "loss",
    "deep_supervision",
    params=DeepSupervisionParams,
    summary="Deep supervision: (1-λ)·loss(main) + λ·loss(aux) on a [main, aux] training output; plain loss on one tensor",
    citation=CITATION,
    presets={"mouse": {"aux_weight": MOUSE_SUPERVISION_WEIGHT}, "drosophila": {"aux_weight": DROSOPHILA_SUPERVISION_WEIGHT}},
)
def deep_supervision(aux_weight: float, loss: str, loss_params: dict[str, Any]) -> DeepSupervisionLoss:
    # MONAI weights a list [main, aux] by ``weights`` and gives a single tensor (evaluation) the plain loss.
    return DeepSupervisionLoss(segzoo.build("loss", loss, **loss_params), weights=[1 - aux_weight, aux_weight])
