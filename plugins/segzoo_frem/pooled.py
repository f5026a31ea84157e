"""IoU pooled over a test set: the sum of intersections over the sum of unions, beside the per-image mean.

A per-image (per-tile) IoU needs a rule for a class absent from both prediction and label (segzoo scores it 1,
see :mod:`segzoo.builtin.metrics`), which inflates rare classes such as FREM's synapse. Pooling the counts over
all images needs no such rule: a class absent from the whole test set is the only undefined case (NaN). The
per-image value kept for ``per_image.csv`` is the image's own IoU, so the paired comparison still has images.
"""

from __future__ import annotations

import torch
from monai.metrics import CumulativeIterationMetric
from pydantic import Field

import segzoo
from segzoo.builtin.metrics import ThresholdParams, confusion_per_image, iou_per_class


class PooledIoU(CumulativeIterationMetric):
    """Per class, sum of TP over sum of (TP + FP + FN) over every image scored; of one class, or the mean over all."""

    def __init__(self, class_index: int | None = None, threshold: float = 0.5) -> None:
        super().__init__()
        self.class_index, self.threshold = class_index, threshold
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.intersections: torch.Tensor | None = None
        self.unions: torch.Tensor | None = None

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tp, fp, fn = confusion_per_image(y_pred.float(), y.float(), self.threshold)
        self.intersections = tp.sum(0) if self.intersections is None else self.intersections + tp.sum(0)
        self.unions = (tp + fp + fn).sum(0) if self.unions is None else self.unions + (tp + fp + fn).sum(0)
        per_image = iou_per_class(y_pred.float(), y.float(), self.threshold)
        return (per_image.mean(1) if self.class_index is None else per_image[:, self.class_index]).unsqueeze(1)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        if self.intersections is None:
            return torch.tensor(float("nan"))
        iou = self.intersections / self.unions  # a class absent from every image and prediction: NaN, not 1
        return (iou.mean() if self.class_index is None else iou[self.class_index]).float()


class PooledIoUParams(ThresholdParams):
    class_index: int | None = Field(None, ge=0, description="the class whose pooled IoU is reported; none: mean over all classes")


pooled_iou = segzoo.component(
    "metric", "pooled_iou", PooledIoUParams,
    "IoU pooled over the test set: sum of intersections / sum of unions, of one class or the mean over classes",
)(PooledIoU)
