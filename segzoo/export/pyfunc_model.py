"""MLflow model code ("models from code"): a TorchScript segmentation network used by its recorded rule.

MLflow copies this file into every logged model and runs it when the model is loaded; the rule's module
(:mod:`segzoo.processing`) travels beside it as ``code/processing.py`` and the rule itself as the model config.
So a logged model needs only mlflow, torch, numpy and MONAI (the sliding window): not segzoo, and not the plugin
that defined the network (the TorchScript file holds the graph and weights). It imports nothing from segzoo.

``predict(images)`` takes ``(N, H, W)`` or ``(N, C, H, W)`` images of any size, uint8/uint16/int16/float, scaled by
the recorded input rule, and returns ``(N, H, W)`` uint8 masks (0/1 for one output channel, class indices for
several). Parameters: ``probabilities=True`` returns the ``(N, C, H, W)`` float32 probabilities instead; ``dtype``
names the pixel type of images that arrive without one (JSON sent to ``mlflow models serve``: ``"uint8"``).
"""

from __future__ import annotations

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel

try:
    from processing import Processing  # shipped with the model (code_paths)
except ImportError:  # while segzoo writes the model: the same file, from the installed package
    from segzoo.processing import Processing


class TorchScriptSegmenter(PythonModel):
    """The TorchScript network behind the recorded input rule, sliding window and mask rule."""

    def load_context(self, context):  # context: MLflow's PythonModelContext
        self.network = torch.jit.load(context.artifacts["torchscript"], map_location="cpu").eval()
        self.processing = Processing.from_record(context.model_config or {})

    # np.ndarray: a hint MLflow infers no schema from (the signature says what is taken), and its warning stays away
    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        params = params or {}
        images = np.asarray(model_input)
        if images.dtype == object or params.get("dtype"):
            images = np.asarray(images.tolist(), dtype=params.get("dtype") or np.float64)
        if images.ndim not in (3, 4) or 0 in images.shape:
            raise ValueError(f"predict() takes a non-empty batch of images (N, C, H, W) or (N, H, W); got shape {images.shape}")
        if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
            bad = np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(1))
            raise ValueError(f"image(s) {bad.tolist()} of the batch hold NaN or infinite pixels, which would give a meaningless "
                             "mask; fill them first (e.g. numpy.nan_to_num)")
        masks, probabilities = self.processing.predict(self.network, images)
        return probabilities if params.get("probabilities") else masks


mlflow.models.set_model(TorchScriptSegmenter())
