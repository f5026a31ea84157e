"""The trained-network loader: a checkpoint's weights into a network, refused (naming both) when they do not fit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import segzoo
from segzoo.errors import SegzooError
from segzoo.processing import Processing
from segzoo.runfiles.store import checkpoint_weights, read_run_info


def _describe(arch: dict[str, Any]) -> str:
    details = ", ".join(f"{k} {arch[k]}" for k in ("preset", "in_channels", "out_channels") if k in arch)
    return f"{arch.get('name', '?')} ({details})"


def _trained_as(path: str | os.PathLike) -> str:
    """What the run that wrote ``path`` built, from the ``components.json`` beside it."""
    architecture = read_run_info(Path(path).parent).get("architecture")
    return _describe(architecture) if architecture else "another network"


def load_checkpoint(
    network: torch.nn.Module, path: str | os.PathLike, key: str = "model", expected: dict[str, Any] | None = None
) -> torch.nn.Module:
    """Load weights saved by a bundle (``weights_only=True``); a checkpoint of another network is refused, naming both.

    ``expected`` describes the network asked for (``name``, ``preset``, ``in_channels``, ``out_channels``) for the
    message; by default the network's own record of how it was built (``segzoo_built``).
    """
    record = segzoo.built(network)
    expected = expected or (record.describe() if record is not None else None)
    state = checkpoint_weights(path, key)
    own = network.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    if mismatched or missing:
        detail = (f"{mismatched[0]}: checkpoint {tuple(state[mismatched[0]].shape)} vs network {tuple(own[mismatched[0]].shape)}"
                  if mismatched else f"{len(missing)} weights missing, e.g. {missing[0]}")
        raise SegzooError(
            f"checkpoint {path} was trained as {_trained_as(path)} and does not fit the network asked for, "
            f"{_describe(expected) if expected else type(network).__name__}: {detail}. "
            "Pass the --arch/--preset/--out_channels it was trained with, "
            "or another --checkpoint."
        )
    network.load_state_dict(state)
    return network


def run_processing(checkpoint: str | os.PathLike, **fallback: Any) -> Processing:
    """The input and output rule recorded by the training that wrote ``checkpoint`` (its ``components.json``);
    a run from before the rule was recorded gets ``Processing(**fallback)`` (the bundle's own values)."""
    recorded = read_run_info(Path(checkpoint).parent).get("processing")
    return Processing.from_record(recorded) if recorded else Processing(**fallback)


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel/DataParallel wrapper (checkpoints hold the bare weights)."""
    return network.module if hasattr(network, "module") and isinstance(network.module, torch.nn.Module) else network
