"""What training through the bundle costs over a plain PyTorch loop doing the same work.

``python benchmarks/training_overhead.py '["unet", "paper", "cpu"]'`` prints one JSON line; ``bench.py`` runs it in a
fresh process per architecture. Both sides read the recipe from the PyConvU-Net bundle's ``train.json``
(synthetic data, split, patch, batch size, loss, metrics, learning rate, validation inferer), so the yardstick
follows the bundle when its defaults change.

The plain loop is what a careful user would write by hand: in-memory tensors, the same augmentation written in
torch (random crop, flips, 90/180 degree rotations), Adam on the same loss, the same sliding-window validation and
metrics, and the network and optimizer saved every epoch (plus the best network). The bundle adds MONAI's
transforms and data loader, Ignite's engines, the handlers and MLflow. Timing order: plain, bundle, plain, so a
machine whose load drifts moves both sides; each side first runs an untimed warm-up epoch.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from gpu_facts import UtilisationSampler
from monai.bundle import ConfigParser, ConfigWorkflow

import segzoo
import segzoo.engine
from segzoo.data import split

TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "bundles" / "pyconvunet" / "configs" / "train.json"
TIMED_EPOCHS = 3


def recipe() -> dict[str, Any]:
    """The bundle's default training recipe, as plain values."""
    parser = ConfigParser()
    parser.read_config(str(TRAIN_CONFIG))
    keys = ["synthetic", "batch_size", "patch_size", "val_fraction", "seed", "learning_rate", "loss", "metrics", "in_channels"]
    values = {key: parser.get_parsed_content(key) for key in keys}
    values["inferer"] = parser.get_parsed_content("validate#inferer")  # MONAI's SlidingWindowInferer, as configured
    return values


