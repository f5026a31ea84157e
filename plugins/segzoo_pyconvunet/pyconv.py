"""Pyramidal convolution (Duta et al. 2020), as PyConvU-Net uses it.

A PyConv has ``n`` levels; level ``z`` convolves the whole input with a
``K_z x K_z`` kernel in ``G_z`` groups and produces its share of the output
channels. Larger kernels use more groups, so parameters and MACs stay close
to a single ``K_1 x K_1`` convolution (the paper's eq. 5-8).

Few MACs are not little time: oneDNN, PyTorch's CPU convolution backend, is
slow for groups of a handful of channels, and slower still in the default
NCHW memory format. The block therefore has several implementations that
compute the same function from the same weights (``docs/performance.md``):

* ``grouped``: one grouped convolution per level, then concatenation; the reference.
* ``channels_last``: the same convolutions in channels-last (NHWC) memory format.
* ``merged``: channels-last, and runs of adjacent levels whose groups are narrow merged into one
  grouped convolution with zero-padded kernels and block-diagonal weights, wherever a SIMD-lane
  cost model (:func:`merge_plan`) says that is cheaper than one convolution per level.
* ``dense``: each level's grouped convolution as one dense convolution whose weight is block-diagonal over the
  groups (zeros elsewhere): more MACs, but GPU tensor cores run dense convolutions far faster than small groups.
* ``dense_merged``: all levels of the block as one dense convolution, kernels zero-padded to the largest: one launch.
* ``auto``: :func:`auto_implementation`, by device and compute dtype (``merged`` on CPU).

The weights of the derived convolutions are rebuilt from ``levels`` on every call, so autograd sends the gradients
to the per-level parameters; without autograd (inference) they are cached until a parameter changes.

Every implementation keeps the checkpoint format: the parameters are always the per-level
convolutions in ``levels``. The channels-last implementations return a channels-last tensor, so the
following batch norm, ReLU and PyConv stay in that format instead of paying a layout conversion each.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from pydantic import Field, model_validator
from torch import nn

import segzoo
from segzoo.errors import SegzooError

CITATION_PYCONV = ("Duta IC, Liu L, Zhu F, Shao L. Pyramidal convolution: rethinking convolutional neural networks for visual "
                   "recognition. arXiv:2006.11538 (2020)")

Implementation = Literal["auto", "grouped", "channels_last", "merged", "dense", "dense_merged"]
IMPLEMENTATIONS: tuple[str, ...] = ("auto", "grouped", "channels_last", "merged", "dense", "dense_merged")
_TENSOR_CORE_DTYPES = (torch.float16, torch.bfloat16)

# Cost of reading or writing one feature-map element, in multiply-accumulates: fitted on a 2-core AVX-512
# machine (a 32-channel 512x512 copy costs about as much as 100 MACs per element of a dense convolution).
MEMORY_COST_MACS = 100.0

_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


# The first layer of a network sees the image: 1 (grey) to 3 (RGB) channels, too few for a pyramid's groups.
NARROW_INPUT_CHANNELS = 3


class PyConvLayoutError(SegzooError, ValueError):
    """A pyramid that does not fit a layer's channels (a level without channels, or groups that do not divide them);
    the message names the level, channels and groups."""


def split_channels(out_channels: int, shares: Sequence[float] | None, levels: int) -> list[int]:
    """Output channels per level: ``shares`` (normalised) of ``out_channels``; the rounding remainder goes to the last level."""
    weights = [1.0] * levels if shares is None else [float(s) for s in shares]
    total = sum(weights)
    counts = [int(out_channels * w / total) for w in weights[:-1]]
    counts.append(out_channels - sum(counts))
    if min(counts) <= 0:
        raise PyConvLayoutError(
            f"PyConv: {out_channels} output channels cannot be split by shares {list(weights)} (a level "
            f"would get {min(counts)}); "
            f"raise the smallest share or the width"
        )
    return counts


def check_groups(in_channels: int, level_out: Sequence[int], kernels: Sequence[int], groups: Sequence[int]) -> None:
    """Refuse groups that do not divide a level's channels, instead of building other groups than declared."""
    for z, (out, k, g) in enumerate(zip(level_out, kernels, groups), start=1):
        if in_channels % g or out % g:
            fits = max(d for d in range(1, g + 1) if in_channels % d == 0 and out % d == 0)
            raise PyConvLayoutError(
                f"PyConv {in_channels}->{sum(level_out)} channels: pyramid level {z} (kernel {k}) has {in_channels} input and "
                f"{out} output channels, which groups {g} does not divide; declare groups that divide both (at most {fits} "
                f"here), or change the width or shares so that {g} divides the level's channels"
            )


