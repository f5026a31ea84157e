"""Built-in segmentation metrics (MONAI ``CumulativeIterationMetric``s, so Ignite handlers can wrap them).

Each metric is named by what it measures, because papers call different quantities "MIoU": the
PyConvU-Net paper's eq. (1) is a mean over background and foreground (``miou_with_background``)
while its reported numbers are the IoU of the foreground (``foreground_iou``). The old name ``miou``
is a deprecated alias of ``miou_with_background``.

All metrics are computed per image, then averaged over images (not pooled over the data set). Predictions are
probabilities (or logits-free scores): one channel is thresholded at 0.5, several
channels are arg-maxed. Labels are class-index maps ``(B, 1, H, W)`` or one-hot.

Empty-mask convention: a class that is absent from both the prediction and the
label of an image scores 1 for that image (nothing to find, nothing found), so no
metric is ever NaN.
"""

from __future__ import annotations

import warnings

import torch
from monai.metrics import CumulativeIterationMetric
from pydantic import Field

import segzoo
from segzoo.processing import class_map


def class_maps(y_pred: torch.Tensor, y: torch.Tensor, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Predicted and true class-index maps ``(B, H, W)`` and the number of classes (2 for a binary mask)."""
    pred = class_map(y_pred, threshold)  # the recorded output rule (segzoo.processing)
    if y_pred.shape[1] == 1:
        true = (y[:, 0] >= 0.5).long() if y.shape[1] == 1 else y.argmax(1)
        return pred, true, 2
    classes = y_pred.shape[1]
    true = y.argmax(1) if y.shape[1] == classes and classes > 1 else y[:, 0].round().long()
    return pred, true, classes


def confusion_per_image(
    y_pred: torch.Tensor, y: torch.Tensor, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TP, FP, FN per image and class, each ``(B, K)`` (eq. 2's p_ii, sum_j p_ji - p_ii, sum_j p_ij - p_ii)."""
    pred, true, k = class_maps(y_pred, y, threshold)
    pred, true = pred.flatten(1), true.flatten(1)
    classes = torch.arange(k, device=pred.device).view(1, k, 1)
    p = pred.unsqueeze(1) == classes
    t = true.unsqueeze(1) == classes
    tp = (p & t).sum(-1).double()
    fp = (p & ~t).sum(-1).double()
    fn = (~p & t).sum(-1).double()
    return tp, fp, fn


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1), torch.ones_like(num))


