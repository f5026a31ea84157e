"""``segzoo tune``: a seeded TPE search (Optuna) of any bundle's config keys on its validation metric.

Each trial is one training of the bundle (its ``training`` workflow through :func:`segzoo.bundle.contract.run`),
run in this process with the searched keys as overrides and logged as a child MLflow run under one parent run per study. The
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
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segzoo import overrides as override_text
from segzoo.bundle import contract as bundles
from segzoo.bundle.contract import Bundle
from segzoo.engine.checkpoints import NonFiniteLossError
from segzoo.errors import SegzooError
from segzoo.files import atomic_write_text
from segzoo.flags import add_flag
from segzoo.runfiles.store import best_value, read_run_id
from segzoo.tracking.liveness import owner_tags
from segzoo.tracking.metadata import ui_link

PARENT_RUN_ATTR = "mlflow_parent_run_id"
RUN_ID_ATTR = "mlflow_run_id"  # a trial's MLflow run, which the worker that reports may not hold on its disk
WORKER_ATTR = "worker"  # a trial's host and process id
STUDY_LOCK = "segzoo.tune"  # the storage lock under which workers create the study, its parent run and their trials
GRACE_HEARTBEATS = 3  # a trial whose heartbeat is this many intervals old belongs to a dead worker
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

    def value(self, number: float) -> int | float:
        """``number`` as this dimension's type (what a trial passes to the config)."""
        return int(number) if self.kind == "int" else float(number)

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
    """``KEY=VALUE`` pairs as fixed bundle overrides (:func:`segzoo.overrides.parse_overrides`), without the keys tune sets."""
    overrides = override_text.parse_overrides(pairs)
    for key in overrides:
        if key in RESERVED_KEYS:
            raise SegzooError(f"--override {key}: tune sets {', '.join(RESERVED_KEYS)} itself "
                              "(use --epochs for the training length)")
    return overrides


