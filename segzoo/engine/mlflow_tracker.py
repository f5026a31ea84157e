"""MLflow logging for bundle runs, tolerant of a tracking server that goes away.

One experiment per bundle, tagged as model training. A run logs: parameters (the bundle
config as run, its top-level keys under short names, the components it built), what the
UI's runs table shows (see :mod:`segzoo.tracking.metadata`: dataset inputs with their
digest, a one-line description, source, git and plugin-version tags), per-epoch metrics
(train loss and every validation metric), system metrics (CPU, memory, GPU), and
artifacts (the config, the best checkpoint, loss/metric curves and an
image/mask/prediction panel). A server
that cannot be reached at start stops the run before training, naming the URI; one
that fails later costs a warning and training goes on.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.handlers import from_engine

import segzoo
from segzoo.bundle.context import current_bundle_workflow
from segzoo.engine.faults import fault_point
from segzoo.processing import Processing
from segzoo.runfiles import store
from segzoo.runfiles.store import is_main_process, resume_requested
from segzoo.tracking.client import (  # noqa: F401 - TrackingUnavailableError, artifact_location, get_or_create_experiment: public here too
    TrackingUnavailableError,
    artifact_location,
    flatten,
    get_or_create_experiment,
    open_run,
    param_batches,
    terminate,
)
from segzoo.tracking.datasets import dataset_origin
from segzoo.tracking.metadata import describe, key_params, log_datasets, start_system_metrics, ui_link


def describe_components(components: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{role: {"name", **params}}`` of the components a run built (see :class:`MLflowTracker`'s ``components``)."""
    described = {}
    for role, component in components.items():
        record = segzoo.built(component)
        if record is not None:
            described[role] = record.describe()
        elif isinstance(component, Processing):  # the input and output rule the network is used with
            described[role] = {"name": "segzoo.processing", **component.record()}
        elif isinstance(component, (list, tuple)) and len(component) == 2 and isinstance(component[0], str):
            described[role] = {"name": component[0], **dict(component[1] or {})}
        elif component is not None:
            raise TypeError(f"MLflowTracker components['{role}']: expected an object built by segzoo.build, a (name, params) "
                            f"pair or None, got {type(component).__name__}")
    return described


