"""Where PyConvU-Net's CPU time goes: per-layer times of each PyConv implementation, and a torch.profiler op summary.

Run ``.venv/bin/python benchmarks/profile_pyconv.py [--threads 1]``; prints markdown (docs/performance.md quotes it).
Times are the median CPU time of the calling thread, so with ``--threads 1`` (the default) they are robust to other
processes on a shared machine; compare rows with each other, not with wall-clock figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import segzoo
from segzoo_pyconvunet.pyconv import PyConv, pyconv_macs, set_implementation

SIZE = 512
IMPLEMENTATIONS = ("grouped", "channels_last", "merged")


@torch.no_grad()
def cpu_ms(module: nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    """Median CPU milliseconds of the calling thread for ``module(x)``, after one warm-up call."""
    module(x)
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        module(x)
        times.append(time.thread_time() - start)
    return 1000 * statistics.median(times)


def distinct_layers(net: nn.Module) -> list[tuple[PyConv, int]]:
    """One (PyConv, input size) per distinct shape of the network, in network order."""
    seen: dict[tuple[int, int, int], tuple[PyConv, int]] = {}

    def record(block: PyConv, args: tuple, out: torch.Tensor) -> None:
        size = args[0].shape[-1]
        seen.setdefault((block.levels[0].in_channels, sum(block.level_out), size), (block, size))

    handles = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, PyConv)]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, 64, 64))
    for h in handles:
        h.remove()
    return [(m, size * SIZE // 64) for m, size in seen.values()]


def layer_table(net: nn.Module) -> list[str]:
    rows = [
        "| layer (in -> out @ size) | groups | plan | GMac | grouped NCHW (ms) | channels_last (ms) | merged (ms) "
        "| dense 3x3 (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for block, size in distinct_layers(net):
        cin, cout = block.levels[0].in_channels, sum(block.level_out)
        x = torch.randn(1, cin, size, size)
        times = {}
        for impl in IMPLEMENTATIONS:
            block.implementation = impl
            times[impl] = cpu_ms(block, x)
        block.implementation = "auto"
        dense = nn.Conv2d(cin, cout, 3, padding=1).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        gmac = pyconv_macs(cin, block.level_out, block.kernels, block.level_groups, size, size) / 1e9
        rows.append(
            f"| {cin} -> {cout} @ {size} | {block.level_groups} | {block.plan} | {gmac:.2f} | "
            + " | ".join(f"{times[i]:.0f}" for i in IMPLEMENTATIONS)
            + f" | {cpu_ms(dense, x_cl):.0f} |"
        )
    return rows


def op_summary(net: nn.Module, rows: int = 6) -> list[str]:
    """Self CPU time by operator of one 512x512 forward pass."""
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        net.eval()(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            net(x)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        f"| {e.key} | {e.self_cpu_time_total / 1000:.0f} | {100 * e.self_cpu_time_total / total:.0f}% |" for e in events[:rows]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pyconvunet = segzoo.create_model("pyconvunet", "paper")
    print(f"## PyConv layers of the `paper` preset, batch 1, {args.threads} thread(s), CPU time\n")
    print("\n".join(layer_table(pyconvunet)))
    unet = segzoo.create_model("unet", "paper")
    for label, net in [("unet", unet), *[(f"pyconvunet `{impl}`", pyconvunet) for impl in ("grouped", "merged")]]:
        if label.startswith("pyconvunet"):
            set_implementation(net, label.split("`")[1])
        print(f"\n## {label}: self CPU time by operator, 3x{SIZE}x{SIZE}\n\n| operator | ms | share |\n|---|---|---|")
        print("\n".join(op_summary(net)))


if __name__ == "__main__":
    main()
