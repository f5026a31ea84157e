"""``segzoo tune``: a seeded TPE search (Optuna) of any bundle's config keys on its validation metric.

Each trial is one training of the bundle (``configs/train.json``), run in this process with the
searched keys as overrides and logged as a child MLflow run under one parent run per study. The
trial's value is the best value of ``--metric`` in the run's ``history.json`` (the best-checkpoint
epoch). The study lives in an Optuna storage (a SQLite file in the output folder unless ``--storage``
names a shared database), so rerunning the same command continues it up to ``--trials`` completed
trials, under the same parent run, and several machines can share one study. At the end the
best parameters are written as an override file and the trials are plotted (first two searched keys
against each other, coloured by the metric, like the FREM paper's Figs. 7-8).
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segzoo.files import atomic_write_text
from segzoo.registry import SegzooError

PARENT_RUN_ATTR = "mlflow_parent_run_id"
BEST_OVERRIDE = "best_override.json"
TRIALS_PLOT = "trials.png"
# Keys tune sets on every trial; a user override of them would break the study's bookkeeping.
RESERVED_KEYS = ("run_name", "runs_dir", "parent_run_id", "resume", "epochs")


@dataclass(frozen=True)
class Dimension:
    """One searched config key: ``name:int|float:low:high[:log]``."""

    name: str
    kind: str
    low: float
    high: float
    log: bool = False

    def suggest(self, trial: Any) -> int | float:
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


def parse_space(text: str) -> list[Dimension]:
    """``B:int:1:512,X:float:1:1000:log`` -> dimensions; names are the bundle's config keys (``a#b`` for nested ones)."""
    dims = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        fields = part.split(":")
        if len(fields) not in (4, 5) or fields[1] not in ("int", "float") or fields[4:] not in ([], ["log"]):
            raise SegzooError(f"--space: '{part}' is not NAME:int|float:LOW:HIGH[:log] (e.g. B:int:1:512 or X:float:1:1000:log)")
        try:
            low, high = float(fields[2]), float(fields[3])
        except ValueError:
            raise SegzooError(f"--space: '{part}': LOW and HIGH must be numbers") from None
        if low >= high:
            raise SegzooError(f"--space: '{part}': LOW must be below HIGH")
        dims.append(Dimension(fields[0], fields[1], low, high, log=len(fields) == 5))
    if not dims:
        raise SegzooError("--space is empty; give at least one NAME:TYPE:LOW:HIGH")
    return dims


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as bundle overrides; VALUE is JSON when it parses (numbers, lists, true, null), else a string."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SegzooError(f"--override '{pair}' is not KEY=VALUE (e.g. train_hook=frem or patch_size=[128,128])")
        if key in RESERVED_KEYS:
            raise SegzooError(f"--override {key}: tune sets {', '.join(RESERVED_KEYS)} itself (use --epochs for the training length)")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def best_value(run_dir: Path, metric: str) -> float | None:
    """The best (highest) ``metric`` a bundle run recorded in its ``history.json``, if it recorded any."""
    path = run_dir / "history.json"
    points = json.loads(path.read_text()).get(metric, []) if path.exists() else []
    return max((value for _, value in points), default=None)