def peak_memory_of(fn: Any, device: torch.device) -> tuple[int, int]:
    """(peak bytes while ``fn`` ran, bytes before): on CPU the resident set, whose peak counter Linux resets first
    (``/proc/self/clear_refs``) so what the process did earlier does not mask this peak; on a GPU, allocated memory."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device), before

    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc/self/status")

    Path("/proc/self/clear_refs").write_text("5")
    before = status("VmRSS:")
    fn()
    return status("VmHWM:"), before


class PlainLoop:
    """The bundle's recipe as a bare PyTorch loop (see the module docstring)."""

    def __init__(self, name: str, preset: str | None, r: dict[str, Any], out_dir: Path, device: torch.device) -> None:
        items = segzoo.engine.load_items(None, r["in_channels"], r["synthetic"])
        train, val = (split(items, part, r["val_fraction"], r["seed"]) for part in ("train", "val"))
        self.images = torch.stack([torch.as_tensor(item["image"]) for item in train]).to(device)
        self.labels = torch.stack([torch.as_tensor(item["label"]) for item in train]).to(device)
        self.val = [
            (torch.as_tensor(item["image"])[None].to(device), torch.as_tensor(item["label"])[None].to(device)) for item in val
        ]
        self.net = segzoo.build(
            "architecture", name, preset, in_channels=r["in_channels"], out_channels=1, final_activation="identity"
        )
        self.net.to(device)
        self.device = device
        self.loss = segzoo.build("loss", r["loss"])
        self.metrics = [segzoo.build("metric", metric) for metric in r["metrics"]]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=r["learning_rate"])
        self.batch_size, self.patch, self.inferer = r["batch_size"], r["patch_size"], r["inferer"]
        self.generator = torch.Generator().manual_seed(r["seed"])
        self.out_dir, self.best = out_dir, -1.0

    def _coin(self) -> bool:
        return bool(torch.rand(1, generator=self.generator) < 0.5)

    def augment(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = image.shape[-2:]
        top = int(torch.randint(0, h - self.patch[0] + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, w - self.patch[1] + 1, (1,), generator=self.generator))
        pair = torch.cat([image, label])[:, top : top + self.patch[0], left : left + self.patch[1]]
        for axis in (1, 2):
            if self._coin():
                pair = pair.flip(axis)
        if self._coin():
            pair = pair.rot90(int(torch.randint(1, 3, (1,), generator=self.generator)), (1, 2))
        return pair[: len(image)], pair[len(image) :]

    def step(self, index: torch.Tensor) -> None:
        pairs = [self.augment(self.images[i], self.labels[i]) for i in index]
        images, labels = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(self.net(images), labels).backward()
        self.optimizer.step()

    def batches(self) -> list[torch.Tensor]:
        order = torch.randperm(len(self.images), generator=self.generator)
        return list(order.split(self.batch_size))

    def validate(self) -> float:
        self.net.eval()
        with torch.no_grad():
            for image, label in self.val:
                pred = torch.sigmoid(self.inferer(image, self.net))
                for metric in self.metrics:
                    metric(pred, label)
        self.net.train()
        scores = [float(metric.aggregate()) for metric in self.metrics]
        for metric in self.metrics:
            metric.reset()
        return scores[0]

    def epoch(self, batches: list[torch.Tensor] | None = None) -> None:
        for index in batches if batches is not None else self.batches():
            self.step(index)
        score = self.validate()
        torch.save({"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}, self.out_dir / "plain_last.pt")
        if score > self.best:
            self.best = score
            torch.save(self.net.state_dict(), self.out_dir / "plain_best.pt")

    def timed_epochs(self, epochs: int) -> float:
        start = time.perf_counter()
        for _ in range(epochs):
            self.epoch()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def bundle_epochs(name: str, preset: str | None, epochs: int, tmp: Path, device: torch.device) -> dict[str, float]:
    """``epochs`` timed epochs of the bundle's trainer after a warm-up one, with the time its steps spent waiting for data
    and, on a GPU, its mean utilisation during the timed epochs."""
    from ignite.engine import Events

    os.chdir(tmp)  # the bundle writes ./runs
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    started = time.perf_counter()
    workflow = ConfigWorkflow(
        config_file=str(TRAIN_CONFIG),
        workflow_type="train",
        epochs=epochs + 1,
        arch=name,
        preset=preset,
        device=f"$torch.device('{device}')",
    )
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    (checkpoint,) = [
        h for h in workflow.parser.get_parsed_content("train#handlers") if isinstance(h, segzoo.engine.LastCheckpoint)
    ]
    marks: dict[str, Any] = {"data_wait": 0.0}
    sampler = UtilisationSampler(device)

    def timed(engine: Any) -> bool:
        return engine.state.epoch > 1

    def batch_started(engine: Any) -> None:
        marks["get_batch"] = time.perf_counter()

    def batch_completed(engine: Any) -> None:
        if timed(engine):
            marks["data_wait"] += time.perf_counter() - marks["get_batch"]

    def epoch_completed(engine: Any) -> None:
        if engine.state.epoch == epochs + 1:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            checkpoint.wait()  # the last write is charged to the bundle; earlier ones overlap the next epoch, as in use
            marks["end"] = time.perf_counter()
            marks.update(sampler.stop())

    def epoch_started(engine: Any) -> None:
        marks["start"] = time.perf_counter()
        sampler.start()

    trainer.add_event_handler(Events.EPOCH_STARTED(once=1), lambda _: marks.setdefault("first", time.perf_counter()))
    trainer.add_event_handler(Events.EPOCH_STARTED(once=2), epoch_started)
    trainer.add_event_handler(Events.GET_BATCH_STARTED, batch_started)
    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, batch_completed)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, epoch_completed)  # after the bundle's own handlers
    workflow.run()
    finished = time.perf_counter()
    steps = trainer.state.epoch_length * epochs
    return {
        "bundle_epoch_s": (marks["end"] - marks["start"]) / epochs,
        "data_wait_ms_per_step": 1000 * marks["data_wait"] / steps,
        "bundle_fixed_s": (marks["first"] - started) + (finished - marks["end"]),
        "steps_per_epoch": trainer.state.epoch_length,
        **{key: marks[key] for key in ("gpu_utilisation_percent", "gpu_utilisation_source", "gpu_utilisation_samples")},
    }


def probe(name: str, preset: str | None, device_name: str = "cpu") -> dict[str, Any]:
    r, device = recipe(), torch.device(device_name)
    with tempfile.TemporaryDirectory(prefix="segzoo-bench-") as tmp:
        plain = PlainLoop(name, preset, r, Path(tmp), device)
        first, *rest = plain.batches()
        peak, before = peak_memory_of(lambda: plain.step(first), device)  # the first step: memory probe and warm-up
        plain.epoch(rest)
        before_s = plain.timed_epochs(TIMED_EPOCHS)
        result = bundle_epochs(name, preset, TIMED_EPOCHS, Path(tmp), device)
        after_s = plain.timed_epochs(TIMED_EPOCHS)
    plain_epoch_s = (before_s + after_s) / (2 * TIMED_EPOCHS)
    return {
        "step_peak_memory_mib": peak / 2**20,
        "step_memory_increase_mib": (peak - before) / 2**20,
        "plain_epoch_s": plain_epoch_s,
        **result,
        "bundle_overhead": result["bundle_epoch_s"] / plain_epoch_s,
        "images_per_epoch": len(plain.images),
        "batch_size": r["batch_size"],
        "timed_epochs": TIMED_EPOCHS,
    }


if __name__ == "__main__":
    print(json.dumps(probe(*json.loads(sys.argv[1]))))
