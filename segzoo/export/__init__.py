"""Trained networks as files other tools run: TorchScript, ONNX, an MLflow model, a MONAI Model Zoo bundle.

Every export is checked against the PyTorch network when it is written (:mod:`segzoo.export.formats`);
what a network's exported graph holds is :mod:`segzoo.export.graph`'s contract. See docs/exporting.md.
"""

from segzoo.export.formats import FORMATS, ONNX_OPSET, TOLERANCE, ExportResult, export_network
from segzoo.export.graph import ExportError, InferenceGraph, output_names
from segzoo.export.trained import TrainedModel, load_trained, sample_input

__all__ = [
    "FORMATS",
    "ONNX_OPSET",
    "TOLERANCE",
    "ExportError",
    "ExportResult",
    "InferenceGraph",
    "TrainedModel",
    "export_network",
    "load_trained",
    "output_names",
    "sample_input",
]
