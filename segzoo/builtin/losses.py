"""Built-in losses, registered as a plugin like any other. Every loss takes logits."""

from __future__ import annotations

from typing import Any, Literal

import torch
from monai.losses import DiceCELoss, DiceLoss
from pydantic import Field
from torch import nn

import segzoo

Activation = Literal["sigmoid", "softmax"]


class DiceParams(segzoo.Params):
    activation: Activation = Field("sigmoid", description="sigmoid for binary masks (1 channel), softmax for classes")
    include_background: bool = Field(True, description="count the background channel (softmax only)")
    smooth: float = Field(1e-5, ge=0, description="added to numerator and denominator; makes empty masks score 1")


@segzoo.component("loss", "dice", params=DiceParams, summary="Soft Dice loss on logits (MONAI DiceLoss)",
                  citation="Milletari F, et al. V-Net. 3DV 2016")
def dice(activation: Activation, include_background: bool, smooth: float) -> nn.Module:
    softmax = activation == "softmax"
    return DiceLoss(sigmoid=not softmax, softmax=softmax, to_onehot_y=softmax, include_background=include_background,
                    smooth_nr=smooth, smooth_dr=smooth)


class BCEParams(segzoo.Params):
    pos_weight: float | None = Field(None, gt=0, description="weight of the positive class (foreground)")


@segzoo.component("loss", "bce", params=BCEParams, summary="Binary cross entropy on logits")
def bce(pos_weight: float | None) -> nn.Module:
    return nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else torch.tensor(pos_weight))


class DiceBCEParams(segzoo.Params):
    lambda_dice: float = Field(1.0, ge=0, description="weight of the Dice term")
    lambda_ce: float = Field(1.0, ge=0, description="weight of the (binary) cross-entropy term")
    activation: Activation = Field("sigmoid", description="sigmoid + BCE for binary masks, softmax + CE for classes")


@segzoo.component("loss", "dice_bce", params=DiceBCEParams, summary="Dice + (binary) cross entropy on logits (MONAI DiceCELoss)")
def dice_bce(lambda_dice: float, lambda_ce: float, activation: Activation) -> nn.Module:
    softmax = activation == "softmax"
    return DiceCELoss(sigmoid=not softmax, softmax=softmax, to_onehot_y=softmax, lambda_dice=lambda_dice, lambda_ce=lambda_ce)


class CEParams(segzoo.Params):
    class_weights: list[float] | None = Field(None, description="one weight per class")


class _IndexCrossEntropy(nn.CrossEntropyLoss):
    """Cross entropy that accepts MONAI's ``(B, 1, H, W)`` label maps as well as ``(B, H, W)``."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        if target.ndim == input.ndim:
            target = target[:, 0]
        return super().forward(input, target.long())


@segzoo.component("loss", "ce", params=CEParams, summary="Softmax cross entropy over class-index masks")
def ce(class_weights: list[float] | None) -> nn.Module:
    return _IndexCrossEntropy(weight=None if class_weights is None else torch.tensor(class_weights))


class OutputsMeanParams(segzoo.Params):
    loss: str = Field("bce", description="registered loss applied to each output")
    loss_params: dict[str, Any] = Field(default_factory=dict, description="parameters of that loss")


class _MeanOverOutputs(nn.Module):
    """The mean of ``loss`` over a deep-supervised network's list of outputs; the plain loss on one tensor."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, input: torch.Tensor | list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:  # noqa: A002
        outputs = input if isinstance(input, (list, tuple)) else [input]
        return torch.stack([self.loss(out, target) for out in outputs]).mean()


@segzoo.component("loss", "outputs_mean", params=OutputsMeanParams,
                  summary="Deep supervision with equal weights: the mean of a loss over every output head (UNet++'s training)")
def outputs_mean(loss: str, loss_params: dict[str, Any]) -> nn.Module:
    return _MeanOverOutputs(segzoo.build("loss", loss, **loss_params))


@segzoo.hookimpl
def segzoo_components() -> list:
    return [dice, bce, dice_bce, ce, outputs_mean]
