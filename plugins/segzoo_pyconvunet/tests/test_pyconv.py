"""PyConv's counting formulas (paper eq. 5-8), the U-Net count rule, and the PyConvU-Net preset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import segzoo
from segzoo.complexity import measure
from segzoo_pyconvunet.pyconv import PyConv, level_groups, pyconv_macs, pyconv_parameters, split_channels


@pytest.mark.parametrize("cin,cout", [(64, 64), (32, 128)])
def test_parameters_and_macs_follow_eq_7_and_8(cin: int, cout: int) -> None:
    block = segzoo.build("block", "pyconv", in_channels=cin, out_channels=cout)
    level_out = split_channels(cout, None, 4)
    assert sum(p.numel() for p in block.parameters()) == pyconv_parameters(cin, level_out, [3, 5, 7, 9], [1, 4, 8, 16])
    counted = measure(block, cin, 32)
    assert counted.gmac * 1e9 == pytest.approx(pyconv_macs(cin, level_out, [3, 5, 7, 9], [1, 4, 8, 16], 32, 32))


def test_eq_5_6_standard_convolution_is_the_one_level_case() -> None:
    block = segzoo.build("block", "pyconv", in_channels=16, out_channels=24, kernels=[3], groups=[1])
    assert sum(p.numel() for p in block.parameters()) == 3 * 3 * 16 * 24  # eq. (5)
    assert measure(block, 16, 10).gmac * 1e9 == pytest.approx(3 * 3 * 16 * 24 * 10 * 10)  # eq. (6)


def test_with_ideal_groups_pyconv_costs_about_one_3x3_convolution() -> None:
    """The paper's point: G_z ~ K_z^2 / K_1^2 keeps parameters near K_1^2 * FM_i * FM_o (eq. 7 simplified)."""
    block = segzoo.build("block", "pyconv", in_channels=144, out_channels=144, kernels=[3, 9], groups=[1, 9])
    assert sum(p.numel() for p in block.parameters()) == 3 * 3 * 144 * 144


def test_output_shape_and_same_padding() -> None:
    block = segzoo.build("block", "pyconv", in_channels=16, out_channels=32, shares=[1, 1, 2, 4])
    assert [lvl.out_channels for lvl in block.levels] == [4, 4, 8, 16]
    assert block(torch.randn(2, 16, 17, 23)).shape == (2, 32, 17, 23)


def test_groups_shrink_where_channels_do_not_divide() -> None:
    assert level_groups(3, [8, 8, 8, 8], [1, 4, 8, 16]) == [1, 1, 1, 1]
    assert level_groups(32, [8, 8, 8, 8], [1, 4, 8, 16]) == [1, 4, 8, 8]


def test_mismatched_levels_are_a_clear_error() -> None:
    with pytest.raises(segzoo.ComponentParamsError, match="one entry per pyramid level"):
        segzoo.build("block", "pyconv", in_channels=8, out_channels=8, kernels=[3, 5], groups=[1])


def test_unet_matches_table_3_under_the_pinned_rule() -> None:
    counted = measure(segzoo.create_model("unet", "paper"), 3, 64)
    assert counted.params_m == pytest.approx(7.77, abs=0.005)
    assert counted.gmac * 64 == pytest.approx(48.57, abs=0.005)  # every term is per pixel: 512^2 = 64 * 64^2


def test_convolution_only_counting_gives_the_lower_figure() -> None:
    """Without BN, ReLU, pooling and bias terms the same U-Net is ~48.3 GMac: the rule matters."""
    model = segzoo.create_model("unet", "paper")
    macs = 0

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.ConvTranspose2d):
            macs += 4 * module.in_channels * module.out_channels * args[0].shape[2] * args[0].shape[3]
        elif isinstance(module, nn.Conv2d):
            macs += module.kernel_size[0] ** 2 * module.in_channels * module.out_channels * out.shape[2] * out.shape[3]

    for m in model.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    assert macs * 64 / 1e9 == pytest.approx(48.3, abs=0.1)


@pytest.mark.parametrize("preset", ["paper", "params_matched", "fast"])
def test_presets_keep_the_papers_budget_within_5_percent_of_3_7_million(preset: str) -> None:
    net = segzoo.create_model("pyconvunet", preset)
    params_m = sum(p.numel() for p in net.parameters()) / 1e6
    assert abs(params_m - 3.7) / 3.7 < 0.05


def test_pyconvunet_binary_and_multiclass_outputs() -> None:
    torch.manual_seed(0)
    binary = segzoo.create_model("pyconvunet", "paper", in_channels=1).eval()
    y = binary(torch.randn(1, 1, 32, 32))
    assert y.shape == (1, 1, 32, 32) and 0 <= y.min() and y.max() <= 1
    multi = segzoo.create_model("pyconvunet", in_channels=3, out_channels=3, base_channels=8).eval()
    assert torch.allclose(multi(torch.randn(2, 3, 32, 32)).sum(1), torch.ones(2, 32, 32), atol=1e-5)


def test_bad_input_size_is_a_clear_error() -> None:
    net = segzoo.create_model("pyconvunet", base_channels=8, in_channels=1)
    with pytest.raises(ValueError, match="multiple of its total stride 16, got 30x32"):
        net(torch.randn(1, 1, 30, 32))


def test_paper_preset_level_1_is_full_depth_in_every_pyconv_as_equation_7() -> None:
    pyconvs = [m for m in segzoo.create_model("pyconvunet", "paper").modules() if isinstance(m, PyConv)]
    assert len(pyconvs) == 18  # two per stage: 5 encoder + 4 decoder stages
    assert all(m.levels[0].groups == 1 and m.level_groups[0] == 1 for m in pyconvs)


def test_paper_preset_counts_the_papers_table_3_within_1_percent() -> None:
    counts = measure(segzoo.create_model("pyconvunet", "paper"), 3, 64)  # MACs scale with the area: x64 for 512x512
    assert counts.params_m == pytest.approx(3.7, rel=0.01) and counts.gmac * 64 == pytest.approx(10.65, rel=0.01)
