"""MUNet's losses (Sec. III-B): focal loss on the class, Dice loss on every branch mask. Both take logits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.losses import DiceLoss
from monai.networks.utils import one_hot
from pydantic import Field
from torch import nn

import segzoo
from segzoo.nn import output_activation
from segzoo_munet import CITATION
from segzoo_munet.fusion import resized
from segzoo_munet.labels import class_indices

CITATION_FOCAL = "Lin TY, Goyal P, Girshick R, He K, Dollar P. Focal loss for dense object detection. ICCV 2017"


class FocalLoss(nn.Module):
    """``L_cls = -alpha (1 - p_u)^gamma log p_u`` for the true class u (softmax over the logits), mean over images.

    This is the paper's form, with one alpha for every class; ``gamma = 0, alpha = 1`` is cross entropy.
    Takes logits ``(B, C)`` and targets as indices ``(B,)`` / ``(B, 1)`` or one-hot ``(B, C)``.
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(1).gather(1, class_indices(target).unsqueeze(1)).squeeze(1)
        return (-self.alpha * (1 - log_p.exp()) ** self.gamma * log_p).mean()


class MUNetLoss(nn.Module):
    """Eq. (3) and (5): ``L = L_cls + lambda * sum_k (1 - D(v_k, v))`` over the four branches B2..B5.

    ``output`` is MUNet's output mapping (``masks``: per-branch logits, ``logits``: class logits) and
    ``target`` a mapping with ``mask`` (``(B, 1, H, W)``: 0/1, or class indices for several channels) and
    ``label`` (the image's class). v_k is branch k's probability map resized bilinearly to the target's size,
    as the fused mask is; D is the soft Dice per image and channel (MONAI DiceLoss), averaged.
    """

    def __init__(self, lambda_mask: float = 0.25, alpha: float = 0.25, gamma: float = 2.0, smooth: float = 1e-5) -> None:
        super().__init__()
        self.lambda_mask = lambda_mask
        self.classification = FocalLoss(alpha, gamma)
        self.dice = DiceLoss(smooth_nr=smooth, smooth_dr=smooth)

    def mask_losses(self, masks: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """``1 - D(v_k, v)`` for every branch, shape ``(K,)``."""
        channels = masks[0].shape[1]
        to_probability = output_activation("auto", channels)
        if channels > 1 and target.shape[1] == 1:
            target = one_hot(target.long(), channels)
        v = resized([to_probability(m) for m in masks], target.shape[2:])
        return torch.stack([self.dice(v_k, target) for v_k in v])

    def forward(
        self, output: Mapping[str, torch.Tensor | Sequence[torch.Tensor]], target: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        mask_loss = self.mask_losses(output["masks"], target["mask"]).sum()
        return self.classification(output["logits"], target["label"]) + self.lambda_mask * mask_loss


class FocalParams(segzoo.Params):
    alpha: float = Field(0.25, gt=0, description="scale alpha of the focal term (Lin et al.'s default)")
    gamma: float = Field(2.0, ge=0, description="focusing exponent gamma; 0 gives cross entropy times alpha")


class MUNetLossParams(FocalParams):
    lambda_mask: float = Field(0.25, ge=0, description="lambda of eq. (3), the weight of the summed Dice losses (paper: 0.25)")
    smooth: float = Field(1e-5, ge=0, description="added to the Dice numerator and denominator; makes empty masks score 1")


focal = segzoo.component(
    "loss", "focal", FocalParams, "Focal loss on classification logits, -alpha (1-p_u)^gamma log p_u", CITATION_FOCAL
)(FocalLoss)
munet_loss = segzoo.component(
    "loss",
    "munet",
    MUNetLossParams,
    "MUNet multi-task loss: focal loss + lambda * sum of the four branch Dice losses, eq. (3)-(5)",
    CITATION,
)(MUNetLoss)

LOSSES = [focal, munet_loss]
