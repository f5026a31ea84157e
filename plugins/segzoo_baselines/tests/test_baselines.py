"""The PyConvU-Net paper's baseline architectures: shapes, Table 3 sizes, input-size errors, UNet++ deep supervision."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import segzoo
from segzoo.complexity import measure

# name -> (total stride, parameters that make a network small enough for fast shape tests)
ARCHITECTURES = {
    "unetpp": (16, {"base_channels": 8}),
    "attention_unet": (16, {"base_channels": 8}),
    "resnet34_unet": (32, {}),
    "fcn8s": (32, {}),
}
TABLE3_TOLERANCE = 0.02
# Table 3 is counted at 512x512; every counted layer is per pixel, so the count at 32x32 times (512/32)**2
# is exact (checked against full 512x512 runs) and 250x cheaper.
COUNT_SIZE = 32
TO_512 = (512 // COUNT_SIZE) ** 2


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_binary_output_is_a_sigmoid_mask_of_the_input_size(name: str) -> None:
    stride, small = ARCHITECTURES[name]
    net = segzoo.create_model(name, in_channels=1, out_channels=1, **small).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 2 * stride, stride))
    assert out.shape == (2, 1, 2 * stride, stride)
    assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_multiclass_output_is_a_softmax_over_classes(name: str) -> None:
    stride, small = ARCHITECTURES[name]
    net = segzoo.create_model(name, in_channels=4, out_channels=3, **small).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 4, stride, 2 * stride))
    assert out.shape == (1, 3, stride, 2 * stride)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(1, stride, 2 * stride))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_volumes_work_with_spatial_dims_3(name: str) -> None:
    stride, small = ARCHITECTURES[name]
    net = segzoo.create_model(name, in_channels=2, out_channels=2, spatial_dims=3, final_activation="identity", **small)
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 2, stride, stride, stride)).shape == (1, 2, stride, stride, stride)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_size_not_a_multiple_of_the_stride_is_a_clear_error(name: str) -> None:
    stride, small = ARCHITECTURES[name]
    net = segzoo.create_model(name, **small).eval()
    with pytest.raises(ValueError, match=f"multiple of its total stride {stride}"):
        net(torch.randn(1, 3, stride, stride + stride // 2))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_paper_preset_matches_table3_within_2_percent(name: str) -> None:
    reported = segzoo.get("architecture", name).reported["paper"]
    ours = measure(segzoo.create_model(name, preset="paper"), in_channels=3, size=COUNT_SIZE)
    assert ours.params_m == pytest.approx(reported["params_m"], rel=TABLE3_TOLERANCE)
    assert ours.gmac * TO_512 == pytest.approx(reported["gmac"], rel=TABLE3_TOLERANCE)


def test_unetpp_with_deep_supervision_reproduces_table3_to_the_last_digit() -> None:
    """The paper counted UNet++ with its four heads: 138.63 GMac exactly (138.60 with one head)."""
    ours = measure(segzoo.create_model("unetpp", preset="paper", deep_supervision=True), in_channels=3, size=COUNT_SIZE)
    assert round(ours.params_m, 2) == 9.16
    assert round(ours.gmac * TO_512, 2) == 138.63


def test_unetpp_deep_supervision_lists_heads_in_training_and_averages_them_in_eval() -> None:
    net = segzoo.create_model(
        "unetpp", base_channels=4, depth=3, deep_supervision=True, out_channels=2, final_activation="identity"
    )
    x = torch.randn(1, 3, 16, 16)
    net.train()
    for module in net.modules():  # running statistics in both passes, so only the output convention differs
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    with torch.no_grad():
        heads = net(x)
        averaged = net.eval()(x)
    assert isinstance(heads, list) and len(heads) == 3
    assert all(head.shape == (1, 2, 16, 16) for head in heads)
    torch.testing.assert_close(averaged, torch.stack(heads).mean(dim=0))
    with torch.no_grad():
        torch.testing.assert_close(heads[0], net.heads[-1](_full_network_features(net, x)))
        net.eval_head = "full"  # the PyConvU-Net authors' code scores the full network's head alone
        torch.testing.assert_close(net(x), heads[0])


def _full_network_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last top node X[0][depth] (what a UNet++ without deep supervision reads), captured with a hook."""
    captured = []
    handle = net.nodes[0][-1].register_forward_hook(lambda module, args, out: captured.append(out))
    net(x)
    handle.remove()
    return captured[0]
