"""Small Ignite handlers the bundles attach: a progress bar, the train hook driver and the output writers of
evaluate/inference."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar as IgniteProgressBar
from monai.handlers import from_engine

from segzoo.data.writers import output_suffix, write_like
from segzoo.files import atomic_open
from segzoo.overrides import as_flag
from segzoo.processing import Processing
from segzoo.runfiles.network import unwrap
from segzoo.runfiles.store import is_main_process


class ProgressBar:
    """A tqdm bar per epoch (``Epoch [3/50]``) showing the running loss when the engine has one."""

    def __init__(self, show_loss: bool = True) -> None:
        self.show_loss = show_loss

    def attach(self, engine: Engine) -> None:
        if not is_main_process():
            return  # one bar per run, rank 0's
        transform = from_engine(["loss"], first=True) if self.show_loss else None
        IgniteProgressBar(persist=True).attach(
            engine, output_transform=(lambda out: {"loss": float(transform(out))}) if transform else None
        )


class MetricsCSVWriter:
    """After evaluation, ``per_image.csv`` (one row per image, one column per metric) and ``summary.csv`` (means)."""

    def __init__(self, output_dir: str, metric_names: list[str]) -> None:
        self.output_dir = Path(output_dir)
        self.metric_names = metric_names
        self.names: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: self.names.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def _collect(self, engine: Engine) -> None:
        self.names.extend(item["name"] for item in engine.state.batch)

    def write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        details = {m: torch.as_tensor(engine.state.metric_details[m]).flatten().tolist() for m in self.metric_names}
        with atomic_open(self.output_dir / "per_image.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", *self.metric_names])
            for i, name in enumerate(self.names):
                writer.writerow([name, *(f"{details[m][i]:.6f}" for m in self.metric_names)])
        with atomic_open(self.output_dir / "summary.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["metric", "mean", "images"])
            for m in self.metric_names:
                writer.writerow([m, f"{float(engine.state.metrics[m]):.6f}", len(self.names)])


class MaskWriter:
    """Writes one mask per image in the image's format and geometry (:mod:`segzoo.data.writers`), and optionally its
    probability map (``<name>_probabilities``, float32), by the run's recorded output rule (:mod:`segzoo.processing`). Masks hold
    0/255 (PNG, TIFF) or 0/1 (ITK formats) for a binary network, class indices for several classes."""

    def __init__(self, output_dir: str, save_probabilities: bool | str = False, processing: Processing | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.save_probabilities = as_flag(save_probabilities, "save_probabilities")
        self.processing = processing or Processing()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        outputs: list[dict[str, Any]] = engine.state.output
        for item, out in zip(engine.state.batch, outputs):
            source = item.get("path")
            pred = torch.as_tensor(out["pred"]).float().cpu()
            mask = self.processing.mask(pred).numpy().astype(np.uint8)
            if pred.shape[0] == 1 and output_suffix(source) in (".png", ".tif", ".tiff"):
                mask *= 255  # viewable
            write_like(mask, self.output_dir / item["name"], source)
            if self.save_probabilities:
                write_like(pred.numpy(), self.output_dir / f"{item['name']}_probabilities", source)


@runtime_checkable
class TrainHook(Protocol):
    """The contract of a ``train_hook`` component (FREM is one): it changes training only, never evaluation.

    Every bundle's trainer honours it through :class:`TrainHookHandler`, so a hook works on any bundle and any
    architecture (it names the layer it acts on, e.g. ``layer="encoder.4"``).
    """

    def attach(self, model: torch.nn.Module) -> Any:
        """Install on ``model`` (e.g. a forward hook on a named layer that is inert when the layer is in eval mode)."""

    def attach_to_engine(self, engine: Engine) -> Any:
        """Follow the trainer's events (e.g. draw new choices at every epoch start)."""

    def detach(self) -> None:
        """Leave the model exactly as it was before :meth:`attach`."""


class TrainHookHandler:
    """Drives a :class:`TrainHook` from the trainer: attached to the network with the trainer, detached when training ends.

    ``hook`` None (no ``--train_hook``) attaches nothing, so every bundle can list this handler unconditionally.
    """

    def __init__(self, hook: TrainHook | None, network: torch.nn.Module) -> None:
        if hook is not None and not isinstance(hook, TrainHook):
            missing = [m for m in ("attach", "attach_to_engine", "detach") if not callable(getattr(hook, m, None))]
            raise TypeError(f"train hook {type(hook).__name__} lacks {', '.join(missing)} of segzoo.engine.TrainHook")
        self.hook = hook
        self.network = network

    def attach(self, engine: Engine) -> None:
        if self.hook is None:
            return
        self.hook.attach(unwrap(self.network))
        self.hook.attach_to_engine(engine)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.hook.detach())
