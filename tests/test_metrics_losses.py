"""Metrics against values computed by hand (paper eq. 1-4), the empty-mask convention, and the losses."""

from __future__ import annotations

import pytest
import torch

import segzoo

# 2x4 image: prediction vs truth, foreground = 1
PRED = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float32)[None, None]
TRUE = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.float32)[None, None]
# foreground: TP=2, FP=1, FN=1 -> IoU 2/4, Dice 4/6; background: TP=4, FP=1, FN=1 -> IoU 4/6


def _score(name: str, pred: torch.Tensor, true: torch.Tensor, **params) -> float:
    metric = segzoo.build("metric", name, **params)
    metric(y_pred=pred, y=true)
    return float(metric.aggregate())


def test_miou_with_background_is_the_mean_over_background_and_foreground() -> None:
    assert _score("miou_with_background", PRED, TRUE) == pytest.approx((2 / 4 + 4 / 6) / 2)


def test_old_miou_name_warns_and_equals_miou_with_background() -> None:
    with pytest.warns(FutureWarning, match="miou_with_background.*foreground_iou"):
        old = _score("miou", PRED, TRUE)
    assert old == _score("miou_with_background", PRED, TRUE)


def test_mean_dice_never_exceeds_the_bound_of_mean_foreground_iou() -> None:
    """Per image Dice = 2 IoU / (1 + IoU); averaged, Dice <= 2 mIoU / (1 + mIoU): the check that shows which IoU a paper
    reports."""
    pred = torch.cat([PRED, TRUE, 1 - TRUE])
    true = torch.cat([TRUE, TRUE, TRUE])  # fg IoU per image: 1/2, 1, 0
    iou, dice = _score("foreground_iou", pred, true), _score("dice", pred, true)
    assert iou == pytest.approx(0.5) and dice == pytest.approx((4 / 6 + 1 + 0) / 3)
    assert dice <= 2 * iou / (1 + iou)


def test_dice_is_2tp_over_2tp_fp_fn() -> None:
    assert _score("dice", PRED, TRUE) == pytest.approx(4 / 6)


def test_foreground_iou_ignores_background() -> None:
    assert _score("foreground_iou", PRED, TRUE) == pytest.approx(2 / 4)


def test_probabilities_are_thresholded_at_half() -> None:
    assert _score("dice", PRED * 0.6 + 0.2, TRUE) == pytest.approx(4 / 6)  # 0.8 -> 1, 0.2 -> 0


def test_per_image_then_mean() -> None:
    perfect = TRUE.clone()
    both = _score("foreground_iou", torch.cat([PRED, perfect]), torch.cat([TRUE, TRUE]))
    assert both == pytest.approx((0.5 + 1.0) / 2)


def test_empty_masks_score_one_not_nan() -> None:
    empty = torch.zeros(1, 1, 4, 4)
    for name in ("miou_with_background", "dice", "foreground_iou"):
        assert _score(name, empty, empty) == 1.0
    assert _score("dice", torch.ones(1, 1, 4, 4), empty) == 0.0


def test_multiclass_miou_and_class_iou() -> None:
    true = torch.tensor([[0, 1, 2, 2]])[None].float()  # (1, 1, 1, 4)
    probs = torch.nn.functional.one_hot(torch.tensor([[0, 1, 1, 2]]), 3).permute(0, 2, 1)[:, :, None].float()
    # class 0: 1/1, class 1: 1/2, class 2: 1/2
    assert _score("miou_with_background", probs, true) == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert _score("foreground_iou", probs, true) == pytest.approx((0.5 + 0.5) / 2)
    assert _score("class_iou", probs, true, class_index=2) == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["dice", "bce", "dice_bce"])
def test_binary_losses_take_logits_and_reward_the_right_answer(name: str) -> None:
    loss = segzoo.build("loss", name)
    target = TRUE
    good = loss(target * 20 - 10, target)
    bad = loss(10 - target * 20, target)
    assert torch.isfinite(good) and good < bad


def test_ce_accepts_monai_label_maps() -> None:
    loss = segzoo.build("loss", "ce")
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 1, 4, 4)).float()
    assert loss(logits, labels) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels[:, 0].long())))


def test_outputs_mean_averages_the_loss_over_deep_supervision_heads() -> None:
    loss, bce = segzoo.build("loss", "outputs_mean", loss="bce"), segzoo.build("loss", "bce")
    good, bad = TRUE * 20 - 10, 10 - TRUE * 20
    assert loss([good, bad], TRUE) == pytest.approx(float((bce(good, TRUE) + bce(bad, TRUE)) / 2))
    assert loss(good, TRUE) == pytest.approx(float(bce(good, TRUE)))  # one tensor (evaluation): the plain loss
