"""Export every registered architecture to TorchScript and ONNX at 1x1x256x256 and tabulate time and max abs difference.

    python benchmarks/export_table.py [--size 256] [--preset paper]

Each architecture is built with its defaults (or ``--preset`` where it has one), one input channel; the
difference is ``segzoo.export``'s own check (exported file vs PyTorch, max |a - b| over every output, fp32).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import segzoo
from segzoo.export import ExportError, export_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--preset", default=None)
    args = parser.parse_args()
    print("| architecture | format | export s | max abs diff | outputs |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in segzoo.list_components("architecture"):
            preset = args.preset if args.preset in spec.presets else None
            torch.manual_seed(0)
            network = spec.build(preset, in_channels=1).eval()
            sample = torch.rand(1, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
            for fmt in ("torchscript", "onnx"):
                try:
                    result = export_network(network, fmt, Path(tmp) / f"{spec.name}.{fmt}", sample)
                    print(
                        f"| {spec.name} | {fmt} | {result.seconds:.1f} | {result.max_abs_diff:.1e} "
                        f"| {', '.join(result.outputs)} |",
                        flush=True,
                    )
                except ExportError as exc:
                    print(f"| {spec.name} | {fmt} | - | failed | {exc} |", flush=True)


if __name__ == "__main__":
    main()
