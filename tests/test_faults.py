"""Fault injection: a training killed at any chosen point and resumed ends exactly as an uninterrupted one.

Every run is a subprocess on tiny synthetic data (6 images of 32x32, a 4-channel U-Net, 3 epochs), killed by
``SEGZOO_FAULT=POINT:N`` with ``os._exit`` (no cleanup, as ``kill -9``), then resumed with ``--resume NAME``.
The uninterrupted run and the killed runs start at once on one new SQLite store and one runs folder, which is
also the concurrency check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segzoo.engine.faults import FAULT_ENV, FAULT_EXIT_CODE
from tests.conftest import BUNDLES, hostile

TRAIN = str(BUNDLES / "pyconvunet" / "configs" / "train.json")
TINY_RUN = ["--epochs", "3", "--arch", "unet", "--arch_params", "{'base_channels': 4}", "--synthetic#num_images", "6",
            "--synthetic#size", "32", "--patch_size", "[32,32]", "--batch_size", "2", "--learning_rate", "0.03"]
# 5 training images in batches of 2: 3 iterations per epoch; iteration 5 is mid-epoch 2
KILL_POINTS = {
    "after_validation:2": hostile("faults", "kill -9 after epoch 2 was validated and logged, before its last.pt (issue case 3)",
                                  "resume redoes epoch 2 without a duplicated step; the best score survives, "
                                  "model.pt as uninterrupted"),
    "iteration:5:sigterm": hostile("faults", "SIGTERM mid-epoch (iteration 5 of 9; a scheduler's stop)",
                                   "MLflow run closed KILLED; resume redoes epoch 2 and ends as uninterrupted",
                                   "segzoo: stopped (SIGTERM); continue with --resume RUNS/iteration-5-sigterm (its last.pt "
                                   "holds every epoch completed)"),
    "after_checkpoint:2": hostile("faults", "kill -9 right after epoch 2's last.pt was written",
                                  "resume starts at epoch 3; no step lost or duplicated"),
}


pytestmark = pytest.mark.slow  # every test here waits for the module's trainings (killed, then resumed)


def _train(root: Path, *args: str, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db", "OMP_NUM_THREADS": "1", FAULT_ENV: fault or ""}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            TRAIN,
            *TINY_RUN,
            "--runs_dir",
            str(root / "runs"),
            *args,
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]


def _name(point: str) -> str:
    return point.replace(":", "-")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run ('full') and one run per kill point, started at once on a new store, then each killed one
    resumed; the MLflow status of each killed run before its resume is kept in ``killed.json``."""
    root = tmp_path_factory.mktemp("faults")
    full = _train(root, "--run_name", "full")
    killed = {point: _train(root, "--run_name", _name(point), fault=point) for point in KILL_POINTS}
    for point, proc in killed.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == (1 if point.endswith("sigterm") else FAULT_EXIT_CODE), err[-4000:]
        if point.endswith("sigterm"):
            run = root / "runs" / _name(point)
            assert err.strip().splitlines()[-1] == (f"segzoo: stopped (SIGTERM); continue with --resume {run} (its last.pt "
                                                    "holds every epoch completed)")
    (root / "killed.json").write_text(
        json.dumps({name: [run.info.status, "segzoo.stale" in run.data.tags] for name, run in _mlflow_runs(root).items()})
    )
    resumed = [_train(root, "--resume", _name(point)) for point in KILL_POINTS]
    for proc in [full, *resumed]:
        _wait(proc)
    return root


def _history(run: Path) -> dict:
    return json.loads((run / "history.json").read_text())


def _client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")


def _mlflow_runs(root: Path) -> dict:
    client = _client(root)
    return {run.info.run_name: run for run in client.search_runs([client.get_experiment_by_name("pyconvunet").experiment_id])}


def _mlflow_steps(root: Path) -> dict[str, dict[str, list[int]]]:
    client, found = _client(root), _mlflow_runs(root)
    assert all(run.info.status == "FINISHED" for run in found.values())
    return {name: {key: sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics}
            for name, run in found.items()}


@pytest.mark.parametrize("point", [pytest.param(point, marks=mark) for point, mark in KILL_POINTS.items()])
def test_a_run_killed_and_resumed_ends_as_an_uninterrupted_one(runs: Path, point: str) -> None:
    full, resumed = runs / "runs" / "full", runs / "runs" / _name(point)
    assert _history(resumed) == _history(full)  # same values, same steps: nothing lost, nothing twice
    steps = _mlflow_steps(runs)
    assert steps[resumed.name] == steps["full"] and all(s == [1, 2, 3] for s in steps["full"].values())
    best, best_full = torch.load(resumed / "model.pt", weights_only=True), torch.load(full / "model.pt", weights_only=True)
    assert best.keys() == best_full.keys() and all(torch.equal(best[k], best_full[k]) for k in best)
    assert (resumed / "finished").exists() and not list(resumed.glob(".*.tmp"))


@hostile("MLflow", "two trainings started at once on a new SQLite store and one runs folder",
         "both finish, each in its own run and folder (the store is created under a lock file)")
def test_trainings_started_at_once_on_a_new_store_all_finish(runs: Path) -> None:
    assert set(_mlflow_steps(runs)) == {"full", *map(_name, KILL_POINTS)}


@hostile("MLflow", "a run killed by SIGTERM, or by kill -9 (which it cannot see)",
         "SIGTERM: closed KILLED at once; kill -9: left RUNNING, then closed KILLED with tag segzoo.stale by "
         "the next start on the host")
def test_a_killed_run_is_never_left_running(runs: Path) -> None:
    killed = json.loads((runs / "killed.json").read_text())
    assert killed["iteration-5-sigterm"] == ["KILLED", False]
    # os._exit: nobody closed them, unless a sibling started after one died and closed it as stale
    assert all(killed[_name(p)] in (["RUNNING", False], ["KILLED", True]) for p in KILL_POINTS if not p.endswith("sigterm"))
    found = _mlflow_runs(runs)  # each resume (or a sibling) found the dead run and closed it before it was reopened
    assert all(
        "ended without closing the run" in found[_name(p)].data.tags["segzoo.stale"]
        for p in KILL_POINTS
        if not p.endswith("sigterm")
    )


@hostile("faults", "`--resume true` when every run has finished (issue case 1)", "refused; no run reopened, model.pt untouched",
         "the newest run, ... finished; no run there can be resumed: start a new training without --resume")
def test_resume_true_never_reopens_a_finished_run(runs: Path) -> None:
    from segzoo.engine import output_dir
    from segzoo.errors import SegzooError

    model = (runs / "runs" / "full" / "model.pt").read_bytes()
    with pytest.raises(SegzooError, match="finished; no run there can be resumed: start a new training without --resume"):
        output_dir(str(runs / "runs"), "unused", "true")
    assert not (runs / "runs" / "unused").exists()
    assert (runs / "runs" / "full" / "model.pt").read_bytes() == model