def follows_pyramid_principle(kernels: Sequence[int], groups: Sequence[int]) -> bool:
    """Equation (7)'s principle: level 1 at full depth (groups 1), and a larger kernel never has more connections per
    output channel (``in_channels / G_z * K_z^2``, so ``K_z^2 / G_z`` when the groups divide the input) than a smaller one."""
    connections = [k * k / g for k, g in zip(kernels, groups)]
    return groups[0] == 1 and all(later <= earlier for earlier, later in itertools.pairwise(connections))


def narrow_input_groups(in_channels: int, level_out: Sequence[int], groups: Sequence[int]) -> list[int]:
    """Groups a first layer of 1-3 input channels can use: each level's largest divisor of both channel counts not
    above the declared one. The network records the result (``first_layer_groups``), so its built spec shows them."""
    if in_channels > NARROW_INPUT_CHANNELS:
        raise ValueError(
            f"only a first layer of 1-{NARROW_INPUT_CHANNELS} input channels may lower its groups, got {in_channels}"
        )
    return [max(d for d in range(1, g + 1) if in_channels % d == 0 and out % d == 0) for out, g in zip(level_out, groups)]


def auto_implementation(device: torch.device, dtype: torch.dtype) -> str:
    """What ``auto`` runs for a call on ``device`` computing in ``dtype`` (the autocast dtype when autocast is on).

    * CPU: ``merged`` (measured fastest on AVX-512 and AVX2, docs/performance.md).
    * CUDA in fp16/bf16, or in fp32 with cuDNN allowed to use TF32 (PyTorch's default for convolutions):
      ``dense``. Tensor cores run only dense-enough convolutions; the grouped kernels of a few channels each ran
      at 1/15 of U-Net's rate per MAC on an H200, and ``dense`` pays at most the group count in extra MACs.
      Provisional: chosen by that cost argument, not yet by a GPU measurement (the bench's ratios per
      implementation decide).
    * anything else (CUDA with strict fp32, other accelerators): ``grouped``, the reference.
    """
    if device.type == "cpu":
        return "merged"
    if device.type == "cuda" and (dtype in _TENSOR_CORE_DTYPES or (dtype == torch.float32 and torch.backends.cudnn.allow_tf32)):
        return "dense"
    return "grouped"


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` computes in: autocast's on ``x``'s device when it is on, else ``x``'s."""
    kind = x.device.type
    if x.is_floating_point() and torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype


def simd_lanes() -> int:
    """fp32 lanes of the widest vector unit PyTorch uses on this CPU: oneDNN vectorises a group's output channels over them."""
    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


def conv_cost(in_channels: int, out_channels: int, groups: int, kernel: int, spatial_dims: int, lanes: int) -> float:
    """Modelled CPU cost per output pixel of one same-padded grouped convolution, in MACs.

    A group of fewer output channels than SIMD lanes still pays for the full vector, which is why a
    4-in/1-out 9x9 group runs 10x slower per MAC than a dense 3x3; reading the input and writing the
    output is charged on top.
    """
    padded_out = math.ceil(out_channels // groups / lanes) * lanes
    compute = groups * padded_out * (in_channels // groups) * kernel**spatial_dims
    return compute + MEMORY_COST_MACS * (in_channels + out_channels)


def merge_plan(
    in_channels: int,
    level_out: Sequence[int],
    groups: Sequence[int],
    kernels: Sequence[int],
    spatial_dims: int = 2,
    lanes: int = 16,
) -> tuple[tuple[int, ...], ...]:
    """The cheapest split of the levels into runs of adjacent levels, each run computed by one convolution.

    A run convolves with the largest kernel of its levels and the gcd of their groups; merging trades
    extra (zero) MACs for fuller vectors and fewer passes over the input. A run that mixes levels
    with more than one group also pays a channel shuffle back into level order.
    """
    n = len(level_out)
    best: tuple[float, tuple[tuple[int, ...], ...]] | None = None
    for cuts in itertools.product((False, True), repeat=n - 1):
        runs, start = [], 0
        for i, cut in enumerate(cuts, start=1):
            if cut:
                runs.append(tuple(range(start, i)))
                start = i
        runs.append(tuple(range(start, n)))
        cost = 0.0
        for run in runs:
            g = math.gcd(*(groups[z] for z in run))
            out = sum(level_out[z] for z in run)
            cost += conv_cost(in_channels, out, g, max(kernels[z] for z in run), spatial_dims, lanes)
            if len(run) > 1 and g > 1:
                cost += 2 * MEMORY_COST_MACS * out
        if best is None or cost < best[0]:
            best = (cost, tuple(runs))
    return best[1]


class PyConvParams(segzoo.Params):
    in_channels: int = Field(gt=0, description="input feature maps FM_i")
    out_channels: int = Field(gt=0, description="output feature maps FM_o (sum over levels)")
    kernels: list[int] = Field([3, 5, 7, 9], description="kernel size K_z of each pyramid level (odd)")
    groups: list[int] = Field([1, 4, 8, 16], description="groups G_z of each level; each must divide the input channels and "
                                                         "the level's output channels")
    shares: list[float] | None = Field(None, description="share of the output channels of each level; equal when unset")
    spatial_dims: int = Field(2, ge=1, le=3, description="2 for images, 3 for volumes")
    bias: bool = Field(False, description="add a bias to every level (BN follows in PyConvU-Net, so off)")
    implementation: Implementation = Field(
        "auto",
        description="how to compute it (same result, same weights): grouped, channels_last, merged, dense, dense_merged, "
        "or auto (by device and dtype: merged on CPU, dense on CUDA with tensor cores)",
    )

    @model_validator(mode="after")
    def _levels_agree(self) -> PyConvParams:
        n = len(self.kernels)
        if len(self.groups) != n or (self.shares is not None and len(self.shares) != n):
            raise ValueError(f"kernels ({n}), groups ({len(self.groups)}) and shares must have one entry per pyramid level")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels must be odd for same padding, got {self.kernels}")
        return self


@segzoo.component(
    "block",
    "pyconv",
    params=PyConvParams,
    summary="Pyramidal convolution: parallel levels with growing kernels and groups, concatenated",
    citation=CITATION_PYCONV,
)
class PyConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernels: Sequence[int] = (3, 5, 7, 9),
        groups: Sequence[int] = (1, 4, 8, 16),
        shares: Sequence[float] | None = None,
        spatial_dims: int = 2,
        bias: bool = False,
        implementation: Implementation = "auto",
    ) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.level_out = split_channels(out_channels, shares, len(kernels))
        check_groups(in_channels, self.level_out, kernels, groups)
        self.level_groups = list(groups)
        self.kernels = list(kernels)
        conv = Conv[Conv.CONV, spatial_dims]
        self.levels = nn.ModuleList(
            conv(in_channels, out, k, padding=k // 2, groups=g, bias=bias)
            for k, g, out in zip(kernels, self.level_groups, self.level_out)
        )
        self.implementation = implementation
        self.plan = merge_plan(in_channels, self.level_out, self.level_groups, self.kernels, spatial_dims, simd_lanes())
        order = self._merged_order()
        # Not persistent: the checkpoint format stays the per-level weights whatever the implementation.
        self.register_buffer("merged_order", order, persistent=False)
        self._weight_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    @property
    def implementation(self) -> str:
        return self._implementation

    @implementation.setter
    def implementation(self, value: str) -> None:
        if value not in IMPLEMENTATIONS:
            raise ValueError(f"PyConv implementation must be one of {', '.join(IMPLEMENTATIONS)}, got {value!r}")
        self._implementation = value

    def describe_layer(self) -> list[dict[str, int]]:
        """One row per pyramid level as built (kernel, groups, channels, connections per output channel
        ``in / groups * k^2``, parameters): what ``segzoo complexity --layers`` prints."""
        return [
            {
                "level": z,
                "kernel": k,
                "groups": conv.groups,
                "in": conv.in_channels,
                "out": conv.out_channels,
                "connections": conv.in_channels // conv.groups * k**self.spatial_dims,
                "params": sum(p.numel() for p in conv.parameters()),
            }
            for z, (k, conv) in enumerate(zip(self.kernels, self.levels), start=1)
        ]

    def _run_groups(self, run: Sequence[int]) -> int:
        return math.gcd(*(self.level_groups[z] for z in run))

    def _merged_order(self) -> torch.Tensor | None:
        """Channel gather from the merged convolutions' output order back to level order; ``None`` if they agree."""
        source: dict[tuple[int, int], int] = {}  # (level, channel within level) -> merged output channel
        base = 0
        for run in self.plan:
            g = self._run_groups(run)
            per_group = sum(self.level_out[z] // g for z in run)
            offset = 0
            for z in run:
                width = self.level_out[z] // g
                for channel in range(self.level_out[z]):
                    group, within = divmod(channel, width)
                    source[z, channel] = base + group * per_group + offset + within
                offset += width
            base += g * per_group
        order = [source[z, c] for z in range(len(self.levels)) for c in range(self.level_out[z])]
        return None if order == sorted(order) else torch.tensor(order)

    def _run_weights(self, run: Sequence[int], g: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight (and bias) of the one convolution in ``g`` groups computing ``run``: kernels zero-padded to the
        largest, a level with ``sub`` times ``g`` groups spread block-diagonally over each of the ``g`` groups."""
        size = max(self.kernels[z] for z in run)
        weights, biases = [], []
        for z in run:
            level = self.levels[z]
            w = level.weight
            sub = self.level_groups[z] // g
            if sub > 1:
                out_g, in_g, kernel = w.shape[0] // (g * sub), w.shape[1], w.shape[2:]
                eye = torch.eye(sub, dtype=w.dtype, device=w.device).view(1, sub, 1, sub, 1, *[1] * len(kernel))
                w = w.view(g, sub, out_g, 1, in_g, *kernel) * eye
            w = w.reshape(g, self.level_out[z] // g, -1, *w.shape[-self.spatial_dims:])
            pad = (size - self.kernels[z]) // 2
            weights.append(F.pad(w, [pad, pad] * self.spatial_dims) if pad else w)
            if level.bias is not None:
                biases.append(level.bias.view(g, -1))
        weight = torch.cat(weights, 1).flatten(0, 1)
        return weight, torch.cat(biases, 1).flatten() if biases else None

    def _cached_run_weights(self, run: Sequence[int], g: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`_run_weights`, reused while no parameter of the run changed (its version counter) and autograd is off.

        Never while tracing or compiling: a cached tensor would be baked into the graph as a constant, detached
        from the parameters an exported model loads.
        """
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():
            return self._run_weights(run, g)
        params = [p for z in run for p in self.levels[z].parameters()]
        key = (tuple(run), g, *((p.data_ptr(), p._version, p.device, p.dtype) for p in params))
        if key not in self._weight_cache:
            self._weight_cache = {k: v for k, v in self._weight_cache.items() if k[:2] != key[:2]}
            self._weight_cache[key] = self._run_weights(run, g)
        return self._weight_cache[key]

    def _forward_runs(self, x: torch.Tensor, plan: Sequence[Sequence[int]], dense: bool) -> torch.Tensor:
        """Each run of levels as one convolution: in the gcd of its groups (``merged``) or in one group (``dense``)."""
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.spatial_dims - 1]
        outs = []
        for run in plan:
            g = 1 if dense else self._run_groups(run)
            if len(run) == 1 and self.level_groups[run[0]] == g:
                outs.append(self.levels[run[0]](x))
                continue
            weight, bias = self._cached_run_weights(run, g)
            outs.append(conv(x, weight, bias, padding=weight.shape[-1] // 2, groups=g))
        y = torch.cat(outs, 1) if len(outs) > 1 else outs[0]
        if not dense and self.merged_order is not None:
            # Gather along the innermost (channel) axis of the channels-last layout: a cheap, format-keeping copy.
            y = y.movedim(1, -1)[..., self.merged_order].movedim(-1, 1)
        return y

    def resolved_implementation(self, x: torch.Tensor) -> str:
        """What ``forward`` runs for ``x``: ``auto`` resolved by device and compute dtype; forward hooks on a level force
        one call per level."""
        impl = self.implementation
        if impl == "auto":
            impl = auto_implementation(x.device, compute_dtype(x))
        # Hooks on a level (the MAC counter's, a feature extractor's) must see that level's call.
        if impl in ("merged", "dense", "dense_merged") and any(
            level._forward_hooks or level._forward_pre_hooks for level in self.levels
        ):
            impl = "channels_last"
        return impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        impl = self.resolved_implementation(x)
        if impl in ("channels_last", "merged") and self.spatial_dims in _CHANNELS_LAST:
            x = x.contiguous(memory_format=_CHANNELS_LAST[self.spatial_dims])
        if impl == "merged":
            return self._forward_runs(x, self.plan, dense=False)
        if impl == "dense":
            return self._forward_runs(x, [(z,) for z in range(len(self.levels))], dense=True)
        if impl == "dense_merged":
            return self._forward_runs(x, [tuple(range(len(self.levels)))], dense=True)
        return torch.cat([level(x) for level in self.levels], dim=1)


def set_implementation(model: nn.Module, implementation: Implementation) -> int:
    """Switch every PyConv inside ``model`` to ``implementation`` (weights untouched); returns how many were switched."""
    blocks = [m for m in model.modules() if isinstance(m, PyConv)]
    for block in blocks:
        block.implementation = implementation
    return len(blocks)


def pyconv_parameters(in_channels: int, level_out: Sequence[int], kernels: Sequence[int], groups: Sequence[int]) -> int:
    """Eq. (7) with the groups made explicit: sum_z K_z^2 * (FM_i / G_z) * FM_oz (no bias)."""
    return sum(k * k * (in_channels // g) * out for k, g, out in zip(kernels, groups, level_out))


def pyconv_macs(
    in_channels: int, level_out: Sequence[int], kernels: Sequence[int], groups: Sequence[int], height: int, width: int
) -> int:
    """Eq. (8): eq. (7) times the output area W * H."""
    return pyconv_parameters(in_channels, level_out, kernels, groups) * height * width