class MLflowTracker:
    """Attach to a trainer (with its evaluator) or to an evaluator alone.

    Args:
        experiment: the experiment name (the bundle's name).
        run_name: the run's name in the MLflow UI.
        output_dir: where checkpoints and plots are written; the run id is kept there so a resumed
            training continues the same MLflow run.
        components: what the run built, by role: an object built by the registry (its ``segzoo_built`` record is
            read), a ``(name, params)`` pair for what keeps no record (a dataset's items), or None (not used);
            logged as params and written to ``components.json``.
        evaluator: the validation engine whose metrics are logged each epoch.
        artifacts: files logged at the end if they exist (e.g. the best checkpoint).
        panel: ``callable() -> matplotlib figure`` drawn at the end (image / mask / prediction).
        tracking_uri: MLflow tracking URI; by default ``MLFLOW_TRACKING_URI`` or MLflow's local store.
        parent_run_id: nest the run under this run (comparisons and searches).
        datasets: the data the run sees, ``{"training": items, "validation": items}`` (an evaluation: one context,
            "validation" or "test"); logged as MLflow dataset inputs named after the bundle's ``dataset_dir`` or
            ``synthetic`` generator, with a digest of their contents.
        resume: continue the MLflow run recorded in ``output_dir`` (an interrupted training) instead of a new one.
        register_as: register the run's MLflow model (logged when ``output_dir`` holds ``model.pt``) under this name.
    """

    def __init__(
        self,
        experiment: str,
        run_name: str,
        output_dir: str,
        components: dict[str, Any] | None = None,
        evaluator: Engine | None = None,
        artifacts: list[str] | None = None,
        panel: Callable[[], Any] | None = None,
        tracking_uri: str | None = None,
        parent_run_id: str | None = None,
        extra_params: dict[str, Any] | None = None,
        resume: bool = False,
        register_as: str | None = None,
        datasets: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.experiment = experiment
        self.run_name = run_name
        self.output_dir = Path(output_dir)
        self.components = describe_components(components or {})
        self.evaluator = evaluator
        self.artifacts = artifacts or []
        self.panel = panel
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.extra_params = extra_params or {}
        self.resume = resume_requested(resume)
        self.register_as = register_as
        self.uri = tracking_uri or ""
        self.client: Any = None
        workflow = current_bundle_workflow()
        self.config = workflow.parser.get() if workflow is not None else None
        self.bundle_dir = str(Path(workflow.config_root_path).resolve().parent) if workflow else None
        self.datasets = datasets or {}
        self.system_metrics: Any = None
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.run_id: str | None = None
        self._epoch_losses: list[float] = []
        self._logged: dict[str, set[int]] = {}
        self._warned = False

    # -- wiring -------------------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        if not is_main_process():
            return  # rank 0 logs the run; the other ranks of a distributed run train the same run
        engine.add_event_handler(Events.STARTED, self.start)
        engine.add_event_handler(Events.STARTED, self._start_system_metrics)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_loss)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._log_epoch)
        engine.add_event_handler(Events.COMPLETED, self.finish)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.fail)
        # Ignite runs only the first EXCEPTION_RAISED handler that re-raises (MONAI's StatsHandler, listed before this one
        # in a bundle, logs a traceback and re-raises): this one goes first, so the run is always closed with its status.
        handlers = engine._event_handlers[Events.EXCEPTION_RAISED]
        handlers.insert(0, handlers.pop())
        self.engine = engine
        if self.evaluator is not None and self.evaluator is not engine:
            self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._log_validation)

    # -- MLflow calls, each guarded -------------------------------------------------------------------
    def _safe(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call MLflow; on the first failure warn once and stop calling it, so a dead server never slows training."""

        if self._warned:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking must never cost the training
            warnings.warn(
                f"MLflow at {self.uri} failed while {what} ({type(exc).__name__}: {exc}); "
                "training continues without tracking; checkpoints, history.json and curves are still written to "
                f"{self.output_dir}",
                RuntimeWarning,
                stacklevel=2,
            )
            self._warned = True
            return None

    def start(self, engine: Engine) -> None:
        """Open (or, resuming, reopen) this run through :func:`~segzoo.tracking.client.open_run`.

        Resuming, the history is cut back to the epochs ``last.pt`` holds, and steps MLflow already has are not logged
        again; a run the store no longer has (the store changed) is replaced by a new one holding the history so far.
        """
        resume_id = store.read_run_id(self.output_dir) if self.resume else None
        config = self.config or {}
        dataset, source = dataset_origin(config.get("dataset_dir"), config.get("synthetic"))
        evaluated = None if self.evaluator is not None else next(iter(self.datasets), "held-out data")
        if self.output_dir.name.startswith(f"{self.run_name}-"):  # the folder's name was taken: NAME-2, and so is the run's
            self.run_name = self.output_dir.name
        self.client, self.run_id = open_run(self.tracking_uri, self.experiment, self.run_name, self.parent_run_id, resume_id,
                                            source=self.bundle_dir, description=describe(config, dataset, evaluated))
        self.uri = self.client.tracking_uri
        stored = self._safe("reading the run back", self.client.get_run, self.run_id)
        self.run_name = stored.info.run_name if stored is not None else self.run_name  # resumed: the name it was given then
        print(f"MLflow run {self.run_name} ({'resumed' if resume_id == self.run_id else 'new'}), writing to {self.output_dir}")
        fault_point("started", 0)
        store.write_run_info(self.output_dir, self.components)
        completing = self.resume and self.evaluator is not None and store.logging_interrupted(self.output_dir)
        if self.resume and not completing:
            self._load_history(upto=engine.state.epoch)
        if completing:  # trained to the end, stopped while logging it: log what is missing, train nothing
            self.history = store.read_history(self.output_dir)
            self.finish(engine)
            engine.terminate(skip_completed=True)
            return
        if resume_id is not None and resume_id == self.run_id:
            self._logged = self._safe("reading the logged metrics", self._logged_steps) or {}
            return
        store.write_run_id(self.output_dir, self.run_id)
        self._safe("logging the datasets", log_datasets, self.client, self.run_id, self.datasets, dataset, source)
        for name, points in self.history.items():
            for step, value in points:
                self._log_metrics({name: value}, step)
        params: dict[str, str] = {"output_dir": str(self.output_dir)}
        for role, described in self.components.items():
            params[role] = described["name"]
            params.update({f"{role}.{k}": v for k, v in flatten(described).items() if k != "name"})
        params.update({k: str(v) for k, v in self.extra_params.items()})
        if self.config is not None:
            params.update({f"config.{k}": v for k, v in flatten(self.config).items() if not k.startswith("_meta_")})
            self._safe("logging the config", self.client.log_dict, self.run_id, self.config, "config/resolved_config.json")
        params.update(key_params(config, dataset))
        for batch in param_batches(params):
            self._safe("logging params", self.client.log_batch, self.run_id, params=batch)

    def _start_system_metrics(self, engine: Engine) -> None:
        if self.run_id is not None and not self._warned:
            self.system_metrics = start_system_metrics(self.run_id, self.uri, resume=self.resume)

    def _stop_system_metrics(self) -> None:
        if self.system_metrics is not None:
            self.system_metrics.finish()

    def _collect_loss(self, engine: Engine) -> None:
        output = engine.state.output
        first = output[0] if isinstance(output, list) and output else output
        if isinstance(first, dict) and "loss" in first:
            self._epoch_losses.append(float(from_engine(["loss"], first=True)(output)))

    def _log_epoch(self, engine: Engine) -> None:
        if self.evaluator is None:  # attached to an evaluator alone: its metrics are the run's
            self._log_validation(engine)
        if self._epoch_losses:
            value = sum(self._epoch_losses) / len(self._epoch_losses)
            self._record("train_loss", engine.state.epoch, value)
            self._log_metrics({"train_loss": value}, engine.state.epoch)
            self._epoch_losses.clear()
        fault_point("after_epoch", engine.state.epoch)

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log one step; a step MLflow already has (logged before a kill, then trained again on resume) is not logged twice."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in metrics.items() if step not in self._logged.get(k, ())]
        if batch:
            self._safe("logging metrics", self.client.log_batch, self.run_id, metrics=batch)

    def _logged_steps(self) -> dict[str, set[int]]:
        run = self.client.get_run(self.run_id)
        return {key: {m.step for m in self.client.get_metric_history(self.run_id, key)} for key in run.data.metrics}

    def _log_validation(self, evaluator: Engine) -> None:
        step = self.engine.state.epoch
        metrics = {k: float(v) for k, v in evaluator.state.metrics.items() if isinstance(v, (int, float)) or torch.is_tensor(v)}
        for k, v in metrics.items():
            self._record(k, step, v)
        self._log_metrics(metrics, step)
        fault_point("after_validation" if evaluator is not self.engine else "evaluated", step)

    def _record(self, name: str, step: int, value: float) -> None:
        self.history.setdefault(name, []).append((step, value))
        store.write_history(self.output_dir, self.history)

    def _load_history(self, upto: int) -> None:
        """The history of the epochs ``last.pt`` holds: a step recorded after it (the kill came before its checkpoint) is
        dropped here and recorded again when that epoch is trained again."""
        self.history = {name: [p for p in points if p[0] <= upto] for name, points in store.read_history(self.output_dir).items()}
        store.write_history(self.output_dir, self.history)

    def _log_artifacts(self) -> None:
        from segzoo.figures import save_curves

        curves = save_curves(self.history, self.output_dir / "curves.png", title=self.run_name)
        paths = [curves] + [Path(a) for a in self.artifacts]
        if self.panel is not None:
            figure_path = self.output_dir / "predictions.png"
            try:
                self.panel().savefig(figure_path, dpi=100, bbox_inches="tight")
                paths.append(figure_path)
            except Exception as exc:  # noqa: BLE001 - a missing figure must not hide the run's real outcome
                warnings.warn(f"could not draw the prediction panel: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
        for path in paths:
            if path is not None and Path(path).exists():
                self._safe(f"uploading {path}", self.client.log_artifact, self.run_id, str(path))

    def finish(self, engine: Engine) -> None:
        from segzoo.export.mlflow_model import log_trained_model
        from segzoo.files import atomic_write_text

        training = self.evaluator is not None and is_main_process()
        if training:  # until removed below, a stop here leaves a run that --resume completes
            atomic_write_text(self.output_dir / store.LOGGING, "end-of-run logging in progress\n")
        self._stop_system_metrics()
        self._log_artifacts()
        fault_point("end_of_run", engine.state.epoch)
        model = self._safe(
            "logging the MLflow model",
            log_trained_model,
            self.client,
            self.run_id,
            self.output_dir,
            self.register_as,
            engine.state.epoch,
        )
        self._safe("closing the run", self.client.set_terminated, self.run_id, "FINISHED")
        if training:
            (self.output_dir / store.LOGGING).unlink(missing_ok=True)
        link = self._safe("reading the run back", ui_link, self.client, self.run_id)
        print(f"run folder {self.output_dir}" + (f"\nMLflow run {self.run_name}: {link}" if link else "")
              + (f"\nMLflow model {model}" if model else ""))

    def fail(self, engine: Engine, exc: BaseException) -> None:
        """Keep what was learnt (history, curves, checkpoints on disk) and mark the run failed (KILLED on Ctrl-C or
        SIGTERM), then re-raise."""
        if self.run_id is not None:
            self._stop_system_metrics()
            self._log_artifacts()
            terminate(self.client, self.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise exc