def plot_trials(trials: list[Any], names: list[str], metric: str, path: Path) -> Path:
    """Trials in the plane of the first two searched keys, coloured by ``metric`` (one key: metric against it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [t.value for t in trials]
    fig, ax = plt.subplots(figsize=(6, 5))
    if len(names) >= 2:
        points = ax.scatter([t.params[names[1]] for t in trials], [t.params[names[0]] for t in trials], c=values, cmap="coolwarm", edgecolors="k")
        fig.colorbar(points, ax=ax, label=metric)
        ax.set_xlabel(names[1])
        ax.set_ylabel(names[0])
    else:
        ax.scatter([t.params[names[0]] for t in trials], values, c=values, cmap="coolwarm", edgecolors="k")
        ax.set_xlabel(names[0])
        ax.set_ylabel(metric)
    ax.set_title(f"TPE search: {len(trials)} trials")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class Tuner:
    """One study of one bundle: runs the missing trials, then writes the best override and the plot."""

    def __init__(self, bundle: Path, space: list[Dimension], trials: int, output_dir: Path, study_name: str, storage: str,
                 overrides: dict[str, Any], epochs: int | None = None, metric: str = "val_miou", seed: int = 0) -> None:
        self.train_config = bundle / "configs" / "train.json"
        if not self.train_config.is_file():
            raise SegzooError(f"--bundle {bundle}: no {self.train_config}; pass a bundle folder (e.g. bundles/frem)")
        self.bundle_name = json.loads(self.train_config.read_text()).get("bundle_name", bundle.name)
        self.space = space
        self.trials = trials
        self.output_dir = output_dir
        self.study_name = study_name
        self.storage = storage
        self.overrides = overrides
        self.epochs = epochs
        self.metric = metric
        self.seed = seed

    def run(self) -> Any:
        """Run trials until ``trials`` have completed (counting those of earlier runs); returns the study."""
        import mlflow
        import optuna
        from optuna.storages import RDBStorage, RetryFailedTrialCallback
        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        from segzoo.engine.checkpoints import NonFiniteLossError
        from segzoo.engine.tracking import get_or_create_experiment

        self.output_dir.mkdir(parents=True, exist_ok=True)
        # The heartbeat marks a trial whose process died (SIGKILL, lost machine) as failed, and the retry callback re-queues its parameters.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(self.storage, heartbeat_interval=60, grace_period=180,
                                 failed_trial_callback=RetryFailedTrialCallback(max_retry=1))
        study = optuna.create_study(study_name=self.study_name, storage=storage, direction="maximize", load_if_exists=True)
        # Offset the seed by the trials already made, so a resumed study does not re-propose its first points.
        study.sampler = optuna.samplers.TPESampler(seed=self.seed + len(study.trials))
        if self.overrides.get("tracking_uri"):
            mlflow.set_tracking_uri(self.overrides["tracking_uri"])
        mlflow.set_experiment(experiment_id=get_or_create_experiment(mlflow.MlflowClient(), self.bundle_name))
        parent_id = study.user_attrs.get(PARENT_RUN_ATTR)
        with mlflow.start_run(run_id=parent_id, run_name=None if parent_id else f"tune-{self.study_name}") as parent:
            if parent_id is None:
                study.set_user_attr(PARENT_RUN_ATTR, parent.info.run_id)
                mlflow.log_params({"study": self.study_name, "storage": self.storage, "metric": self.metric, "sampler": "TPE",
                                   "seed": self.seed, "space": ",".join(f"{d.name}:{d.kind}:{d.low}:{d.high}" for d in self.space),
                                   **{f"override.{k.replace('#', '.')}": json.dumps(v) for k, v in self.overrides.items()}})
            completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            if completed < self.trials:
                study.optimize(
                    lambda trial: self.objective(trial, parent.info.run_id),
                    n_trials=self.trials - completed,
                    callbacks=[MaxTrialsCallback(self.trials, states=(TrialState.COMPLETE,))],
                    catch=(NonFiniteLossError,),
                )
            self.report(study)
        return study

    def objective(self, trial: Any, parent_run_id: str) -> float:
        """Train the bundle once with this trial's parameters; its value is the run's best validation metric."""
        from monai.bundle import run

        from segzoo.engine.checkpoints import NonFiniteLossError

        params = {d.name: d.suggest(trial) for d in self.space}
        run_name = f"{self.study_name}-trial-{trial.number:04d}"  # unique even when studies share an output folder
        run_overrides = {**self.overrides, **params, "runs_dir": str(self.output_dir), "run_name": run_name,
                         "parent_run_id": parent_run_id, "resume": False}
        if self.epochs is not None:
            run_overrides["epochs"] = self.epochs
        try:
            run("training", config_file=str(self.train_config), **run_overrides)
        except NonFiniteLossError:
            # The epochs before the loss diverged were validated; their best is this setting's result.
            if best_value(self.output_dir / run_name, self.metric) is None:
                raise
        value = best_value(self.output_dir / run_name, self.metric)
        if value is None:
            raise SegzooError(f"trial {trial.number}: {self.output_dir / run_name}/history.json has no '{self.metric}'; "
                              f"is --metric one of the bundle's validation metrics (val_<name>)?")
        return value

    def report(self, study: Any) -> None:
        """Write and log the best override file, the trial plot and the best value (if any trial completed)."""
        import mlflow
        from optuna.trial import TrialState

        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            return
        best = study.best_trial
        override = {**self.overrides, **best.params}
        best_path = self.output_dir / BEST_OVERRIDE
        atomic_write_text(best_path, json.dumps(override, indent=2) + "\n")
        plot = plot_trials(done, [d.name for d in self.space], self.metric, self.output_dir / TRIALS_PLOT)
        mlflow.log_metrics({f"best_{self.metric}": best.value, "completed_trials": len(done)})
        # Tags, not params: a resumed study may find a better trial, and MLflow params cannot change.
        mlflow.set_tags({f"best.{k}": v for k, v in best.params.items()} | {"best_trial": best.number})
        mlflow.log_artifact(str(best_path))
        mlflow.log_artifact(str(plot))


def cmd_tune(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    study_name = args.study or f"{bundle.name}-tpe"
    output_dir = Path(args.output_dir or Path("runs") / bundle.name / f"tune-{study_name}")
    storage = args.storage or f"sqlite:///{output_dir.resolve() / 'study.db'}"
    tuner = Tuner(bundle, parse_space(args.space), args.trials, output_dir, study_name, storage,
                  parse_overrides(args.override), args.epochs, args.metric, args.seed)
    study = tuner.run()
    if not any(t.value is not None for t in study.trials):
        raise SegzooError(f"study '{study_name}': no trial completed; see the errors above")
    print(f"study '{study_name}': {len(study.trials)} trials; best {args.metric} = {study.best_value:.4f} with {study.best_params}")
    print(f"rerun the best: python -m monai.bundle run training --config_file {tuner.train_config} --args_file {output_dir / BEST_OVERRIDE}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``segzoo tune`` to the CLI's subcommands."""
    p = subparsers.add_parser("tune", help="TPE search (Optuna) of a bundle's config keys on its validation metric, resumable")
    p.add_argument("--bundle", required=True, help="bundle folder holding configs/train.json, e.g. bundles/frem")
    p.add_argument("--space", required=True, help="NAME:int|float:LOW:HIGH[:log],...; names are config keys, e.g. B:int:1:512,X:float:1:1000")
    p.add_argument("--trials", type=int, default=50, help="completed trials wanted in the study, counting earlier runs (default 50)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the bundle's)")
    p.add_argument("--metric", default="val_miou", help="validation metric to maximise, as logged by the bundle (default val_miou)")
    p.add_argument("--study", help="study name (default: <bundle>-tpe); the same name continues the study")
    p.add_argument("--storage", help="Optuna storage URL shared by several machines (default: sqlite file in the output folder)")
    p.add_argument("--output-dir", help="trial runs, best_override.json and trials.png (default: runs/<bundle>/tune-<study>)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="fixed bundle override, repeatable (e.g. train_hook=frem)")
    p.add_argument("--seed", type=int, default=0, help="TPE sampler seed; give each machine of a shared study its own")
    p.set_defaults(func=cmd_tune)
    return p
