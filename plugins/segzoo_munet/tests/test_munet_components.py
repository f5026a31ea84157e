"""MUNet components: backbones, the architecture, fusions, losses and the classification metrics."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import segzoo
from segzoo.nn import Backbone, BackboneParams
from segzoo.plugins import PluginManager
from segzoo_munet.fusion import resized

LN3 = math.log(3.0)  # sigmoid(LN3) = 0.75, softmax([0, LN3]) = [0.25, 0.75]

BACKBONE_CHANNELS = {
    "resnet50": [64, 256, 512, 1024, 2048],
    "resnet152": [64, 256, 512, 1024, 2048],
    "densenet121": [64, 256, 512, 1024, 1024],
    "inception_v3": [64, 192, 288, 768, 2048],
    "inception_v4": [64, 192, 384, 1024, 1536],
    "inception_resnet_v2": [64, 192, 384, 1152, 2144],
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_the_plugin_registers_every_munet_component() -> None:
    ours = {(c.kind, c.name) for c in segzoo.list_components() if c.plugin == "munet"}
    expected = {("architecture", "munet"), ("loss", "focal"), ("loss", "munet")}
    expected |= {("backbone", name) for name in BACKBONE_CHANNELS}
    expected |= {("fusion", name) for name in ("area_weighted", "mean", "max", "single_branch", "ensemble")}
    expected |= {("dataset", "synthetic_lesions"), ("dataset", "labelled_folder")}
    expected |= {("metric", name) for name in ("sensitivity", "specificity", "accuracy", "auc")}
    assert ours == expected


# ---------------------------------------------------------------- backbones


@pytest.mark.parametrize("name", sorted(BACKBONE_CHANNELS))
def test_backbone_gives_c1_to_c5_at_strides_2_to_32_without_max_pooling(name: str) -> None:
    backbone = segzoo.build("backbone", name, in_channels=1).eval()
    with torch.no_grad():
        features = backbone(torch.rand(1, 1, 64, 96))
    assert backbone.out_channels == BACKBONE_CHANNELS[name] and backbone.strides == (2, 4, 8, 16, 32)
    assert [tuple(f.shape) for f in features] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(backbone.out_channels, backbone.strides)
    ]
    assert not any(isinstance(m, nn.MaxPool2d) for m in backbone.modules()), "Sec. III replaces max-pooling by 3x3/2 convs"


def test_backbone_can_keep_the_original_max_pool() -> None:
    backbone = segzoo.build("backbone", "resnet50", downsample="max")
    assert sum(isinstance(m, nn.MaxPool2d) for m in backbone.modules()) == 1


def test_backbone_rejects_a_size_that_is_not_a_multiple_of_32() -> None:
    backbone = segzoo.build("backbone", "densenet121").eval()
    with pytest.raises(ValueError, match="multiple of its total stride 32, got 64x80"):
        backbone(torch.rand(1, 3, 64, 80))


# ---------------------------------------------------------------- architecture


@pytest.fixture(scope="module")
def resnet_munet() -> nn.Module:
    torch.manual_seed(0)
    return segzoo.build("architecture", "munet", in_channels=1, backbone="resnet50").eval()


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_munet_outputs_four_masks_a_fused_mask_and_class_logits(resnet_munet: nn.Module, size: tuple[int, int]) -> None:
    h, w = size
    with torch.no_grad():
        out = resnet_munet(torch.rand(2, 1, h, w))
    assert [tuple(m.shape) for m in out["masks"]] == [(2, 1, h // s, w // s) for s in (2, 4, 8, 16)]  # B2..B5
    assert tuple(out["fused"].shape) == (2, 1, h, w)
    assert tuple(out["logits"].shape) == (2, 2)
    assert all(((m > 0) & (m < 1)).all() for m in out["masks"]), "auto: sigmoid masks, as in the paper"
    assert ((out["fused"] >= 0) & (out["fused"] <= 1)).all()


def test_munet_rejects_a_size_that_is_not_a_multiple_of_32(resnet_munet: nn.Module) -> None:
    with pytest.raises(ValueError, match="MUNet needs every spatial size to be a multiple of its total stride 32, got 64x100"):
        resnet_munet(torch.rand(1, 1, 64, 100))


def test_munet_identity_returns_branch_logits_and_fuses_their_probabilities() -> None:
    net = segzoo.build(
        "architecture",
        "munet",
        backbone="densenet121",
        decoder_channels=[64, 32, 16, 8],
        final_activation="identity",
        fusion="mean",
    ).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    assert [m.shape[1] for m in out["masks"]] == [1, 1, 1, 1]
    assert [step.blocks[-1].conv.out_channels for step in net.decoder] == [64, 32, 16, 8]
    assert min(m.min() for m in out["masks"]) < 0, "identity keeps the logits the losses need"
    expected = segzoo.build("fusion", "mean")([m.sigmoid() for m in out["masks"]], (64, 64))
    torch.testing.assert_close(out["fused"], expected)


def test_munet_explains_bad_parameters() -> None:
    with pytest.raises(segzoo.ComponentParamsError, match="decoder_channels needs 4 positive widths"):
        segzoo.build("architecture", "munet", decoder_channels=[64, 32, 16])
    with pytest.raises(segzoo.UnknownComponentError, match="Did you mean: resnet50"):
        segzoo.build("architecture", "munet", backbone="resnet5")


@segzoo.component("backbone", "tiny_test_backbone", params=BackboneParams, summary="five stride-2 convolutions (test only)")
class TinyBackbone(nn.Module):
    strides = (2, 4, 8, 16, 32)

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.out_channels = [4, 8, 8, 16, 16]
        widths = [in_channels, *self.out_channels]
        self.stages = nn.ModuleList(nn.Conv2d(i, o, 3, stride=2, padding=1) for i, o in itertools.pairwise(widths))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class ThirdPartyPlugin:
    @staticmethod
    @segzoo.hookimpl
    def segzoo_components() -> list:
        return [TinyBackbone]


@pytest.fixture
def third_party_backbone(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = PluginManager().load()
    manager.register(ThirdPartyPlugin, name="third_party", version="1.0")
    monkeypatch.setattr(segzoo, "_manager", manager)


def test_munet_takes_a_third_party_backbone_and_trains_end_to_end(third_party_backbone: None) -> None:
    net = segzoo.build("architecture", "munet", backbone="tiny_test_backbone", final_activation="identity")
    out = net(torch.rand(2, 3, 64, 32))
    assert [tuple(m.shape) for m in out["masks"]] == [(2, 1, 64 // s, 32 // s) for s in (2, 4, 8, 16)]
    assert [step.blocks[-1].conv.out_channels for step in net.decoder] == [8, 4, 2, 1]  # C5's 16 halved per step
    target = {"mask": (torch.rand(2, 1, 64, 32) > 0.5).float(), "label": torch.tensor([0, 1])}
    segzoo.build("loss", "munet")(out, target).backward()
    assert net.backbone.stages[0].weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- fusion


def staircase_masks() -> list[torch.Tensor]:
    """B2..B4 on a 2x2 image covering 1, 2, 3 pixels; B5 a 1x1 map of 1, resized to a full 2x2 mask."""
    b2 = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    b3 = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    b4 = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    return [m.view(1, 1, 2, 2) for m in (b2, b3, b4)] + [torch.ones(1, 1, 1, 1)]


def test_area_weighted_voting_matches_equations_1_and_2_by_hand() -> None:
    # A_k = 1, 2, 3, 4 of W H = 4 pixels: alpha_k = 3/4, 1/2, 1/4, 0.
    # M = 3/4 B2 + 1/2 B3 + 1/4 B4 = [[1.5, 0.75], [0.25, 0]]; normalised by sum(alpha) = 1.5.
    literal = segzoo.build("fusion", "area_weighted", normalize=False)
    fusion = segzoo.build("fusion", "area_weighted")
    torch.testing.assert_close(
        literal.weights(resized(staircase_masks(), (2, 2))).flatten(), torch.tensor([0.75, 0.5, 0.25, 0.0])
    )
    torch.testing.assert_close(literal(staircase_masks(), (2, 2)), torch.tensor([[[[1.5, 0.75], [0.25, 0.0]]]]))
    torch.testing.assert_close(fusion(staircase_masks(), (2, 2)), torch.tensor([[[[1.0, 0.5], [1 / 6, 0.0]]]]))


def test_area_weighted_soft_and_hard_areas_differ_on_uncertain_masks() -> None:
    masks = [torch.full((1, 1, 2, 2), 0.5), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])]
    soft = segzoo.build("fusion", "area_weighted", area="soft", normalize=False)
    hard = segzoo.build("fusion", "area_weighted", area="hard", normalize=False)
    # soft: A = 2 and 1 -> alpha = 1/2, 3/4; hard: every 0.5 counts -> A = 4 and 1 -> alpha = 0, 3/4.
    torch.testing.assert_close(soft(masks, (2, 2)), torch.tensor([[[[1.0, 0.25], [0.25, 0.25]]]]))
    torch.testing.assert_close(hard(masks, (2, 2)), torch.tensor([[[[0.75, 0.0], [0.0, 0.0]]]]))


def test_area_weighted_falls_back_to_the_mean_when_every_branch_is_full() -> None:
    full = [torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1)]
    torch.testing.assert_close(segzoo.build("fusion", "area_weighted")(full, (2, 2)), torch.ones(1, 1, 2, 2))


def test_mean_max_and_single_branch_fusions() -> None:
    masks = staircase_masks()
    torch.testing.assert_close(segzoo.build("fusion", "mean")(masks, (2, 2)), torch.tensor([[[[1.0, 0.75], [0.5, 0.25]]]]))
    torch.testing.assert_close(segzoo.build("fusion", "max")(masks, (2, 2)), torch.ones(1, 1, 2, 2))
    torch.testing.assert_close(segzoo.build("fusion", "single_branch", branch=3)(masks, (2, 2)), masks[1])
    torch.testing.assert_close(segzoo.build("fusion", "single_branch", branch=5)(masks, (4, 4)), torch.ones(1, 1, 4, 4))
    with pytest.raises(segzoo.ComponentParamsError, match="branch"):
        segzoo.build("fusion", "single_branch", branch=6)


def test_ensemble_sums_probabilities_and_masks_with_equation_7_weights() -> None:
    first = {"logits": torch.tensor([[0.0, 0.0]]), "fused": torch.full((1, 1, 2, 2), 0.2)}
    second = {"logits": torch.tensor([[0.0, LN3]]), "fused": torch.full((1, 1, 2, 2), 0.6)}
    out = segzoo.build("fusion", "ensemble", weights=[0.25, 0.75])([first, second])
    torch.testing.assert_close(out["probabilities"], torch.tensor([[0.25 * 0.5 + 0.75 * 0.25, 0.25 * 0.5 + 0.75 * 0.75]]))
    torch.testing.assert_close(out["fused"], torch.full((1, 1, 2, 2), 0.25 * 0.2 + 0.75 * 0.6))
    with pytest.raises(segzoo.ComponentParamsError, match="sum to 1"):
        segzoo.build("fusion", "ensemble", weights=[0.5, 0.7])


# ---------------------------------------------------------------- losses


def test_focal_loss_matches_the_hand_value() -> None:
    logits = torch.tensor([[0.0, LN3], [LN3, 0.0]])  # p_u = 0.75 and 0.25 for true class 1
    expected = (-0.25 * 0.25**2 * math.log(0.75) - 0.25 * 0.75**2 * math.log(0.25)) / 2
    focal = segzoo.build("loss", "focal")
    assert focal(logits, torch.tensor([1, 1])).item() == pytest.approx(expected, rel=1e-6)
    assert focal(logits, torch.tensor([[0.0, 1.0], [0.0, 1.0]])).item() == pytest.approx(expected, rel=1e-6)
    as_ce = segzoo.build("loss", "focal", alpha=1.0, gamma=0.0)
    assert as_ce(logits, torch.tensor([[1], [0]])).item() == pytest.approx(
        nn.functional.cross_entropy(logits, torch.tensor([1, 0])).item()
    )


def test_munet_loss_is_focal_plus_lambda_times_the_branch_dice_losses() -> None:
    output = {
        "masks": [
            torch.tensor([[[[LN3, LN3], [-LN3, -LN3]]]]),  # B2 at 2x2: p = .75/.25 -> D = 3/4
            torch.zeros(1, 1, 1, 1),  # B3: p = 0.5 everywhere -> D = 1/2
            torch.full((1, 1, 1, 1), LN3),  # B4: p = 0.75 -> D = 3/5
            torch.full((1, 1, 1, 1), -LN3),  # B5: p = 0.25 -> D = 1/3
        ],
        "logits": torch.tensor([[0.0, LN3]]),
    }
    target = {"mask": torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]]), "label": torch.tensor([1])}
    loss = segzoo.build("loss", "munet", smooth=0.0)
    torch.testing.assert_close(loss.mask_losses(output["masks"], target["mask"]), torch.tensor([1 / 4, 1 / 2, 2 / 5, 2 / 3]))
    focal = -0.25 * 0.25**2 * math.log(0.75)
    assert loss(output, target).item() == pytest.approx(focal + 0.25 * (1 / 4 + 1 / 2 + 2 / 5 + 2 / 3), rel=1e-6)


# ---------------------------------------------------------------- metrics

LABELS = torch.tensor([1, 1, 1, 0, 0, 0])
POSITIVE_PROBABILITY = torch.tensor([0.9, 0.8, 0.3, 0.2, 0.4, 0.1])  # decisions 1 1 0 0 0 0: TP 2, FN 1, TN 3, FP 0


def run_metric(name: str, y_pred: torch.Tensor, y: torch.Tensor) -> float:
    metric = segzoo.build("metric", name)
    metric(y_pred[:4], y[:4])  # two batches: the figure is over every image seen
    metric(y_pred[4:], y[4:])
    return metric.aggregate().item()


@pytest.mark.parametrize(
    ("name", "expected"), [("sensitivity", 2 / 3), ("specificity", 1.0), ("accuracy", 5 / 6), ("auc", 8 / 9)]
)
def test_classification_metrics_on_a_hand_example(name: str, expected: float) -> None:
    probabilities = torch.stack([1 - POSITIVE_PROBABILITY, POSITIVE_PROBABILITY], dim=1)
    one_hot = nn.functional.one_hot(LABELS, 2)
    assert run_metric(name, probabilities, LABELS) == pytest.approx(expected)
    assert run_metric(name, probabilities.log(), one_hot) == pytest.approx(expected), (
        "logits and one-hot labels give the same figure"
    )
    assert run_metric(name, POSITIVE_PROBABILITY.unsqueeze(1), LABELS.unsqueeze(1)) == pytest.approx(expected)


def test_classification_metrics_take_decollated_lists_as_monai_handlers_pass_them() -> None:
    probabilities = torch.stack([1 - POSITIVE_PROBABILITY, POSITIVE_PROBABILITY], dim=1)
    for name, expected in (("accuracy", 5 / 6), ("auc", 8 / 9)):
        metric = segzoo.build("metric", name)
        metric(list(probabilities), list(LABELS.unsqueeze(1)))
        assert metric.aggregate().item() == pytest.approx(expected)


def test_sensitivity_without_positive_images_is_nan() -> None:
    metric = segzoo.build("metric", "sensitivity")
    metric(torch.tensor([[0.9, 0.1]]), torch.tensor([0]))
    assert math.isnan(metric.aggregate().item())


def test_resnet34_unets_encoder_is_a_backbone_munet_builds_by_name() -> None:
    from segzoo_munet.munet import MUNet

    backbone = segzoo.build("backbone", "resnet34", in_channels=1)
    assert isinstance(backbone, Backbone) and tuple(backbone.strides) == (2, 4, 8, 16, 32)
    net = segzoo.build("architecture", "munet", backbone="resnet34", in_channels=1, decoder_channels=[32, 16, 16, 8]).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 64, 64))["fused"].shape == (1, 1, 64, 64)
    with pytest.raises(TypeError, match="lacks out_channels and strides"):
        MUNet(nn.Conv2d(1, 4, 3), segzoo.build("fusion", "mean"))
