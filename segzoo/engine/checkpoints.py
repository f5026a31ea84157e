"""Resumable training: the last good state is always on disk, and a non-finite loss stops cleanly.

``last.pt`` holds the network, the optimizer and the trainer's progress; it is
written atomically at the end of every epoch, so a crash or SIGKILL loses at most
the epoch in progress. ``--resume true`` picks the newest run that has one.

The write (about 0.1 s for a 30 MB network with its Adam state) runs in a
background thread on a snapshot of the state, so the next epoch does not wait
for the disk; training waits for it at the next step, before the next write and
at the end.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.handlers import from_engine

from segzoo.engine.runs import unwrap
from segzoo.engine.store import LAST, latest_run
from segzoo.overrides import as_flag
from segzoo.registry import SegzooError


class NonFiniteLossError(SegzooError, FloatingPointError):
    """The training loss became NaN or infinite."""


def output_dir(runs_dir: str, run_name: str, resume: bool = False) -> str:
    """A new ``runs_dir/run_name``, or with ``resume`` the newest run under ``runs_dir`` that left a ``last.pt``."""
    if as_flag(resume, "resume"):
        interrupted = latest_run(runs_dir, LAST)
        if interrupted is None:
            raise SegzooError(f"--resume true: no interrupted run to resume under {runs_dir}/*/{LAST}; start a new training without --resume")
        return str(interrupted)
    return str(Path(runs_dir) / run_name)


def snapshot(state: Any) -> Any:
    """A CPU copy of every tensor in a (nested) state dict, so training can go on changing the originals."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: snapshot(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(snapshot(v) for v in state)
    return state


class LastCheckpoint:
    """Saves ``last.pt`` every epoch; with ``resume``, loads it into network, optimizer and trainer when attached."""

    def __init__(self, output_dir: str, network: torch.nn.Module, optimizer: torch.optim.Optimizer, resume: bool = False) -> None:
        self.path = Path(output_dir) / LAST
        self.network = network
        self.optimizer = optimizer
        self.resume = as_flag(resume, "resume")
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None

    def attach(self, engine: Engine) -> None:
        if self.resume and self.path.exists():
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            unwrap(self.network).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            engine.load_state_dict(state["trainer"])
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)
        # Attached before StopOnNonFiniteLoss, so a NaN stop finds the previous epoch's file complete.
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda _: self.wait())
        engine.add_event_handler(Events.COMPLETED, lambda _: self.wait())

    def save(self, engine: Engine) -> None:
        if int(os.environ.get("RANK", "0")) != 0:
            return
        self.wait()
        state = snapshot({"model": unwrap(self.network).state_dict(), "optimizer": self.optimizer.state_dict(), "trainer": engine.state_dict()})
        # Not a daemon: an interpreter that exits (even on an exception) finishes the file first.
        self._writer = threading.Thread(target=self._write, args=(state,), name="segzoo-last-checkpoint")
        self._writer.start()

    def _write(self, state: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, self.path)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise its error in the training thread."""
        if self._writer is None:
            return
        self._writer.join()
        self._writer = None
        if self._error is not None:
            error, self._error = self._error, None
            raise SegzooError(
                f"could not write the checkpoint {self.path}: {type(error).__name__}: {error}. Free disk space or make "
                f"{self.path.parent} writable, then continue with --resume true (the previous last.pt is intact)"
            ) from error


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
