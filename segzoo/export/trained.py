"""Rebuild a trained network from its run folder or checkpoint file, with the architecture and parameters it was trained with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import segzoo
from segzoo.errors import SegzooError
from segzoo.processing import Processing
from segzoo.runfiles.network import load_checkpoint, run_processing
from segzoo.runfiles.store import BEST, LAST, RUN_INFO_FILE, read_run_info

CHECKPOINTS = (BEST, LAST)  # the best checkpoint (CheckpointSaver), else the last epoch's (LastCheckpoint)


@dataclass
class TrainedModel:
    """A trained network and what it is: architecture name, preset, parameters, the checkpoint it came from, and
    the input and output rule it is used with (:mod:`segzoo.processing`)."""

    network: nn.Module
    arch: str
    preset: str | None
    params: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path = Path()
    processing: Processing = field(default_factory=Processing)

    @property
    def in_channels(self) -> int:
        return int(self.params.get("in_channels", 3))

    @property
    def out_channels(self) -> int:
        return int(self.params.get("out_channels", 1))


def find_checkpoint(run_or_checkpoint: str | Path) -> Path:
    """``model.pt`` (else ``last.pt``) of a run folder, or the checkpoint file given."""
    path = Path(run_or_checkpoint)
    if path.is_file():
        return path
    for name in CHECKPOINTS:
        if (path / name).is_file():
            return path / name
    raise SegzooError(f"{path} is neither a checkpoint file nor a run folder holding {' or '.join(CHECKPOINTS)}; "
                      "pass runs/<bundle>/<run>/ or a .pt file")


def architecture_of(checkpoint: Path) -> dict[str, Any]:
    """The ``architecture`` entry (name, preset, parameters) of the ``components.json`` a training wrote beside ``checkpoint``."""
    info = checkpoint.parent / RUN_INFO_FILE
    if not info.is_file():
        raise SegzooError(f"{info} is missing, so which network {checkpoint} holds is unknown; export from a run folder "
                          "written by a segzoo bundle, or pass --arch NAME (and --preset/--params) yourself")
    recorded = dict(read_run_info(checkpoint.parent)["architecture"])
    for provenance in ("plugin", "plugin_version"):  # who built it, not how: not a parameter
        recorded.pop(provenance, None)
    return recorded


def load_trained(run_or_checkpoint: str | Path, arch: str | None = None, preset: str | None = None,
                 params: dict[str, Any] | None = None, final_activation: str = "auto") -> TrainedModel:
    """The network of a run (or checkpoint) with its weights, in eval mode.

    The architecture, preset and parameters come from the run's ``components.json``; ``arch``/``preset``/``params``
    override them. ``final_activation="auto"`` makes the network output probabilities (sigmoid for one channel,
    softmax for several), which is what an exported model hands its user; the bundles train on logits.
    """
    checkpoint = find_checkpoint(run_or_checkpoint)
    recorded = architecture_of(checkpoint) if arch is None else {"name": arch}
    name = recorded.pop("name")
    trained_preset = recorded.pop("preset", None)
    preset = preset if preset is not None else trained_preset
    merged = {**recorded, **(params or {})}
    spec = segzoo.get("architecture", name)
    if "final_activation" in spec.params.model_fields:
        merged["final_activation"] = final_activation
    network = spec.build(preset, **merged)
    load_checkpoint(network, checkpoint, expected={"name": name, "preset": preset, **merged})
    resolved = spec.validate(preset, **merged).model_dump()
    processing = run_processing(
        checkpoint, in_channels=resolved.get("in_channels", 3), out_channels=resolved.get("out_channels", 1)
    )
    return TrainedModel(network.eval(), name, preset, resolved, checkpoint, processing)


def sample_input(model: TrainedModel, size: int = 256, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A seeded random ``(batch, C, size, size)`` image in [0, 1], the range the bundles feed their networks."""
    return torch.rand(batch, model.in_channels, size, size, generator=torch.Generator().manual_seed(seed))
