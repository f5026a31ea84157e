"""TPE over several machines: ``segzoo tune`` workers, started at the same moment, join one study through Optuna's
storage on a real PostgreSQL and log to the shared ``mlflow server``; one worker is SIGKILLed mid-trial.

The study ends with exactly the trials asked for, no parameter set trained twice (except the dead worker's trial, run
again once), every trial a child of one MLflow parent run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from segzoo.tune import PARENT_RUN_ATTR, RUN_ID_ATTR, WORKER_ATTR
from tests.conftest import BUNDLES
from tests.services import MlflowServer, Postgres

pytestmark = [pytest.mark.service, pytest.mark.slow]

TINY_FREM = ["train_hook=frem", "synthetic#num_images=6", "synthetic#size=64", "patch_size=[64,64]", "batch_size=2",
             "arch_params#base_channels=4"]
TRIALS = 3
WORKER_TIMEOUT_S = 400


def start_worker(storage: str, study: str, seed: int, out: Path, tracking_uri: str) -> subprocess.Popen:
    """One worker, as a second machine starts it (the README's join command)."""
    cmd = [sys.executable, "-m", "segzoo", "tune", "--bundle", str(BUNDLES / "frem"), "--space", "B:int:1:16,X:float:1:100",
           "--epochs", "1", "--trials", str(TRIALS), "--study", study, "--storage", storage, "--seed", str(seed),
           "--heartbeat", "1", "--output-dir", str(out / f"worker{seed}"), *(a for o in TINY_FREM for a in ("--override", o))]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(out / f"worker{seed}.log", "w")  # noqa: SIM115 - the worker writes it until it ends
    return subprocess.Popen(cmd, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT)


def finish(worker: subprocess.Popen, out: Path, seed: int) -> str:
    try:
        worker.wait(WORKER_TIMEOUT_S)
    finally:
        if worker.poll() is None:
            worker.kill()
    log = (out / f"worker{seed}.log").read_text()
    assert worker.returncode == 0, f"worker {seed} exited {worker.returncode}:\n{log[-4000:]}"
    return log


def study_of(storage: str, study: str):
    import optuna

    return optuna.load_study(study_name=study, storage=storage)


def check_one_parent(study, tracking_uri: str) -> None:
    """Every completed trial's MLflow run is a finished child of the study's one parent run."""
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    client = MlflowClient(tracking_uri=tracking_uri)
    parent = client.get_run(study.user_attrs[PARENT_RUN_ATTR])
    assert parent.info.status == "FINISHED" and parent.data.metrics["completed_trials"] == TRIALS
    parents = client.search_runs([parent.info.experiment_id], filter_string=f"attributes.run_name = '{parent.info.run_name}'")
    assert len(parents) == 1  # the workers found one parent, not one each
    children = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert {t.user_attrs[RUN_ID_ATTR] for t in done} <= {c.info.run_id for c in children}
    assert all(c.info.status != "RUNNING" for c in children)


def test_two_workers_started_at_once_share_one_study_and_one_parent_run(postgres_server: Postgres, mlflow_server: MlflowServer,
                                                                       tmp_path: Path) -> None:
    from optuna.trial import TrialState

    storage = postgres_server.create_database(f"optuna_{uuid.uuid4().hex[:8]}")  # fresh: both workers find no tables
    workers = [start_worker(storage, "race", seed, tmp_path, mlflow_server.uri) for seed in (1, 2)]
    logs = [finish(worker, tmp_path, seed) for worker, seed in zip(workers, (1, 2))]
    assert not any("Traceback" in log for log in logs), logs
    study = study_of(storage, "race")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * TRIALS  # exactly the trials asked for, none lost
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == TRIALS  # no parameter set trained twice
    check_one_parent(study, mlflow_server.uri)
    assert all(f"MLflow study: {mlflow_server.uri}/#/experiments/" in log for log in logs)


def test_a_worker_killed_mid_trial_leaves_a_failed_trial_that_another_worker_runs_again(
    postgres_server: Postgres, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    from optuna.trial import TrialState

    storage = postgres_server.create_database(f"optuna_{uuid.uuid4().hex[:8]}")
    doomed, survivor = (start_worker(storage, "kill", seed, tmp_path, mlflow_server.uri) for seed in (1, 2))
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    killed = None
    while killed is None and time.monotonic() < deadline and doomed.poll() is None:
        time.sleep(0.5)
        try:
            trials = study_of(storage, "kill").get_trials(states=(TrialState.RUNNING,))
        except Exception:  # noqa: BLE001, S112 - the study (or its tables) does not exist yet
            continue
        mine = [t for t in trials if t.user_attrs.get(WORKER_ATTR, "").endswith(f" {doomed.pid}")]
        if mine:
            time.sleep(2)  # well inside its training
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(30)
            killed = mine[0]
    assert killed is not None, "the first worker never ran a trial:\n" + (tmp_path / "worker1.log").read_text()[-3000:]
    finish(survivor, tmp_path, 2)
    study = study_of(storage, "kill")
    states = {t.number: t.state for t in study.trials}
    assert states[killed.number] == TrialState.FAIL  # not RUNNING forever
    assert TrialState.RUNNING not in states.values() and list(states.values()).count(TrialState.COMPLETE) == TRIALS
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE and retried[0].params == killed.params
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len({tuple(sorted(t.params.items())) for t in completed}) == TRIALS
    check_one_parent(study, mlflow_server.uri)
