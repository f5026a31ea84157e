"""MultiResUNet as segzoo users build it: registered by the entry point, paper preset, outputs, clear errors.

Run after installing the package (``pip install -e .[test]``): the registration test needs its entry point.
"""

from __future__ import annotations

import pytest
import torch

import segzoo
from segzoo.complexity import measure
from segzoo_multiresunet.multiresunet import MultiResBlock, ResPath

SMALL = {"base_channels": 8, "depth": 2}  # stride 4, a few thousand parameters


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_registered_by_the_entry_point_with_a_paper_preset() -> None:
    spec = segzoo.get("architecture", "multiresunet")
    assert spec.plugin == "multiresunet"
    assert spec.presets["paper"] == {"base_channels": 32, "depth": 4, "alpha": 1.67}


def test_paper_preset_has_the_published_size() -> None:
    net = segzoo.create_model("multiresunet", preset="paper", in_channels=3, out_channels=1)
    assert measure(net, 3, 32).params_m == pytest.approx(7.24, abs=0.005)


def test_multires_block_splits_its_width_one_sixth_one_third_one_half_and_keeps_the_size() -> None:
    block = MultiResBlock(3, 1.67 * 32)
    assert [conv.conv.out_channels for conv in block.chain] == [8, 17, 26]
    assert block(torch.randn(1, 3, 8, 8)).shape == (1, 51, 8, 8)


def test_respath_has_the_given_length_and_width() -> None:
    path = ResPath(51, 32, length=4)
    assert len(path) == 4
    assert path(torch.randn(1, 51, 8, 8)).shape == (1, 32, 8, 8)


def test_binary_output_is_a_sigmoid_mask_of_the_input_size() -> None:
    net = segzoo.create_model("multiresunet", in_channels=1, out_channels=1, **SMALL).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 8, 12))
    assert out.shape == (2, 1, 8, 12)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_multiclass_output_is_a_softmax_over_classes() -> None:
    net = segzoo.create_model("multiresunet", in_channels=2, out_channels=3, **SMALL).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 2, 8, 8))
    torch.testing.assert_close(out.sum(dim=1), torch.ones(1, 8, 8))


def test_volumes_work_with_spatial_dims_3() -> None:
    net = segzoo.create_model("multiresunet", in_channels=1, out_channels=2, spatial_dims=3, final_activation="identity", **SMALL)
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 1, 4, 8, 4)).shape == (1, 2, 4, 8, 4)


def test_size_not_a_multiple_of_the_stride_is_a_clear_error() -> None:
    net = segzoo.create_model("multiresunet", in_channels=1, out_channels=1, **SMALL)
    with pytest.raises(ValueError, match="multiple of its total stride 4.*8x8"):
        net(torch.randn(1, 1, 10, 8))


def test_too_narrow_a_block_is_refused_naming_the_parameters() -> None:
    with pytest.raises(segzoo.ComponentParamsError, match="alpha \\* base_channels"):
        segzoo.create_model("multiresunet", base_channels=2, alpha=1.0)
