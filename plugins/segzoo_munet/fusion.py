"""How MUNet turns its four branch masks into one (Sec. III-A), and how k trained models are combined (eq. 7).

Mask fusions are components of kind ``fusion`` called as ``fusion(masks, size)``:
``masks`` are the branches' probability maps ``(B, C, h_k, w_k)``, ordered B2..B5
(``masks[k - 2]`` is branch B_k; B2 is the finest), and ``size`` is the input's
``(H, W)``. Every mask is first resized to ``size`` by bilinear interpolation (M'_k).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

import segzoo
from segzoo_munet import CITATION

FIRST_BRANCH = 2  # the paper numbers the mask branches B2..B5

AreaMode = Literal["soft", "hard"]


def resized(masks: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """M'_k: every mask resized bilinearly to ``size``, stacked as ``(K, B, C, H, W)``."""
    return torch.stack([F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False) for m in masks])


class MaskFusion(nn.Module):
    """Resizes the branch masks to the input size and combines the stack ``(K, B, C, H, W)`` into ``(B, C, H, W)``."""

    def combine(self, stack: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, masks: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        return self.combine(resized(masks, size))


class AreaWeightedFusion(MaskFusion):
    """Eq. (1)-(2): ``M = sum_k alpha_k M'_k`` with ``alpha_k = 1 - A_k / (W H)``, per image and channel.

    A branch that marks less of the image gets more weight ("we pay more attention to small parts and details").
    ``A_k`` is the area of M'_k: the sum of its probabilities (``soft``, differentiable) or the number of pixels
    at or above 0.5 (``hard``). The paper does not normalise the weights, so its M can exceed 1; with
    ``normalize`` the sum is divided by ``sum_k alpha_k`` and stays a probability map (every branch full,
    all weights 0, falls back to the mean).
    """

    def __init__(self, area: AreaMode = "soft", normalize: bool = True) -> None:
        super().__init__()
        self.area = area
        self.normalize = normalize

    def weights(self, stack: torch.Tensor) -> torch.Tensor:
        """alpha_k of eq. (2), shape ``(K, B, C, 1, 1)``."""
        covered = stack if self.area == "soft" else (stack >= 0.5).to(stack.dtype)
        return 1 - covered.mean(dim=(-2, -1), keepdim=True)

    def combine(self, stack: torch.Tensor) -> torch.Tensor:
        alpha = self.weights(stack)
        if self.normalize:
            total = alpha.sum(0, keepdim=True)
            alpha = torch.where(total > 0, alpha / total.clamp_min(torch.finfo(alpha.dtype).tiny), 1.0 / len(stack))
        return (alpha * stack).sum(0)


class MeanFusion(MaskFusion):
    """The unweighted mean of the resized masks (eq. 1 with every alpha_k = 1/K), a baseline for the area weighting."""

    def combine(self, stack: torch.Tensor) -> torch.Tensor:
        return stack.mean(0)


class MaxFusion(MaskFusion):
    """The pixel-wise maximum: a pixel is foreground if any branch says so."""

    def combine(self, stack: torch.Tensor) -> torch.Tensor:
        return stack.amax(0)


class SingleBranchFusion(MaskFusion):
    """Keep one branch's mask (resized to the input): for ablations, or to trust a single scale."""

    def __init__(self, branch: int) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, masks: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        index = self.branch - FIRST_BRANCH
        if index >= len(masks):
            raise ValueError(
                f"single_branch fusion keeps branch B{self.branch}, but the network gave {len(masks)} masks "
                f"(B{FIRST_BRANCH}..B{FIRST_BRANCH + len(masks) - 1})"
            )
        return resized(masks[index : index + 1], size)[0]


class WeightedEnsemble(nn.Module):
    """Eq. (7): ``p_u = sum_i lambda_i p_ui`` and ``v = sum_i lambda_i v_i`` over k trained models' outputs.

    Each output is a mapping with ``logits`` (class scores, turned into probabilities with a softmax) and
    ``fused`` (the model's best mask). Returns ``{"probabilities": (B, classes), "fused": (B, C, H, W)}``.
    """

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.weights = None if weights is None else list(weights)

    def forward(self, outputs: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        weights = self.weights or [1.0 / len(outputs)] * len(outputs)
        if len(weights) != len(outputs):
            raise ValueError(f"the ensemble has {len(weights)} weights but was given {len(outputs)} model outputs")
        return {
            "probabilities": sum(w * out["logits"].softmax(1) for w, out in zip(weights, outputs)),
            "fused": sum(w * out["fused"] for w, out in zip(weights, outputs)),
        }


class AreaWeightedParams(segzoo.Params):
    area: AreaMode = Field("soft", description="A_k as the sum of probabilities (soft) or the count of pixels >= 0.5 (hard)")
    normalize: bool = Field(
        True, description="divide by the sum of the weights so the fused mask stays in [0, 1] (the paper does not)"
    )


class SingleBranchParams(segzoo.Params):
    branch: int = Field(
        2, ge=2, le=5, description="the branch B_k kept: 2 is the finest (1/2 of the input), 5 the coarsest (1/16)"
    )


class EnsembleParams(segzoo.Params):
    weights: list[float] | None = Field(
        None, description="lambda_i of each model, each in (0, 1) and summing to 1; equal when unset"
    )

    @field_validator("weights")
    @classmethod
    def _convex(cls, weights: list[float] | None) -> list[float] | None:
        if weights is not None and (any(not 0 < w < 1 for w in weights) or abs(sum(weights) - 1) > 1e-6):
            raise ValueError(f"weights must each lie in (0, 1) and sum to 1 so the result stays a probability, got {weights}")
        return weights


area_weighted = segzoo.component(
    "fusion",
    "area_weighted",
    AreaWeightedParams,
    "MUNet's weighted voting: branch masks weighted by 1 - area/(W H), eq. (1)-(2)",
    CITATION,
)(AreaWeightedFusion)
mean = segzoo.component("fusion", "mean", segzoo.Params, "Mean of the branch masks resized to the input")(MeanFusion)
maximum = segzoo.component("fusion", "max", segzoo.Params, "Pixel-wise maximum of the branch masks resized to the input")(
    MaxFusion
)
single_branch = segzoo.component(
    "fusion", "single_branch", SingleBranchParams, "One branch's mask resized to the input", CITATION
)(SingleBranchFusion)
ensemble = segzoo.component(
    "fusion", "ensemble", EnsembleParams, "Weighted sum of k models' class probabilities and masks, eq. (7)", CITATION
)(WeightedEnsemble)

FUSIONS = [area_weighted, mean, maximum, single_branch, ensemble]
