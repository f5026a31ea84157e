"""TorchScript and ONNX files of a network, each checked against the PyTorch network before it is kept.

The check runs the exported file (TorchScript through ``torch.jit.load``, ONNX through onnxruntime on
CPU) on the sample input and on a batch of two, and refuses the export when any output differs from
PyTorch's by more than ``tolerance`` (max absolute difference, fp32): a file that exists is a file
that computes what the network computes.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segzoo.export.graph import ExportError, InferenceGraph, as_tuple

TOLERANCE = 1e-4
# The dynamo exporter's lowest opset; onnxruntime's CPU provider runs it (ORT >= 1.14 covers opset 18).
ONNX_OPSET = 18
FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx"}


@dataclass(frozen=True)
class ExportResult:
    """An export that passed its check: where it is, how long it took, and how far it is from PyTorch."""

    path: Path
    format: str
    seconds: float
    max_abs_diff: float
    outputs: tuple[str, ...]

    def summary(self) -> str:
        return (f"{self.format} -> {self.path} ({', '.join(self.outputs)}) in {self.seconds:.1f} s; "
                f"max |exported - PyTorch| = {self.max_abs_diff:.2e} on the sample input")


def save_torchscript(graph: InferenceGraph, sample: torch.Tensor, path: Path) -> None:
    """Trace ``graph`` on ``sample`` (scripting fails on most registry networks: pydantic-built configs, dict outputs)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", torch.jit.TracerWarning
        )  # shape checks become constants; the check below runs a batch of 2
        traced = torch.jit.trace(graph, sample, check_trace=False)
    traced.save(str(path))


def save_onnx(graph: InferenceGraph, sample: torch.Tensor, path: Path) -> None:
    """ONNX through the dynamo exporter (the TorchScript-based one fails on PyConv's grouped convolutions), with
    batch and spatial size dynamic (``Dim.AUTO`` keeps the size divisibility a network checks as a constraint)."""
    for module in ("onnx", "onnxscript", "onnxruntime"):  # torch's exporter would fail later with "No module named 'onnxscript'"
        try:
            __import__(module)
        except ImportError:
            raise ExportError(f"ONNX export needs {module}, which is not installed: pip install \"segzoo[export]\"") from None
    dynamic = torch.export.Dim.AUTO
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)  # "torchvision is not installed"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (sample,), str(path), dynamo=True, opset_version=ONNX_OPSET, input_names=["image"],
                          output_names=list(graph.names), dynamic_shapes=({0: dynamic, 2: dynamic, 3: dynamic},),
                          verbose=False, optimize=True)


def torchscript_runner(path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(image: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in as_tuple(module(torch.from_numpy(image)))]

    return run


def onnx_runner(path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("ONNX export needs onnx, onnxscript and onnxruntime: pip install \"segzoo[export]\"") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda image: session.run(None, {name: image})


SAVERS = {"torchscript": save_torchscript, "onnx": save_onnx}
RUNNERS = {"torchscript": torchscript_runner, "onnx": onnx_runner}


def max_abs_diff(graph: InferenceGraph, run: Callable[[np.ndarray], list[np.ndarray]], image: torch.Tensor) -> float:
    """Largest absolute difference between PyTorch's outputs and the exported file's, over every output."""
    with torch.no_grad():
        expected = [t.numpy() for t in as_tuple(graph(image))]
    got = run(image.numpy())
    if len(got) != len(expected):
        raise ExportError(f"the export returns {len(got)} outputs, PyTorch {len(expected)}")
    for name, e, g in zip(graph.names, expected, got):
        if e.shape != g.shape:
            raise ExportError(
                f"output {name}: the export gives shape {g.shape} for input {tuple(image.shape)}, PyTorch {e.shape}"
            )
    return max(float(np.abs(e - g).max()) for e, g in zip(expected, got))


def export_network(
    network: nn.Module, fmt: str, path: str | Path, sample: torch.Tensor, tolerance: float = TOLERANCE
) -> ExportResult:
    """Export ``network`` to ``path`` as ``fmt`` and check it; a file that fails the check is deleted, and the error says
    by how much."""
    if fmt not in SAVERS:
        raise ExportError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = InferenceGraph(network.cpu().float())
    sample = sample.detach().cpu().float()
    start = time.perf_counter()
    try:
        SAVERS[fmt](graph, sample, path)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - each exporter fails its own way; say which network and format
        raise ExportError(
            f"{type(network).__name__} could not be exported to {fmt}: {type(exc).__name__}: {str(exc)[:800]}"
        ) from exc
    seconds = time.perf_counter() - start
    try:
        run = RUNNERS[fmt](path)
        diff = max_abs_diff(graph, run, sample)
        batch_diff = max_abs_diff(
            graph, run, torch.cat([sample, sample.flip(-1)])
        )  # a batch of two: the batch size is not baked in
    except BaseException:
        path.unlink(missing_ok=True)  # a file that could not be checked is not kept either
        raise
    if max(diff, batch_diff) > tolerance:
        path.unlink()
        raise ExportError(f"{fmt} export of {type(network).__name__} differs from PyTorch by {max(diff, batch_diff):.2e} "
                          f"(tolerance {tolerance:.0e}); the file was not kept")
    return ExportResult(path, fmt, seconds, diff, graph.names)
