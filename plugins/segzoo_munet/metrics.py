"""The classification metrics of the MUNet paper's Table I: sensitivity, specificity, accuracy and AUC.

They judge MUNet's ``logits`` output, one decision per image, over a whole evaluation set:
every call buffers the batch, ``aggregate`` computes the figure over everything seen.

Inputs: ``y_pred`` is ``(B, C)`` class probabilities or logits (the decision is the arg-max), or ``(B,)`` /
``(B, 1)`` scores of the positive class (decided at ``threshold``); ``y`` is the class as indices ``(B,)`` /
``(B, 1)`` or one-hot ``(B, C)``. Sensitivity and specificity are those of ``positive_class`` (malignant
in the paper) against the rest. A figure with an empty denominator (sensitivity without any positive
image) is NaN, as in MONAI.
"""

from __future__ import annotations

import torch
from monai.metrics import CumulativeIterationMetric, ROCAUCMetric
from monai.metrics.confusion_matrix import compute_confusion_matrix_metric
from pydantic import Field

import segzoo
from segzoo_munet import CITATION
from segzoo_munet.labels import class_indices


def decisions(y_pred: torch.Tensor, threshold: float) -> torch.Tensor:
    """The predicted class of every image, ``(B,)``."""
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        return y_pred.argmax(1)
    return (y_pred.reshape(len(y_pred)) >= threshold).long()


class ClassificationMetric(CumulativeIterationMetric):
    """Buffers ``(predicted, true)`` class pairs; subclasses turn all of them into one figure."""

    def __init__(self, positive_class: int = 1, threshold: float = 0.5) -> None:
        super().__init__()
        self.positive_class = positive_class
        self.threshold = threshold

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.stack([decisions(y_pred, self.threshold), class_indices(y)], dim=1)

    def pairs(self) -> torch.Tensor:
        data = self.get_buffer()
        return data if isinstance(data, torch.Tensor) else torch.zeros(0, 2, dtype=torch.long)

    def confusion(self) -> torch.Tensor:
        """``[TP, FP, TN, FN]`` of the positive class over every image seen (MONAI's order)."""
        pairs = self.pairs()
        predicted, true = pairs[:, 0] == self.positive_class, pairs[:, 1] == self.positive_class
        counts = [predicted & true, predicted & ~true, ~predicted & ~true, ~predicted & true]
        return torch.stack([c.sum() for c in counts]).float()


class Sensitivity(ClassificationMetric):
    """TP / (TP + FN): the share of positive images called positive."""

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        return compute_confusion_matrix_metric("sensitivity", self.confusion())


class Specificity(ClassificationMetric):
    """TN / (TN + FP): the share of negative images called negative."""

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        return compute_confusion_matrix_metric("specificity", self.confusion())


class Accuracy(ClassificationMetric):
    """The share of images whose predicted class is their class ((TP + TN) / N for two classes)."""

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        pairs = self.pairs()
        return (pairs[:, 0] == pairs[:, 1]).float().mean() if len(pairs) else torch.tensor(float("nan"))


class AUC(ROCAUCMetric):
    """Area under the ROC curve (MONAI ``ROCAUCMetric``) of the class scores.

    Two classes: images are ranked by ``y_pred[:, 1] - y_pred[:, 0]``, which orders them as the positive
    class's softmax probability does, so logits and probabilities give the same AUC. More classes: one-vs-rest
    AUC of each class's column (pass probabilities), averaged over classes (``macro``).
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore
        labels = class_indices(y)
        if y_pred.ndim == 2 and y_pred.shape[1] > 2:
            return y_pred, torch.nn.functional.one_hot(labels, y_pred.shape[1])
        if y_pred.ndim == 2 and y_pred.shape[1] == 2:
            return y_pred[:, 1] - y_pred[:, 0], labels
        return y_pred.reshape(len(y_pred)), labels

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        return torch.as_tensor(super().aggregate(), dtype=torch.float32)


class ThresholdParams(segzoo.Params):
    threshold: float = Field(0.5, gt=0, lt=1, description="decision threshold when y_pred is a single positive-class score")


class DecisionParams(ThresholdParams):
    positive_class: int = Field(1, ge=0, description="the class counted as positive (malignant in the paper)")


sensitivity = segzoo.component(
    "metric",
    "sensitivity",
    DecisionParams,
    "Classification sensitivity TP/(TP+FN) of the positive class, over all images",
    CITATION,
)(Sensitivity)
specificity = segzoo.component(
    "metric",
    "specificity",
    DecisionParams,
    "Classification specificity TN/(TN+FP) of the positive class, over all images",
    CITATION,
)(Specificity)
accuracy = segzoo.component(
    "metric", "accuracy", ThresholdParams, "Classification accuracy: share of images whose arg-max class is right", CITATION
)(Accuracy)
auc = segzoo.component(
    "metric", "auc", segzoo.Params, "Area under the ROC curve of the class scores (MONAI ROCAUCMetric)", CITATION
)(AUC)

METRICS = [sensitivity, specificity, accuracy, auc]
