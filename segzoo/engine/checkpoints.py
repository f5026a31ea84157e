"""Resumable training: one consistent state on disk after every epoch, and a non-finite loss stops cleanly.

``last.pt`` holds everything a resumed run needs to continue exactly as an uninterrupted one would: the
network, the optimizer, the trainer's progress, the validator's best score and the state of its handlers
(the best-model saver, early stopping). It is written atomically at the end of every epoch, so a crash or
SIGKILL loses at most the epoch in progress; ``history.json`` and MLflow are brought back in line with it
on resume (see :class:`segzoo.engine.MLflowTracker`). Every epoch's random draws (shuffling, augmentation)
are seeded from ``seed`` and the epoch number, so a resumed epoch is the epoch an uninterrupted run trains.

A resume names its run (:mod:`segzoo.runfiles.store`); ``epochs`` and ``learning_rate`` may change on resume
and are applied (and said), any other changed setting is refused.

The write (about 0.1 s for a 30 MB network with its Adam state) runs in a
background thread on a snapshot of the state, so the next epoch does not wait
for the disk; training waits for it at the next step, before the next write and
at the end.
"""

from __future__ import annotations

import json
import math
import random
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import from_engine

from segzoo.bundle.context import current_bundle_config
from segzoo.engine.faults import fault_point
from segzoo.errors import SegzooError, advise_on_stop
from segzoo.files import atomic_open
from segzoo.runfiles.network import unwrap
from segzoo.runfiles.store import (
    FINISHED,
    LAST,
    is_main_process,
    logging_interrupted,
    mark_finished,
    read_checkpoint,
    read_settings,
    resume_requested,
    write_settings,
)

# How a run is executed, not what it trains: free to change on resume. epochs and learning_rate are applied.
RUNTIME_KEYS = frozenset(
    {
        "resume",
        "run_name",
        "runs_dir",
        "output_dir",
        "tracking_uri",
        "parent_run_id",
        "device",
        "num_workers",
        "amp",
        "amp_dtype",
        "channels_last",
        "compile",
        "deterministic",
        "epochs",
        "learning_rate",
        "_meta_",
    }
)


class NonFiniteLossError(SegzooError, FloatingPointError):
    """The training loss became NaN or infinite."""


class ResumeWarning(UserWarning):
    """What a resume continues from and which changed settings it applied."""


def snapshot(state: Any) -> Any:
    """A CPU copy of every tensor in a (nested) state dict, so training can go on changing the originals."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: snapshot(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(snapshot(v) for v in state)
    return state


def stateful(handler: Any) -> Any:
    """The object holding ``handler``'s resumable state (MONAI wraps Ignite's ``Checkpoint``/``EarlyStopping``), or None."""
    for inner in ("_key_metric_checkpoint", "_handler"):
        if getattr(handler, inner, None) is not None:
            handler = getattr(handler, inner)
    return handler if hasattr(handler, "state_dict") and hasattr(handler, "load_state_dict") else None


def seed_epoch(engine: Engine, seed: int) -> None:
    """Seed every random draw of one epoch from ``seed`` and the epoch: global RNGs, the loader's shuffling and the
    dataset's random transforms. Epoch N then draws the same numbers whether or not the run was resumed before it."""
    epoch_seed = (seed * 100_003 + engine.state.epoch) % 2**32
    torch.manual_seed(epoch_seed)
    np.random.seed(epoch_seed)
    random.seed(epoch_seed)
    loader = getattr(engine, "data_loader", None)
    for source in (loader, getattr(loader, "sampler", None)):
        if isinstance(getattr(source, "generator", None), torch.Generator):
            source.generator.manual_seed(epoch_seed)
    transform = getattr(getattr(loader, "dataset", None), "transform", None)
    if hasattr(transform, "set_random_state"):
        transform.set_random_state(seed=epoch_seed)


def run_settings(config: dict[str, Any] | None) -> dict[str, str]:
    """What a run trains: its config's top-level values except :data:`RUNTIME_KEYS`, as JSON text to compare."""
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in (config or {}).items() if k not in RUNTIME_KEYS}


