"""Parameter and multiply-accumulate counts under one pinned rule.

The rule is the one of ptflops' PyTorch backend (the counter the PyConvU-Net
paper's Table 3 used), pinned here so the figures never drift with a library
release. One forward pass of batch 1 is traced with module hooks on leaf modules:

* convolution: ``out_elements * (in_channels / groups) * prod(kernel)`` MACs, plus ``out_elements`` for a bias;
* transposed convolution: counted at its **input** size,
  ``in_elements_spatial * in_channels * (out_channels / groups) * prod(kernel)``, plus ``out_elements`` for a bias;
* batch/instance/group norm: ``in_elements``, doubled when affine;
* ReLU / LeakyReLU / ELU / PReLU / ReLU6, pooling (max, avg, adaptive), up-sampling: one per element
  (output elements for up-sampling, input elements otherwise);
* linear: ``in_features * out_features`` per row, plus ``out_features`` for a bias.

Everything else (sigmoid, softmax, element-wise sums, concatenation) counts zero, as in ptflops.
Parameters are all trainable parameters. 1 GMac = 1e9 multiply-accumulates.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from segzoo.errors import SegzooError

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.PReLU, nn.ReLU6)
_POOLS = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm)


@dataclass(frozen=True)
class Complexity:
    params_m: float
    gmac: float


def _module_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        per_position = math.prod(module.kernel_size) * module.in_channels * (module.out_channels // module.groups)
        macs = per_position * inp.shape[0] * math.prod(inp.shape[2:])
        return macs + (out.numel() if module.bias is not None else 0)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        per_position = math.prod(module.kernel_size) * (module.in_channels // module.groups) * module.out_channels
        macs = per_position * out.shape[0] * math.prod(out.shape[2:])
        return macs + (out.numel() if module.bias is not None else 0)
    if isinstance(module, _NORMS):
        return inp.numel() * (2 if getattr(module, "affine", False) else 1)
    if isinstance(module, _ACTIVATIONS) or isinstance(module, _POOLS):
        return inp.numel()
    if isinstance(module, nn.Upsample):
        return out.numel()
    if isinstance(module, nn.Linear):
        rows = inp.numel() // inp.shape[-1]
        return rows * module.in_features * module.out_features + (rows * module.out_features if module.bias is not None else 0)
    return 0


_META = torch.device("meta")
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def layer_rows(model: nn.Module) -> list[dict[str, Any]]:
    """The layers of ``model`` as built, in module order, each row led by its module path.

    A block describes itself with a ``describe_layer()`` method returning one row per part (a pyramid's levels:
    kernel, groups, channels, ...); any other convolution gets one row of the same fields. The convolutions inside a
    block that describes itself are its parts, so they are not listed again.
    """
    rows: list[dict[str, Any]] = []
    described: list[str] = []
    for path, module in model.named_modules():
        if any(path.startswith(f"{outer}.") for outer in described):
            continue
        if callable(getattr(module, "describe_layer", None)):
            described.append(path)
            rows += [{"layer": path, **row} for row in module.describe_layer()]
        elif isinstance(module, _CONVS):
            kernel = module.kernel_size[0] if len(set(module.kernel_size)) == 1 else "x".join(map(str, module.kernel_size))
            rows.append(
                {
                    "layer": path,
                    "level": "-",
                    "kernel": kernel,
                    "groups": module.groups,
                    "in": module.in_channels,
                    "out": module.out_channels,
                    "connections": module.in_channels // module.groups * math.prod(module.kernel_size),
                    "params": sum(p.numel() for p in module.parameters()),
                }
            )
    return rows


def model_placement(model: nn.Module) -> dict[str, torch.device | torch.dtype]:
    """``device`` and ``dtype`` of the model's first floating-point parameter (CPU fp32 for a model without one),
    so probe inputs are built where the model lives instead of on the CPU."""
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    return (
        {"device": first.device, "dtype": first.dtype}
        if first is not None
        else {"device": torch.device("cpu"), "dtype": torch.float32}
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


MAX_SIZE = 8192  # a 8192x8192 fp32 forward of the largest network already needs tens of GB


@torch.no_grad()
def measure(model: nn.Module, in_channels: int = 3, size: int | tuple[int, ...] = 512, spatial_dims: int = 2) -> Complexity:
    """Parameters (millions) and GMac of one forward pass of a batch of one ``size``-sized image.

    Counting needs shapes, not values: the pass runs on a copy of the model on PyTorch's meta device (no arithmetic,
    no memory), about 10x faster than computing it; the authors' released PyConvU-Net (658 GMac) takes 3 s, not 76.
    """
    shape = (size,) * spatial_dims if isinstance(size, int) else tuple(size)
    if not all(0 < s <= MAX_SIZE for s in shape):
        raise SegzooError(f"--size {size}: counts are taken on an image of 1 to {MAX_SIZE} pixels a side (they grow with the "
                          "pixel count, so a larger image's GMac is the count at a smaller size times the area "
                          "ratio); pass e.g. --size 512")
    if model_placement(model)["device"] != _META:
        model = copy.deepcopy(model).to(_META)
    total = 0

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
            total += _module_macs(module, args[0], out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, in_channels, *shape, **model_placement(model)))
    except (ValueError, RuntimeError) as exc:  # a size the network cannot take (its stride, or smaller than its kernels)
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SegzooError(f"--size {size}: {type(model).__name__} cannot take an image of "
                          f"{'x'.join(map(str, shape))} ({reason}); "
                          "pass a size it can, e.g. --size 512") from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Complexity(params_m=count_parameters(model) / 1e6, gmac=total / 1e9)
