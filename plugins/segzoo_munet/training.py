"""What MUNet's bundle needs beyond a segmentation bundle: multi-task batches, multi-scale training and
inference, a combined early-stopping score, hard-example mining and the eq. (7) ensemble.

MONAI's engines call ``loss_function(pred, label)`` with whatever ``prepare_batch`` returns as the label, so
:class:`MultiTaskBatch` returns the targets the ``munet`` loss takes (``{"mask", "label"}``) and the network's
dict output passes through untouched; :func:`split_outputs` then gives the metrics flat ``pred`` / ``cls_pred`` keys.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from monai.inferers import Inferer
from monai.utils import CommonKeys as Keys
from torch import nn
from torch.utils.data import WeightedRandomSampler

import segzoo


def resize(x: torch.Tensor, size: Sequence[int], mode: str = "bilinear") -> torch.Tensor:
    """``(B, C, H, W)`` resized to ``size``; ``nearest`` keeps masks binary."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


class MultiTaskBatch:
    """``prepare_batch`` of both engines: image, and targets ``{"mask", "label"}`` (the image's class) for the ``munet`` loss.

    With ``sizes``, every batch is resized to ``(H, W)`` drawn independently from ``sizes`` (the paper's
    256x384, 512x640, ... multi-scale training); all must be multiples of 32 for MUNet.
    """

    def __init__(self, sizes: Sequence[int] | None = None, seed: int = 0) -> None:
        self.sizes = list(sizes) if sizes else None
        self.rng = random.Random(seed)

    def __call__(
        self, batchdata: Mapping[str, Any], device: torch.device | str | None = None, non_blocking: bool = False, **kwargs: Any
    ):
        image = torch.as_tensor(batchdata[Keys.IMAGE]).float()
        mask = torch.as_tensor(batchdata[Keys.LABEL]).float()
        if self.sizes:
            size = (self.rng.choice(self.sizes), self.rng.choice(self.sizes))
            image, mask = resize(image, size), resize(mask, size, "nearest")
        targets = {"mask": mask.to(device, non_blocking=non_blocking), "label": torch.as_tensor(batchdata["class"]).to(device)}
        return image.to(device, non_blocking=non_blocking), targets


def class_probabilities(output: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Class probabilities of a MUNet output (softmax of ``logits``) or of an :class:`Ensemble` (``probabilities``)."""
    return output["probabilities"] if "probabilities" in output else output["logits"].softmax(1)


class MultiScaleInferer(Inferer):
    """Sec. IV-F multi-scale inference: the image resized to every ``scales`` x ``scales``, predictions averaged.

    Returns ``{"fused": (B, C, H, W) at the input's size, "probabilities": (B, classes)}``; any input size works.
    """

    def __init__(self, scales: Sequence[int]) -> None:
        super().__init__()
        self.scales = list(scales)

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        fused, probabilities = [], []
        for scale in self.scales:
            output = network(resize(inputs, (scale, scale)), *args, **kwargs)
            fused.append(resize(output["fused"], inputs.shape[2:]))
            probabilities.append(class_probabilities(output))
        return {"fused": torch.stack(fused).mean(0), "probabilities": torch.stack(probabilities).mean(0)}


def split_outputs(item: dict[str, Any]) -> dict[str, Any]:
    """Postprocessing of one decollated item: ``pred`` = fused mask, ``cls_pred`` = class probabilities,
    ``label`` = mask and ``cls`` = class, the keys the metric handlers select with ``from_engine``."""
    pred, label = item[Keys.PRED], item.get(Keys.LABEL)
    flat = {**item, Keys.PRED: pred["fused"], "cls_pred": pred["probabilities"]}
    if isinstance(label, Mapping):
        flat.update({Keys.LABEL: label["mask"], "cls": label["label"]})
    return flat


class CombinedScore:
    """Adds ``name`` = mean of the validation ``metrics`` (Dice and AUC) to the evaluator's metrics each epoch.

    The paper monitors both for early stopping; one number lets EarlyStopHandler and CheckpointSaver use them.
    A NaN metric (AUC of a validation set with a single class) counts 0 rather than poisoning the score.
    Attach it before the handlers that read it.
    """

    def __init__(self, metrics: Sequence[str], name: str = "val_score") -> None:
        self.metrics = list(metrics)
        self.name = name

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        values = [float(engine.state.metrics[m]) for m in self.metrics]
        engine.state.metrics[self.name] = sum(v for v in values if math.isfinite(v)) / len(values)

    def score(self, engine: Engine) -> float:
        """The score of the last validation (EarlyStopHandler's ``score_function``)."""
        return float(engine.state.metrics[self.name])


class HardExampleMining:
    """Table II's hard-example mining: training images whose true class got a low confidence are drawn more.

    During each epoch it records the softmax probability of every training image's true class (its
    ``index`` in the batch); at the epoch's end the sampler's weights become the class-balancing weights
    times ``factor`` for images below ``threshold``, so the next epoch oversamples them.
    """

    def __init__(self, sampler: WeightedRandomSampler, threshold: float = 0.5, factor: float = 2.0) -> None:
        self.sampler = sampler
        self.base_weights = sampler.weights.clone()
        self.threshold = threshold
        self.factor = factor
        self.confidence: dict[int, float] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.record)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.reweight)

    def record(self, engine: Engine) -> None:
        """Confidence of every image of the (decollated) batch: its true class's softmax probability."""
        for item, output in zip(engine.state.batch, engine.state.output):
            probabilities = output[Keys.PRED]["logits"].detach().softmax(0)
            self.confidence[int(item["index"])] = float(probabilities[int(output[Keys.LABEL]["label"])])

    def hard(self) -> torch.Tensor:
        """Boolean mask over the training images: confidence below ``threshold`` at their last draw."""
        hard = torch.zeros(len(self.base_weights), dtype=torch.bool)
        for index, value in self.confidence.items():
            hard[index] = value < self.threshold
        return hard

    def reweight(self, engine: Engine) -> None:
        self.sampler.weights = self.base_weights * torch.where(self.hard(), self.factor, 1.0).double()


class Ensemble(nn.Module):
    """Eq. (7) over k trained MUNets: ``{"probabilities", "fused"}`` = the lambda-weighted sum of their outputs."""

    def __init__(self, networks: Sequence[nn.Module], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.combine = segzoo.build("fusion", "ensemble", weights=list(weights) if weights else None)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.combine([network(x) for network in self.networks])


class ClassWriter:
    """``classes.csv``: every image's predicted class and class probabilities, and its true class when known (evaluate)."""

    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / "classes.csv"
        self.rows: list[list[Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        for item, out in zip(engine.state.batch, engine.state.output):
            probabilities = torch.as_tensor(out["cls_pred"]).float().cpu()
            true_class = int(out["cls"]) if "cls" in out else ""
            self.rows.append(
                [item["name"], true_class, int(probabilities.argmax()), *(f"{p:.6f}" for p in probabilities.tolist())]
            )

    def write(self, engine: Engine) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        classes = len(self.rows[0]) - 3 if self.rows else 0
        with open(self.path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "true_class", "predicted_class", *(f"p{c}" for c in range(classes))])
            writer.writerows(self.rows)
