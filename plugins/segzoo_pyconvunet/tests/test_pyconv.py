"""PyConv's counting formulas (paper eq. 5-8), the U-Net count rule, and the PyConvU-Net presets: each builds the groups
it declares, and `paper` keeps eq. (7)'s pyramid principle."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import segzoo
from segzoo.cli import main
from segzoo.complexity import measure
from segzoo_pyconvunet.pyconv import (
    PyConv,
    PyConvLayoutError,
    follows_pyramid_principle,
    narrow_input_groups,
    pyconv_macs,
    pyconv_parameters,
    split_channels,
)
from segzoo_pyconvunet.pyconvunet import TABLE3_LOWERED_GROUPS_PYRAMIDS

PRESETS = list(segzoo.get("architecture", "pyconvunet").presets)


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


def test_groups_that_do_not_divide_a_levels_channels_are_an_error_naming_layer_level_channels_and_groups() -> None:
    pyramids = [*TABLE3_LOWERED_GROUPS_PYRAMIDS[:4], {"kernels": [3, 5, 7], "groups": [1, 2, 4], "shares": [0.125, 1.0, 1.0]}]
    with pytest.raises(PyConvLayoutError) as err:
        segzoo.build("architecture", "pyconvunet", in_channels=1, base_channels=16, depth=4, pyramids=pyramids)
    assert str(err.value) == (
        "pyconvunet layer encoder.4.0.0 (U-Net level 4, pyramids[4]): PyConv 128->256 channels: pyramid level 3 (kernel 7) "
        "has 128 input and 121 output channels, which groups 4 does not divide; declare groups that divide both (at most 1 "
        "here), or change the width or shares so that 4 divides the level's channels"
    )
    with pytest.raises(PyConvLayoutError, match="pyramid level 4 \\(kernel 9\\) has 32 input and 8 output "
                                                "channels, which groups 16"):
        PyConv(32, 32, groups=[1, 4, 8, 16])


def test_only_a_first_layer_of_1_to_3_channels_lowers_its_groups_and_the_record_says_so() -> None:
    assert narrow_input_groups(3, [8, 8, 8, 8], [1, 4, 8, 16]) == [1, 1, 1, 1]
    assert narrow_input_groups(3, [6, 6], [1, 6]) == [1, 3]
    net = segzoo.build("architecture", "pyconvunet", "table3_lowered_groups", in_channels=3)
    first = net.encoder[0][0][0]
    assert [level.groups for level in first.levels] == [1, 1]  # declared 1/8
    record = segzoo.built(net)
    assert record.params["first_layer_groups"] == [1, 1] and record.describe()["first_layer_groups"] == [1, 1]
    rebuilt = segzoo.build("architecture", "pyconvunet", **record.params)  # the record rebuilds what was built
    assert rebuilt.state_dict().keys() == net.state_dict().keys()
    assert all(a.shape == b.shape for a, b in zip(rebuilt.state_dict().values(), net.state_dict().values(), strict=True))
    assert segzoo.built(segzoo.build("architecture", "pyconvunet", "paper", in_channels=3)).params["first_layer_groups"] is None
    with pytest.raises(PyConvLayoutError, match="encoder.0.0.0 .* has 4 input and 8 output channels, which groups 8"):
        segzoo.build("architecture", "pyconvunet", "table3_lowered_groups", in_channels=4)  # 4 channels: no exception


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


@pytest.mark.parametrize("preset", ["table3_lowered_groups", "params_matched", "fast"])
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


def declared_groups(net: nn.Module, preset: str) -> dict[str, list[int]]:
    """Groups each PyConv of ``net`` (by module path) was declared with: its level's pyramid, or the recorded first layer's."""
    spec = segzoo.get("architecture", "pyconvunet").presets[preset]
    depth, pyramids = spec["depth"], spec["pyramids"]
    declared = {}
    for path, module in net.named_modules():
        if isinstance(module, PyConv):
            part, stage = path.split(".")[:2]
            level = int(stage) if part == "encoder" else depth - 1 - int(stage)
            declared[path] = pyramids[level if len(pyramids) > 1 else 0]["groups"]
    record = segzoo.built(net).params
    if record["first_layer_groups"] is not None:
        declared["encoder.0.0.0"] = record["first_layer_groups"]
    return declared


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("preset", PRESETS)
def test_no_preset_builds_other_groups_than_it_declares(preset: str, in_channels: int) -> None:
    net = segzoo.create_model("pyconvunet", preset, in_channels=in_channels)
    declared = declared_groups(net, preset)
    assert len(declared) == 18  # two per stage: 5 encoder + 4 decoder stages
    built = {path: [level.groups for level in m.levels] for path, m in net.named_modules() if isinstance(m, PyConv)}
    assert built == declared
    lowered = segzoo.built(net).params["first_layer_groups"]
    first_declared = segzoo.get("architecture", "pyconvunet").presets[preset]["pyramids"][0]["groups"]
    assert lowered is None or (lowered != first_declared and all(a <= b for a, b in zip(lowered, first_declared, strict=True)))


@pytest.mark.parametrize("in_channels", [1, 3])
def test_paper_preset_keeps_the_pyramid_principle_of_equation_7_in_every_layer(in_channels: int) -> None:
    """Level 1 at full depth, and a larger kernel never with more connections per output channel, as built."""
    net = segzoo.create_model("pyconvunet", "paper", in_channels=in_channels)
    assert segzoo.built(net).params["first_layer_groups"] is None  # nothing lowered, not even the first layer
    for path, block in net.named_modules():
        if isinstance(block, PyConv):
            rows = block.describe_layer()
            connections = [row["connections"] for row in rows]
            assert rows[0]["groups"] == 1 and connections == sorted(connections, reverse=True), path
            assert follows_pyramid_principle(block.kernels, block.level_groups), path


def test_paper_preset_counts_the_documented_closest_fit_and_the_lowered_one_table_3() -> None:
    paper = measure(segzoo.create_model("pyconvunet", "paper"), 3, 64)  # MACs scale with the area: x64 for 512x512
    assert paper.params_m == pytest.approx(1.911, abs=0.001) and paper.gmac * 64 == pytest.approx(11.41, abs=0.01)
    lowered = measure(segzoo.create_model("pyconvunet", "table3_lowered_groups"), 3, 64)
    assert lowered.params_m == pytest.approx(3.7, rel=0.01) and lowered.gmac * 64 == pytest.approx(10.65, rel=0.01)


def test_complexity_layers_prints_every_level_of_every_pyconv_as_built(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complexity", "pyconvunet", "--preset", "table3_lowered_groups", "--layers", "--size", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["layer", "level", "kernel", "groups", "in", "out", "connections", "params"]
    full_depth_7x7 = ["encoder.4.1.0", "3", "7", "1", "256", "121", "12544", "1517824"]
    assert full_depth_7x7 in [line.split() for line in lines]
    assert main(["complexity", "pyconvunet", "--preset", "paper", "--layers", "--size", "64", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    pyconv_rows = [row for row in layers if row["level"] != "-"]
    assert len({row["layer"] for row in pyconv_rows}) == 18 and max(row["level"] for row in pyconv_rows) == 2
    assert {row["layer"] for row in layers if row["level"] == "-"} == {"up.0", "up.1", "up.2", "up.3", "head"}


def test_released_code_with_its_one_fix_runs() -> None:
    """The authors' PyconvUnet.py fails at its first batch norm as released; with block expansion 1 it runs."""
    net = segzoo.build("architecture", "pyconvunet_released", in_channels=1, base_channels=32, depth=1).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 8, 8)).shape == (1, 1, 8, 8)