class LastCheckpoint:
    """Saves ``last.pt`` every epoch; with ``resume``, restores it into network, optimizer, trainer and validator when attached.

    Args:
        seed: seed every epoch's random draws from it (see :func:`seed_epoch`); None leaves them alone.
        evaluator: the validator, whose best score is saved and restored.
        keep: validation handlers whose state is saved and restored (the best-model saver, early stopping).
    """

    def __init__(
        self,
        output_dir: str,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        resume: bool | str | None = None,
        seed: int | None = None,
        evaluator: Engine | None = None,
        keep: Sequence[Any] = (),
    ) -> None:
        self.path = Path(output_dir) / LAST
        self.network = network
        self.optimizer = optimizer
        self.resume = resume_requested(resume)
        self.seed = seed
        self.evaluator = evaluator
        self.keep = list(keep or [])
        self._restored_keep: list[Any] | None = None
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None

    def attach(self, engine: Engine) -> None:
        advise_on_stop(self.how_to_continue)
        if self.resume and self.path.exists():
            self._restore(engine)
        elif is_main_process():
            write_settings(self.path.parent, run_settings(current_bundle_config()))
        engine.add_event_handler(Events.STARTED, self._started)
        if self.seed is not None:
            engine.add_event_handler(Events.EPOCH_STARTED, seed_epoch, int(self.seed))
        # Attached before StopOnNonFiniteLoss, so a NaN stop finds the previous epoch's file complete.
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self.finish)

    def _restore(self, engine: Engine) -> None:
        run = self.path.parent
        self._check_settings(run, current_bundle_config())
        epochs, rates = engine.state.max_epochs, [group["lr"] for group in self.optimizer.param_groups]
        state = read_checkpoint(self.path)
        unwrap(self.network).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        engine.load_state_dict(state["trainer"])
        done, changes = engine.state.epoch, []
        if epochs is not None and epochs != engine.state.max_epochs:
            if epochs <= done:
                raise SegzooError(f"--resume: {run} has trained {done} epochs already; pass --epochs above {done} to train on")
            changes.append(f"epochs {engine.state.max_epochs} -> {epochs}")
            engine.state.max_epochs = epochs
        for group, rate in zip(self.optimizer.param_groups, rates):
            if group["lr"] != rate:
                changes.append(f"learning_rate {group['lr']} -> {rate}")
                group["lr"] = rate
        if self.evaluator is not None and state.get("evaluator") is not None:
            self.evaluator.state.best_metric, self.evaluator.state.best_metric_epoch = state["evaluator"]
        self._restored_keep = state.get("keep", [])
        applied = f"; applied: {', '.join(dict.fromkeys(changes))}" if changes else ""
        warnings.warn(f"resuming {run} after epoch {done} of {engine.state.max_epochs}{applied}", ResumeWarning, stacklevel=2)

    def how_to_continue(self) -> str:
        """What to do after a stop, as the run folder is now: resume from its ``last.pt``, or start again without one."""
        run = self.path.parent
        if logging_interrupted(run):
            return (f"continue with --resume {run}: its training had finished, "
                    "the resume logs what its end was stopped before logging")
        if (run / FINISHED).exists():
            return f"the training in {run} had finished; its model is there"
        if self.path.is_file():
            return f"continue with --resume {run} (its last.pt holds every epoch completed)"
        return f"no epoch was completed in {run}, so there is nothing to resume: start the training again"

    def _check_settings(self, run: Path, config: dict[str, Any] | None) -> None:
        """Refuse a resume whose config trains something else than the run did (another network, data, loss...)."""
        saved = read_settings(run)
        if config is None or saved is None:
            return
        now = run_settings(config)
        changed = [
            f"{k}: {saved.get(k, '(unset)')} -> {now.get(k, '(unset)')}"
            for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)
        ]
        if changed:
            raise SegzooError(
                f"--resume {run}: the run was trained with other settings ({'; '.join(changed)}). Only epochs and learning_rate "
                "may change on resume: resume with the run's settings, or start a new training without --resume"
            )

    def _started(self, engine: Engine) -> None:
        """Restore the validation handlers (they are ready only now), and save each epoch after every other handler has
        recorded it (history, MLflow), so an epoch is either wholly in ``last.pt`` and the records, or trained again."""
        for handler, state in zip(self.keep, self._restored_keep or []):
            if state is not None and stateful(handler) is not None:
                stateful(handler).load_state_dict(state)
        self._restored_keep = None
        if not engine.has_event_handler(self.save, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def _iteration_completed(self, engine: Engine) -> None:
        self.wait()
        fault_point("iteration", engine.state.iteration)

    def save(self, engine: Engine) -> None:
        if not is_main_process():
            return
        self.wait()
        evaluator = self.evaluator.state if self.evaluator is not None else None
        state = snapshot({
            "model": unwrap(self.network).state_dict(), "optimizer": self.optimizer.state_dict(), "trainer": engine.state_dict(),
            "evaluator": (evaluator.best_metric, evaluator.best_metric_epoch) if evaluator is not None else None,
            "keep": [stateful(h).state_dict() if stateful(h) is not None else None for h in self.keep],
        })
        # Not a daemon: an interpreter that exits (even on an exception) finishes the file first.
        self._writer = threading.Thread(target=self._write, args=(state, engine.state.epoch), name="segzoo-last-checkpoint")
        self._writer.start()

    def _write(self, state: dict[str, Any], epoch: int) -> None:
        try:
            with atomic_open(self.path, "wb") as handle:
                torch.save(state, handle)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the training thread by wait()
            self._error = exc
            return
        fault_point("after_checkpoint", epoch)

    def finish(self, engine: Engine) -> None:
        """The training ended (all epochs, or an early stop): the run is finished and is never resumed."""
        self.wait()
        if is_main_process():
            mark_finished(self.path.parent, engine.state.epoch)

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise its error in the training thread."""
        if self._writer is None:
            return
        self._writer.join()
        self._writer = None
        if self._error is not None:
            error, self._error = self._error, None
            then = (
                f"then continue with --resume {self.path.parent} (its last.pt, of an earlier epoch, is intact)"
                if self.path.is_file()
                else "then start the training again (no epoch was saved, so there is nothing to resume)"
            )
            raise SegzooError(
                f"could not write the checkpoint {self.path}: {type(error).__name__}: {error}. Free disk space or make "
                f"{self.path.parent} writable, {then}"
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
                f"(global {engine.state.iteration}). {self._advice(engine)}"
            )

    def _advice(self, engine: Engine) -> str:
        fixes = "Lower the learning rate, check the data for NaNs, or disable amp"
        if engine.state.epoch <= 1 or not (Path(self.output_dir) / LAST).exists():
            return f"No epoch completed, so there is nothing to resume: {fixes}, then start a new training (without --resume)."
        return (f"The last good checkpoint is {Path(self.output_dir) / LAST} (epoch {engine.state.epoch - 1}). {fixes}; "
                f"continue this run with --resume {self.output_dir}")
