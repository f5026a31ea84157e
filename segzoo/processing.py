"""How a trained network is fed and how its output becomes a mask: one rule, recorded with the network.

Training writes the rule into the run's ``components.json`` (``"processing"``); evaluation, inference, the
prediction panel, the mask writer, the metrics, the MLflow model and the packed Model Zoo bundle all read it back
and apply it through this module, so a network gives the same mask whichever way it is run.

The rule:

- **Input.** Unsigned integers are divided by their dtype's maximum (uint8 by 255, uint16 by 65535), booleans
  are 0/1, signed integers and floats are min-max scaled per image to [0, 1] (a constant image becomes 0).
  Images of one channel are repeated to the network's ``in_channels``.
- **Window.** A sliding window of the training patch size (``roi_size``), ``overlap`` 0.25, Gaussian blending,
  so any image size works and the network sees what it saw in training.
- **Output.** ``activation`` (sigmoid for one channel, softmax for several, ``none`` when the network already
  returns probabilities, as MUNet's fused map), then ``probability >= threshold`` (one channel) or the arg-max
  over channels. ``output`` names the entry of a network that returns several (MUNet: ``fused``).

This file imports only numpy and torch (and MONAI for the window) and nothing from segzoo: it is shipped as is
with every MLflow model (``code_paths``) and packed bundle (``scripts/processing.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

ACTIVATIONS = ("sigmoid", "softmax", "none")


def scale(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Float32 in [0, 1] by the input rule (module docstring); NaN or infinite pixels are refused, naming ``name``."""
    image = np.asarray(image)
    if image.dtype == bool or np.issubdtype(image.dtype, np.unsignedinteger):
        return (image / (1 if image.dtype == bool else np.iinfo(image.dtype).max)).astype(np.float32)
    image = image.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        raise ValueError(f"{name} has {bad} NaN or infinite pixels; fill them (e.g. numpy.nan_to_num) or mask them out first.")
    lo, hi = float(image.min()), float(image.max())
    return ((image - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def as_stored(pixels: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Pixels MONAI's loader widened back to their stored type: it keeps uint16 as int32 (torch lacks uint16
    arithmetic), which the input rule would scale by range; Pillow's mode (``I;16``) in ``meta`` names the stored type."""
    if str(meta.get("mode", "")).startswith("I;16"):
        return pixels.astype(np.uint16)
    return pixels


def class_map(probabilities: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Class indices ``(..., H, W)`` (int64) of probabilities ``(..., C, H, W)``: ``>= threshold`` for one channel, arg-max for
    several."""
    if probabilities.shape[-3] == 1:
        return (probabilities[..., 0, :, :] >= threshold).long()
    return probabilities.argmax(-3)


@dataclass(frozen=True)
class Processing:
    """The recorded rule of one trained network (see the module docstring); ``record()`` is what ``components.json`` keeps."""

    in_channels: int = 1
    out_channels: int = 1
    roi_size: tuple[int, int] = (128, 128)
    overlap: float = 0.25
    blend: str = "gaussian"
    sw_batch_size: int = 4
    activation: str = "auto"
    threshold: float = 0.5
    output: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "roi_size", tuple(int(s) for s in self.roi_size))
        if self.activation == "auto":
            object.__setattr__(self, "activation", "sigmoid" if self.out_channels == 1 else "softmax")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"processing activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}")

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "roi_size": list(self.roi_size)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Processing:
        """The rule of a ``record()``; keys this version does not know (a newer segzoo's) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    # -- input ---------------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        """``(C, H, W)`` (or ``(H, W)``) pixels of any dtype as the network's float32 ``(in_channels, H, W)`` input."""
        image = np.asarray(image)
        image = image[None] if image.ndim == 2 else image
        if image.ndim != 3:
            raise ValueError(f"{name} has shape {image.shape}; expected (H, W) or (C, H, W)")
        if image.shape[0] != self.in_channels:
            if image.shape[0] != 1:
                raise ValueError(f"{name} has {image.shape[0]} channels but the network takes {self.in_channels}; "
                                 f"pass {self.in_channels}-channel or one-channel images")
            image = np.repeat(image, self.in_channels, 0)
        return scale(image, name)

    # -- window --------------------------------------------------------------------------------------
    def inferer(self, progress_above: int | None = None) -> Callable[..., torch.Tensor]:
        """The sliding window as ``inferer(batch, network)`` (a MONAI engine's inferer): the mask output (``output``
        of a network that returns several, e.g. MUNet's ``fused`` map, not its per-image class logits) over the whole
        image. An image cut into more than ``progress_above`` windows shows a progress bar over its windows (a
        4096x4096 slide is minutes of work that a bar over images would leave silent)."""
        from monai.inferers import SlidingWindowInferer

        settings = {"roi_size": list(self.roi_size), "sw_batch_size": self.sw_batch_size, "overlap": self.overlap,
                    "mode": self.blend}
        quiet, shown = SlidingWindowInferer(**settings), SlidingWindowInferer(**settings, progress=True)

        def infer(batch: torch.Tensor, network: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
            many = progress_above is not None and self.windows(batch.shape[2:]) > progress_above
            return (shown if many else quiet)(batch, lambda patch: self.select(network(patch, *args, **kwargs)))

        return infer

    def windows(self, size: Sequence[int]) -> int:
        """How many windows cover an image of ``size`` (the sliding window's count, per image)."""
        count = 1
        for extent, roi in zip(size, self.roi_size):
            step = max(1, int(roi * (1 - self.overlap)))
            count *= 1 if extent <= roi else math.ceil((extent - roi) / step) + 1
        return count

    # -- output --------------------------------------------------------------------------------------
    def select(self, output: Any) -> torch.Tensor:
        """The mask output of a network's output: the tensor, the ``output`` entry of a dict, or a tuple's first (an export's)."""
        if isinstance(output, dict):
            return output[self.output] if self.output else next(iter(output.values()))
        if isinstance(output, (tuple, list)):
            return output[0]
        return output

    def probabilities(self, output: Any) -> torch.Tensor:
        """Mask probabilities ``(B, C, H, W)`` (or ``(C, H, W)``) of a network's output (a tensor, or the ``output`` entry of a
        dict or tuple)."""
        output = self.select(output).float()
        if self.activation == "sigmoid":
            return torch.sigmoid(output)
        if self.activation == "softmax":
            return torch.softmax(output, -3)
        return output

    def mask(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Class indices ``(..., H, W)`` of probabilities ``(..., C, H, W)`` by the recorded threshold or arg-max."""
        return class_map(torch.as_tensor(probabilities), self.threshold)

    def mask_image(self, output: torch.Tensor) -> torch.Tensor:
        """The ``(1, H, W)`` uint8 mask of one image's network output ``(C, H, W)`` (a MONAI MetaTensor keeps its metadata)."""
        return self.mask(self.probabilities(output)).unsqueeze(0).to(torch.uint8)

    @torch.no_grad()
    def predict(self, network: Callable, images: np.ndarray, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(N, H, W)`` uint8 and probabilities ``(N, C, H, W)`` float32 of ``(N, H, W)`` or ``(N, C, H, W)`` images of any
        dtype."""
        images = np.asarray(images)
        images = images[:, None] if images.ndim == 3 else images
        inferer = self.inferer()
        probabilities = []
        for i, image in enumerate(images):
            batch = torch.from_numpy(self.prepare(image, f"image {i}"))[None].to(device)
            probabilities.append(self.probabilities(inferer(batch, network)).cpu())
        stacked = torch.cat(probabilities)
        return self.mask(stacked).numpy().astype(np.uint8), stacked.numpy().astype(np.float32)
