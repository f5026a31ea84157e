"""MLflow model code ("models from code"): a TorchScript segmentation network with the bundles' pre/post-processing.

MLflow copies this file into every logged model and runs it when the model is loaded, so a logged model needs
only mlflow, torch and numpy: not segzoo, and not the plugin that defined the network (the TorchScript file
holds the graph and weights). It imports nothing from segzoo on purpose.

``predict(images)`` takes ``(N, C, H, W)`` or ``(N, H, W)`` images of any size and value range and returns
``(N, H, W)`` uint8 masks (0/1 for one output channel, class indices for several); ``params={"probabilities":
True}`` returns the ``(N, C, H, W)`` float32 probabilities instead.
"""

from __future__ import annotations

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from mlflow.pyfunc import PythonModel


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """Each image scaled by its own min and max to [0, 1] (what the bundles feed a network; integer images by dtype max)."""
    if np.issubdtype(image.dtype, np.integer):
        return (image / np.iinfo(image.dtype).max).astype(np.float32)
    lo, hi = float(image.min()), float(image.max())
    return ((image - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


class TorchScriptSegmenter(PythonModel):
    """Whole-image inference: each image padded to a multiple of ``size_multiple`` (the network's total stride), then cropped back."""

    def load_context(self, context):  # noqa: ANN001 - MLflow reads type hints as a schema
        self.network = torch.jit.load(context.artifacts["torchscript"], map_location="cpu").eval()
        config = context.model_config or {}
        self.size_multiple = int(config.get("size_multiple", 32))
        self.threshold = float(config.get("threshold", 0.5))

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(to_unit_range(image))[None]
        h, w = x.shape[-2:]
        m = self.size_multiple
        x = F.pad(x, (0, -w % m, 0, -h % m))
        with torch.no_grad():
            out = self.network(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out[0, :, :h, :w].numpy()

    def predict(self, context, model_input, params=None):  # noqa: ANN001 - MLflow reads type hints as a schema
        images = np.asarray(model_input)
        images = images[:, None] if images.ndim == 3 else images
        probabilities = np.stack([self.probabilities(image) for image in images])
        if (params or {}).get("probabilities"):
            return probabilities.astype(np.float32)
        if probabilities.shape[1] == 1:
            return (probabilities[:, 0] >= self.threshold).astype(np.uint8)
        return probabilities.argmax(1).astype(np.uint8)


mlflow.models.set_model(TorchScriptSegmenter())