class Tuner:
    """One study of one bundle: runs the missing trials, then writes the best override and the plot."""

    def __init__(self, bundle: Path, space: list[Dimension], trials: int, output_dir: Path, study_name: str, storage: str,
                 overrides: dict[str, Any], epochs: int | None = None, metric: str = "val_miou_with_background", seed: int = 0,
                 heartbeat_s: int = 60) -> None:
        self.bundle = Bundle(bundle)
        # a broken contract, key or type fails now
        self.bundle.read("training", {**overrides, **{d.name: d.value(d.low) for d in space}})
        self.space = space
        self.trials = trials
        self.output_dir = output_dir
        self.study_name = study_name
        self.storage = storage
        self.overrides = overrides
        self.epochs = epochs
        self.metric = metric
        self.seed = seed
        self.heartbeat_s = heartbeat_s

    def run(self) -> Any:
        """Run trials until ``trials`` have completed (counting those of earlier runs and of other workers); returns the study.

        Workers on several machines may share the storage: one at a time creates its tables, the study and the MLflow
        parent run (:func:`~segzoo.tracking.client.store_lock`), and each takes a new trial only while completed plus
        running trials are fewer than ``trials``, so the study ends with exactly that many. A worker that dies mid-trial
        stops its heartbeat; after the grace period another worker marks that trial failed and runs its parameters again.
        """
        from optuna.trial import TrialState

        from segzoo.tracking.client import closed_with_status, store_lock

        self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            with store_lock(self.storage, STUDY_LOCK):
                study = self.load_study()
                client, parent = self.open_parent(study)
        except ImportError as exc:
            raise SegzooError(f"--storage {self.storage}: its database driver is not installed ({exc}); "
                              "pip install -e '.[group]' adds PostgreSQL's (psycopg)") from None
        except sqlalchemy_errors() as exc:
            raise SegzooError(f"--storage {self.storage}: cannot open the study's database ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]}); check the URL, that the database server is up and that the "
                              "database exists and this user may create tables in it (docs/group.md)") from None
        with closed_with_status(client, parent):
            while (trial := self.next_trial(study)) is not None:
                try:
                    with heartbeat(study, trial, self.heartbeat_s):
                        value = self.objective(trial, parent)
                except NonFiniteLossError:
                    study.tell(trial, state=TrialState.FAIL)
                    continue
                except BaseException:
                    study.tell(trial, state=TrialState.FAIL)
                    raise
                study.tell(trial, value)
            self.report(study, client, parent)
        print(f"MLflow study: {ui_link(client, parent)}")
        return study

    def load_study(self) -> Any:
        """The study in its storage (created if new), with a heartbeat that lets other workers fail a dead worker's trial
        and re-queue its parameters once."""
        import optuna
        from optuna.storages import RDBStorage, RetryFailedTrialCallback

        # Optuna calls its heartbeat functions experimental and meant for its own optimize loop; this loop is their other user.
        warnings.filterwarnings(
            "ignore",
            message=r".*(heartbeat|fail_stale_trials|RetryFailedTrialCallback|failed_trial_callback)",
            category=optuna.exceptions.ExperimentalWarning,
        )
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        storage = RDBStorage(self.storage, heartbeat_interval=self.heartbeat_s, grace_period=GRACE_HEARTBEATS * self.heartbeat_s,
                             failed_trial_callback=RetryFailedTrialCallback(max_retry=1))
        study = optuna.create_study(study_name=self.study_name, storage=storage, direction="maximize", load_if_exists=True)
        # Offset the seed by the trials already made, so a resumed study (or a second worker) does not re-propose the first
        # points.
        study.sampler = optuna.samplers.TPESampler(seed=self.seed + len(study.trials))
        return study

    def open_parent(self, study: Any) -> tuple[Any, str]:
        """The study's one MLflow parent run: the one a study attribute names (found by every worker), or a new one."""
        from segzoo.tracking.client import log_params, open_run

        parent_id = study.user_attrs.get(PARENT_RUN_ATTR)
        client, parent = open_run(
            self.overrides.get("tracking_uri"),
            self.bundle.name,
            f"tune-{self.study_name}",
            run_id=parent_id,
            source=str(self.bundle.root.resolve()),
            description=self.title,
        )
        if parent != parent_id:  # a new study, or its parent run is not in this tracking store (open_run warned)
            study.set_user_attr(PARENT_RUN_ATTR, parent)
            log_params(
                client,
                parent,
                {
                    "study": self.study_name,
                    "storage": self.storage,
                    "metric": self.metric,
                    "sampler": "TPE",
                    "seed": self.seed,
                    "space": ",".join(f"{d.name}:{d.kind}:{d.low}:{d.high}" for d in self.space),
                    **{f"override.{k}": json.dumps(v) for k, v in self.overrides.items()},
                },
            )
        return client, parent

    def next_trial(self, study: Any) -> Any | None:
        """A new trial (a re-queued one first), or None once ``trials`` have completed. While completed plus running trials
        reach ``trials``, waits: a running trial may still fail, or belong to a dead worker whose heartbeat stopped."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        from segzoo.tracking.client import store_lock

        while True:
            fail_stale_trials(study)
            with store_lock(self.storage, STUDY_LOCK):
                states = [t.state for t in study.get_trials(deepcopy=False)]
                completed = states.count(TrialState.COMPLETE)
                if completed >= self.trials:
                    return None
                if completed + states.count(TrialState.RUNNING) < self.trials:
                    return study.ask()
            time.sleep(self.heartbeat_s)

    @property
    def title(self) -> str:
        """The study in one line, the start of its MLflow description."""
        return f"TPE search of {', '.join(d.name for d in self.space)} maximising {self.metric}, {self.trials} trials"

    def trial_run_name(self, number: int) -> str:
        return f"{self.study_name}-trial-{number:04d}"  # unique even when studies share an output folder

    def objective(self, trial: Any, parent_run_id: str) -> float:
        """Train the bundle once with this trial's parameters; its value is the run's best validation metric."""
        params = {d.name: d.suggest(trial) for d in self.space}
        trial.set_user_attr(WORKER_ATTR, " ".join(owner_tags().values()))  # which machine and process ran it
        run_name = self.trial_run_name(trial.number)
        run_overrides = {**self.overrides, **params, "runs_dir": str(self.output_dir), "run_name": run_name,
                         "parent_run_id": parent_run_id, "resume": False}
        if self.epochs is not None:
            run_overrides["epochs"] = self.epochs
        try:
            bundles.run(self.bundle, "training", run_overrides)
        except NonFiniteLossError:
            # The epochs before the loss diverged were validated; their best is this setting's result.
            if best_value(self.output_dir / run_name, self.metric) is None:
                raise
        trial.set_user_attr(RUN_ID_ATTR, read_run_id(self.output_dir / run_name))  # other workers' report finds the run here
        value = best_value(self.output_dir / run_name, self.metric)
        if value is None:
            raise SegzooError(f"trial {trial.number}: {self.output_dir / run_name}/history.json has no '{self.metric}'; "
                              f"is --metric one of the bundle's validation metrics (val_<name>)?")
        return value

    def report(self, study: Any, client: Any, parent: str) -> None:
        """Write and log the best override file, the trial plot and the best value (if any trial completed)."""
        from optuna.trial import TrialState

        from segzoo.figures import save_trials
        from segzoo.tracking.metadata import summarize

        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            return
        best = study.best_trial
        best_path = self.output_dir / BEST_OVERRIDE
        atomic_write_text(best_path, json.dumps({**self.overrides, **best.params}, indent=2) + "\n")
        plot = save_trials(done, [d.name for d in self.space], self.metric, self.output_dir / TRIALS_PLOT)
        for name, value in {f"best_{self.metric}": best.value, "completed_trials": len(done)}.items():
            client.log_metric(parent, name, value)
        # Tags, not params: a resumed study may find a better trial, and MLflow params cannot change.
        for key, value in ({f"best.{k}": v for k, v in best.params.items()} | {"best_trial": best.number}).items():
            client.set_tag(parent, key, value)
        client.log_artifact(parent, str(best_path))
        client.log_artifact(parent, str(plot))
        best_run = best.user_attrs.get(RUN_ID_ATTR) or read_run_id(self.output_dir / self.trial_run_name(best.number))
        summarize(client, parent, best_run, self.title, trials_table(done, [d.name for d in self.space], self.metric))


def sqlalchemy_errors() -> tuple[type[BaseException], ...]:
    """What SQLAlchemy raises for a database it cannot reach, log in to or use (Optuna's storage is SQLAlchemy)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    return (OperationalError, ProgrammingError)


@contextmanager
def heartbeat(study: Any, trial: Any, interval_s: float) -> Iterator[None]:
    """Record ``trial``'s heartbeat in the study's storage every ``interval_s`` seconds while the block runs (what
    ``study.optimize`` does for its own trials), so a worker that dies leaves a trial other workers can fail."""
    storage, trial_id = study._storage, trial._trial_id  # Optuna's heartbeat API takes the storage and trial id
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=beat, name=f"optuna-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def trials_table(trials: list[Any], names: list[str], metric: str, rows: int = 20) -> str:
    """The ``rows`` best completed trials as a markdown table, best first (a study's MLflow description)."""
    best_first = sorted(trials, key=lambda t: t.value, reverse=True)[:rows]
    lines = [f"| trial | {' | '.join(names)} | {metric} |", "|---" * (len(names) + 2) + "|"]
    lines += [f"| {t.number} | {' | '.join(f'{t.params[n]:.4g}' for n in names)} | {t.value:.4f} |" for t in best_first]
    return "\n".join(lines)


def cmd_tune(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    study_name = args.study or f"{bundle.name}-tpe"
    output_dir = Path(args.output_dir or Path("runs") / bundle.name / f"tune-{study_name}")
    storage = args.storage or f"sqlite:///{output_dir.resolve() / 'study.db'}"
    if args.heartbeat < 1:
        raise SegzooError(f"--heartbeat {args.heartbeat}: give a number of seconds, 1 or more (default 60)")
    tuner = Tuner(bundle, parse_space(args.space), args.trials, output_dir, study_name, storage,
                  parse_overrides(args.override), args.epochs, args.metric, args.seed, args.heartbeat)
    study = tuner.run()
    if not any(t.value is not None for t in study.trials):
        raise SegzooError(f"study '{study_name}': no trial completed; see the errors above")
    print(f"study '{study_name}': {len(study.trials)} trials; best {args.metric} = {study.best_value:.4f} "
          f"with {study.best_params}")
    print(f"rerun the best: python -m monai.bundle run training --config_file {tuner.bundle.config_file('training')} "
          f"--args_file {output_dir / BEST_OVERRIDE}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``segzoo tune`` to the CLI's subcommands."""
    p = subparsers.add_parser("tune", help="TPE search (Optuna) of a bundle's config keys on its validation metric, resumable")
    p.add_argument("--bundle", required=True, help="bundle folder holding configs/train.json, e.g. bundles/frem")
    p.add_argument("--space", required=True, help="NAME:int|float:LOW:HIGH[:log],...; names are config keys, e.g. "
                                                  "B:int:1:512,X:float:1:1000")
    p.add_argument("--trials", type=int, default=50, help="completed trials wanted in the study, "
                                                          "counting earlier runs (default 50)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the bundle's)")
    p.add_argument(
        "--metric",
        default="val_miou_with_background",
        help="validation metric to maximise, as logged by the bundle (default val_miou_with_background)",
    )
    p.add_argument("--study", help="study name (default: <bundle>-tpe); the same name continues the study")
    p.add_argument("--storage", help="Optuna storage URL shared by several machines, e.g. postgresql://USER@HOST/DB "
                   "(pip install -e '.[group]'; docs/group.md); default: a sqlite file in the output folder")
    add_flag(
        p,
        "--output_dir",
        renamed_from=["--output-dir"],
        help="trial runs, best_override.json and trials.png (default: runs/<bundle>/tune-<study>)",
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fixed bundle override, repeatable (e.g. train_hook=frem)",
    )
    p.add_argument("--seed", type=int, default=0, help="TPE sampler seed; give each machine of a shared study its own")
    p.add_argument("--heartbeat", type=int, default=60, metavar="SECONDS",
                   help=f"a running trial's heartbeat interval; one silent for {GRACE_HEARTBEATS} intervals (its worker died) is "
                   "marked failed and its parameters run again (default 60)")
    p.set_defaults(func=cmd_tune)
    return p
