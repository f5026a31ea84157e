"""Resumable training: the last good state is always on disk, and a non-finite loss stops cleanly.

``last.pt`` holds the network, the optimizer and the trainer's progress; it is
written atomically at the end of every epoch, so a crash or SIGKILL loses at most
the epoch in progress. ``--resume true`` picks the newest run that has one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.handlers import from_engine

from segzoo.engine.runs import as_flag, unwrap
from segzoo.registry import SegzooError

LAST = "last.pt"


class NonFiniteLossError(SegzooError, FloatingPointError):
    """The training loss became NaN or infinite."""


def output_dir(runs_dir: str, run_name: str, resume: bool = False) -> str:
    """A new ``runs_dir/run_name``, or with ``resume`` the newest run under ``runs_dir`` that left a ``last.pt``."""
    if as_flag(resume, "resume"):
        found = sorted(Path(runs_dir).glob(f"*/{LAST}"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise SegzooError(f"--resume true: no interrupted run to resume under {runs_dir}/*/{LAST}; start a new training without --resume")
        return str(found[-1].parent)
    return str(Path(runs_dir) / run_name)


class LastCheckpoint:
    """Saves ``last.pt`` every epoch; with ``resume``, loads it into network, optimizer and trainer when attached."""

    def __init__(self, output_dir: str, network: torch.nn.Module, optimizer: torch.optim.Optimizer, resume: bool = False) -> None:
        self.path = Path(output_dir) / LAST
        self.network = network
        self.optimizer = optimizer
        self.resume = as_flag(resume, "resume")

    def attach(self, engine: Engine) -> None:
        if self.resume and self.path.exists():
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            unwrap(self.network).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            engine.load_state_dict(state["trainer"])
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def save(self, engine: Engine) -> None:
        if int(os.environ.get("RANK", "0")) != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        state = {"model": unwrap(self.network).state_dict(), "optimizer": self.optimizer.state_dict(), "trainer": engine.state_dict()}
        torch.save(state, tmp)
        os.replace(tmp, self.path)


class StopOnNonFiniteLoss:
    """Stops training at the first NaN/inf loss, naming epoch and iteration; the last good ``last.pt`` is untouched."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        loss = float(from_engine(["loss"], first=True)(engine.state.output))
        if not math.isfinite(loss):
            epoch_iteration = (engine.state.iteration - 1) % engine.state.epoch_length + 1
            raise NonFiniteLossError(
                f"training loss became {loss} at epoch {engine.state.epoch}, iteration {epoch_iteration} "
                f"(global {engine.state.iteration}). The last good checkpoint is {Path(self.output_dir) / LAST}. "
                "Lower the learning rate, check the data for NaNs, or disable amp; resume with --resume true."
            )
