"""Predictions outside an engine: the prediction panel logged with a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from segzoo.complexity import model_placement
from segzoo.figures import prediction_panel
from segzoo.processing import Processing


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid for one output channel, softmax over channels otherwise (the recorded output rule's default activation)."""
    return Processing(out_channels=logits.shape[1]).probabilities(logits)


@torch.no_grad()
def predict(network: torch.nn.Module, image: Any, inferer: Callable, device: torch.device | str | None = None,
            to_probabilities: Callable[[Any], torch.Tensor] = probabilities) -> torch.Tensor:
    """Probabilities ``(C, H, W)`` on the CPU for one image ``(C, H, W)``, computed on ``device`` (default: where the
    network's weights are); the network is left in the mode it was in.

    ``to_probabilities`` maps the inferer's output to mask probabilities (default: sigmoid/softmax of logits).
    """
    was_training = network.training
    network.eval()
    try:
        batch = torch.as_tensor(image, dtype=torch.float32)[None].to(device or model_placement(network)["device"])
        output = inferer(batch, network)
        return to_probabilities(output.float() if torch.is_tensor(output) else output).float()[0].cpu()
    finally:
        network.train(was_training)


def panel(models: dict[str, torch.nn.Module], items: Sequence[dict[str, Any]], inferer: Callable,
          device: torch.device | str | None = None, to_probabilities: Callable[[Any], torch.Tensor] = probabilities,
          processing: Processing | None = None):
    """A figure with one row per item: image, label, then each model's mask by the recorded output rule."""
    processing = processing or Processing()
    rows = []
    for item in items:
        row = {"name": item.get("name", ""), "image": item["image"], "label": item["label"]}
        for title, network in models.items():
            prob = predict(network, item["image"], inferer, device, to_probabilities)
            row[title] = processing.mask(prob)[None].float()
        rows.append(row)
    return prediction_panel(rows, ["image", "label", *models])
