"""PyConv's fast implementations compute the reference's function from the reference's checkpoint, and count the same MACs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import segzoo
from segzoo.complexity import measure
from segzoo_pyconvunet.pyconv import IMPLEMENTATIONS, PyConv, auto_implementation, compute_dtype, merge_plan, set_implementation

FAST = [impl for impl in IMPLEMENTATIONS if impl != "grouped"]
# (in, out, kernels, groups, shares, spatial_dims, bias): narrow full-resolution groups (one output channel each), a
# first layer that cannot be grouped, unequal shares with bias (a plan of several runs), volumes, and 1D.
CONFIGS = [
    (32, 32, [3, 5, 7, 9], [8, 8, 8, 8], None, 2, False),
    (3, 32, [3, 5, 7, 9], [1, 1, 1, 1], None, 2, False),
    (24, 36, [3, 5, 7, 9], [2, 3, 6, 12], [1, 1, 2, 2], 2, True),
    (16, 16, [3, 5, 7], [4, 4, 8], [1, 1, 2], 3, False),
    (16, 16, [3, 5], [4, 8], None, 1, True),
    (16, 32, [3, 5, 7, 9], [1, 4, 8, 8], None, 2, True),  # a level in one group, as in a pyramid starting at a plain 3x3
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def output_and_gradients(block: nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = block(x)
    return [y, *torch.autograd.grad(y, [x, *block.parameters()], grad_out)]


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}to{c[1]}-g{'_'.join(map(str, c[3]))}-{c[5]}d")
def test_fast_implementations_match_the_reference_forward_and_backward(config: tuple, impl: str) -> None:
    cin, cout, kernels, groups, shares, dims, bias = config
    reference = PyConv(cin, cout, kernels, groups, shares, dims, bias, implementation="grouped")
    fast = PyConv(cin, cout, kernels, groups, shares, dims, bias, implementation=impl)
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(2, cin, *[11] * dims)
    grad_out = torch.randn(2, cout, *[11] * dims)
    for got, want in zip(output_and_gradients(fast, x, grad_out), output_and_gradients(reference, x, grad_out), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", FAST)
def test_checkpoint_format_does_not_depend_on_the_implementation(impl: str) -> None:
    def shapes(implementation: str) -> dict[str, tuple[int, ...]]:
        block = segzoo.build(
            "block", "pyconv", in_channels=32, out_channels=32, groups=[8, 8, 8, 8], implementation=implementation
        )
        return {k: tuple(v.shape) for k, v in block.state_dict().items()}

    assert shapes(impl) == shapes("grouped") == {f"levels.{z}.weight": (8, 4, k, k) for z, k in enumerate([3, 5, 7, 9])}


def test_a_network_trained_with_one_implementation_runs_with_another() -> None:
    """A small PyConvU-Net whose every stage merges levels: one training step's gradients, then a reload, agree."""
    params = {
        "in_channels": 1,
        "base_channels": 16,
        "depth": 2,
        "pyramids": [{"groups": [4, 4, 4, 4]}, {"groups": [4, 8, 8, 8]}, {"groups": [4, 8, 16, 16]}],
        "final_activation": "identity",
    }
    net = segzoo.create_model("pyconvunet", **params)
    x, target = torch.randn(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    gradients = {}
    for impl in ("grouped", "merged"):
        assert set_implementation(net, impl) == 10  # two PyConvs per stage, five stages
        net.zero_grad()
        nn.functional.mse_loss(net(x), target).backward()
        gradients[impl] = [p.grad.clone() for p in net.parameters()]
    for got, want in zip(gradients["merged"], gradients["grouped"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)
    reloaded = segzoo.create_model("pyconvunet", **params).eval()
    reloaded.load_state_dict(net.state_dict())
    set_implementation(reloaded, "grouped")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), net.eval()(x), rtol=1e-4, atol=1e-4)