def iou_per_class(y_pred: torch.Tensor, y: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    tp, fp, fn = confusion_per_image(y_pred, y, threshold)
    return _ratio(tp, tp + fp + fn)


def dice_per_class(y_pred: torch.Tensor, y: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    tp, fp, fn = confusion_per_image(y_pred, y, threshold)
    return _ratio(2 * tp, 2 * tp + fp + fn)


class _PerImageMetric(CumulativeIterationMetric):
    """Buffers one value per image; ``aggregate`` is their mean."""

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold

    def per_image(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.per_image(y_pred.float(), y.float()).unsqueeze(1)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        data = self.get_buffer()
        return data.float().mean() if isinstance(data, torch.Tensor) and data.numel() else torch.tensor(float("nan"))


class MeanIoUWithBackground(_PerImageMetric):
    """Eq. (1)-(2) of PyConvU-Net: per image, the mean IoU over all k+1 classes, background included; then the mean over
    images."""

    def per_image(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return iou_per_class(y_pred, y, self.threshold).mean(1)


class DeprecatedMeanIoU(MeanIoUWithBackground):
    """``miou``, the old ambiguous name of :class:`MeanIoUWithBackground`: same value, plus a warning naming the two meanings."""

    def __init__(self, threshold: float = 0.5) -> None:
        warnings.warn(
            "metric 'miou' is deprecated because papers use 'MIoU' for two quantities: it computes 'miou_with_background' "
            "(mean over background and foreground, PyConvU-Net eq. 1); the PyConvU-Net paper's reported MIoU is "
            "'foreground_iou'. Use one of those names.", FutureWarning, stacklevel=2)
        super().__init__(threshold)


class Dice(_PerImageMetric):
    """Eq. (3)-(4): per image, 2TP / (2TP + FP + FN) of the foreground (mean over the foreground classes); then the mean
    over images."""

    def per_image(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return dice_per_class(y_pred, y, self.threshold)[:, 1:].mean(1)


class ForegroundIoU(_PerImageMetric):
    """Per image, TP / (TP + FP + FN) of the foreground (mean over the foreground classes); then the mean over images.

    This is what the PyConvU-Net paper's Table 2 reports as "MIoU" (its authors' evaluation code computes it).
    """

    def per_image(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return iou_per_class(y_pred, y, self.threshold)[:, 1:].mean(1)


class ClassIoU(_PerImageMetric):
    """Per image, the IoU of one class (FREM's per-class columns); then the mean over images."""

    def __init__(self, class_index: int, threshold: float = 0.5) -> None:
        super().__init__(threshold)
        self.class_index = class_index

    def per_image(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return iou_per_class(y_pred, y, self.threshold)[:, self.class_index]


class ThresholdParams(segzoo.Params):
    threshold: float = Field(0.5, gt=0, lt=1, description="probability above which a one-channel prediction is foreground")


class ClassIoUParams(ThresholdParams):
    class_index: int = Field(ge=0, description="the class whose IoU is reported (0 = background)")


miou_with_background = segzoo.component(
    "metric", "miou_with_background", ThresholdParams,
    "Mean IoU over the k+1 classes, background included (per image, then mean over images)", "Li et al. 2021, eq. (1)-(2)",
)(MeanIoUWithBackground)
miou = segzoo.component("metric", "miou", ThresholdParams, "Deprecated name of miou_with_background (warns)")(DeprecatedMeanIoU)
dice = segzoo.component(
    "metric",
    "dice",
    ThresholdParams,
    "Dice of the foreground, 2TP/(2TP+FP+FN) (per image, then mean over images)",
    "Li et al. 2021, eq. (3)-(4)",
)(Dice)
foreground_iou = segzoo.component(
    "metric", "foreground_iou", ThresholdParams,
    "IoU of the foreground only, TP/(TP+FP+FN) (per image, then mean over images): what PyConvU-Net's Table 2 reports "
    "as 'MIoU', although its eq. (1) defines miou_with_background",
)(ForegroundIoU)
class_iou = segzoo.component("metric", "class_iou", ClassIoUParams, "IoU of one class (per image, then mean over images)")(
    ClassIoU
)

# What each metric measures, for tables that must say it (segzoo reproduce, segzoo compare).
DEFINITIONS = {
    "miou_with_background": "mean of the IoU of every class incl. background (eq. 1), per image, then mean over images",
    "foreground_iou": "IoU of the foreground, TP/(TP+FP+FN), per image, then mean over images",
    "dice": "Dice of the foreground, 2TP/(2TP+FP+FN), per image, then mean over images",
    "class_iou": "IoU of one class, per image, then mean over images",
    "pooled_iou": "IoU pooled over the scored set: sum of intersections / sum of unions per class (one class, or the mean)",
}


# IoU pooled over a test set: the sum of intersections over the sum of unions, beside the per-image mean. A per-image
# (per-tile) IoU needs a rule for a class absent from both prediction and label (scored 1 here), which inflates rare
# classes such as FREM's synapse. Pooling the counts over all images needs no such rule: a class absent from the whole
# test set is the only undefined case (NaN). The per-image value kept for ``per_image.csv`` is the image's own IoU, so
# the paired comparison still has images.
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



@segzoo.hookimpl
def segzoo_components() -> list:
    return [miou_with_background, miou, dice, foreground_iou, class_iou, pooled_iou]