def test_counted_macs_of_the_paper_preset_do_not_depend_on_the_implementation() -> None:
    net = segzoo.create_model("pyconvunet", "params_matched")
    counts = {}
    for impl in IMPLEMENTATIONS:
        set_implementation(net, impl)
        counts[impl] = measure(net, 3, 16)
    assert len(set(counts.values())) == 1
    assert counts["auto"].gmac * (512 // 16) ** 2 == pytest.approx(18.46, abs=0.005)  # per-pixel terms: 512^2 = 1024 * 16^2


def test_hooks_on_a_level_see_that_levels_call() -> None:
    block = PyConv(32, 32, groups=[8, 8, 8, 8])
    seen = []
    block.levels[3].register_forward_hook(lambda m, a, out: seen.append(out.shape))
    block(torch.randn(1, 32, 8, 8))
    assert seen == [(1, 8, 8, 8)]


def test_auto_merges_narrow_groups_on_cpu_and_keeps_wide_ones_apart() -> None:
    assert merge_plan(32, [8] * 4, [8] * 4, [3, 5, 7, 9], lanes=16) == ((0, 1, 2, 3),)  # 1 output channel per group
    assert merge_plan(512, [128] * 4, [2, 4, 8, 16], [3, 5, 7, 9], lanes=16) == ((0,), (1,), (2,), (3,))
    block = PyConv(32, 32, groups=[8, 8, 8, 8])
    x = torch.randn(1, 32, 8, 8)
    assert block.resolved_implementation(x) == "merged"
    assert block(x).is_contiguous(memory_format=torch.channels_last)  # so the next BN and PyConv need no conversion


def test_unknown_implementation_is_a_clear_error() -> None:
    with pytest.raises(segzoo.ComponentParamsError, match="implementation"):
        segzoo.build("block", "pyconv", in_channels=8, out_channels=8, implementation="fft")
    with pytest.raises(ValueError, match="one of auto, grouped, channels_last, merged, dense, dense_merged"):
        set_implementation(PyConv(8, 8, kernels=[3, 5], groups=[1, 4]), "fft")


def test_the_implementation_is_a_config_choice_of_the_architecture() -> None:
    """``--arch_params "{'implementation': 'grouped'}"`` reaches every PyConv; a misspelt one names the field."""
    net = segzoo.build("architecture", "pyconvunet", "paper", implementation="grouped")
    assert {m.implementation for m in net.modules() if isinstance(m, PyConv)} == {"grouped"}
    assert {m.implementation for m in segzoo.create_model("pyconvunet", "paper").modules() if isinstance(m, PyConv)} == {"auto"}
    with pytest.raises(segzoo.ComponentParamsError, match="implementation"):
        segzoo.build("architecture", "pyconvunet", "paper", implementation="fastest")


@pytest.mark.parametrize("impl", ["merged", "dense", "dense_merged"])
def test_inference_weights_are_rebuilt_once_a_parameter_changes(impl: str) -> None:
    """Without autograd the derived weights are cached; an optimizer step or a checkpoint load must not leave them stale."""
    reference = PyConv(16, 16, groups=[4, 4, 4, 4], implementation="grouped")
    fast = PyConv(16, 16, groups=[4, 4, 4, 4], implementation=impl)
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(1, 16, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), reference(x), rtol=1e-4, atol=1e-4)
        for level in fast.levels:
            level.weight.mul_(-2.0)  # in place, as an optimizer step is
        torch.testing.assert_close(fast(x), -2.0 * reference(x), rtol=1e-4, atol=1e-4)
        fast.load_state_dict(reference.state_dict())
        torch.testing.assert_close(fast(x), reference(x), rtol=1e-4, atol=1e-4)


def test_auto_chooses_by_device_and_compute_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")  # a device object only: the rule needs no GPU
    assert auto_implementation(torch.device("cpu"), torch.float32) == "merged"
    assert auto_implementation(cuda, torch.bfloat16) == auto_implementation(cuda, torch.float16) == "dense"
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert auto_implementation(cuda, torch.float32) == "dense"  # TF32 tensor cores
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert auto_implementation(cuda, torch.float32) == "grouped"
    assert auto_implementation(torch.device("meta"), torch.float32) == "grouped"
    x = torch.randn(1, 4, 8, 8)
    assert compute_dtype(x) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compute_dtype(x) == torch.bfloat16


def test_every_implementation_runs_where_the_model_is() -> None:
    """On the meta device (no memory, no kernels) every implementation keeps its weights and output on the model's device."""
    for impl in IMPLEMENTATIONS:
        block = PyConv(16, 32, groups=[1, 4, 8, 8], bias=True, implementation=impl).to("meta")
        y = block(torch.empty(2, 16, 12, 12, device="meta"))
        assert y.device.type == "meta" and y.shape == (2, 32, 12, 12), impl
