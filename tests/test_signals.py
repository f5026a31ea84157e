"""A SIGTERM sweep: one signal at each phase of a training, a compare, a reproduction and a tuning study.

Each stop must print one line saying how to continue (checked against the disk), leave no MLflow run RUNNING, and the
rerun it advises must complete. Every command is a subprocess on tiny synthetic data (``SEGZOO_FAULT=POINT:N:sigterm``
sends the signal at that point, see :mod:`segzoo.engine.faults`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from segzoo.engine.faults import FAULT_ENV
from tests.conftest import BUNDLES, SINCE_FIRST_TABLE, hostile

pytestmark = pytest.mark.slow

TRAIN = str(BUNDLES / "pyconvunet" / "configs" / "train.json")
TINY_RUN = [
    "--epochs",
    "2",
    "--arch",
    "unet",
    "--preset",
    "none",
    "--arch_params",
    "{'base_channels': 4}",
    "--synthetic#num_images",
    "6",
    "--synthetic#size",
    "32",
    "--patch_size",
    "[32,32]",
    "--batch_size",
    "2",
]
TINY_OVERRIDES = ["--override", "synthetic#num_images=6", "--override", "synthetic#size=32", "--override", "patch_size=[32,32]",
                  "--override", "batch_size=2", "--override", "arch_params={'base_channels': 4}"]
STOP = "segzoo: stopped (SIGTERM); "


def _run(root: Path, argv: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db", "OMP_NUM_THREADS": "1", FAULT_ENV: fault or "",
           "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
    return subprocess.run([sys.executable, *argv], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def _statuses(root: Path) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    return {
        run.info.run_name: run.info.status for e in client.search_experiments() for run in client.search_runs([e.experiment_id])
    }


def _stopped(proc: subprocess.CompletedProcess, root: Path) -> str:
    """The stop line, after checking it is the last line and no run was left RUNNING."""
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and last.startswith(STOP), proc.stderr[-3000:]
    assert "RUNNING" not in _statuses(root).values(), _statuses(root)
    return last[len(STOP):]


def _done(proc: subprocess.CompletedProcess, root: Path) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(_statuses(root).values()) <= {"FINISHED", "KILLED"}, _statuses(root)


def _sigterm(phase: str, outcome: str) -> pytest.MarkDecorator:
    return hostile("signals", f"SIGTERM {phase}", outcome, "segzoo: stopped (SIGTERM); ...", issue=SINCE_FIRST_TABLE)


# 5 training images in batches of 2: 3 iterations per epoch, 2 epochs
@pytest.mark.parametrize(
    ("point", "advice"),
    [
        pytest.param(
            "started:0",
            "no epoch was completed in {run}, so there is nothing to resume: start the training again",
            marks=_sigterm(
                "during a training's start-up (MLflow run open, nothing trained)",
                "run closed KILLED; says there is nothing to resume; a new training completes, named NAME-2 at start and end",
            ),
        ),
        pytest.param(
            "iteration:2",
            "no epoch was completed in {run}, so there is nothing to resume: start the training again",
            marks=_sigterm(
                "in a training's first epoch", "run closed KILLED; says there is nothing to resume (it advised --resume before)"
            ),
        ),
        pytest.param(
            "after_validation:1",
            "no epoch was completed in {run}, so there is nothing to resume: start the training again",
            marks=_sigterm(
                "after a validation, before its checkpoint", "run closed KILLED, no traceback from MONAI's StatsHandler"
            ),
        ),
        pytest.param(
            "after_epoch:2",
            "continue with --resume {run} (its last.pt holds every epoch completed)",
            marks=_sigterm(
                "after epoch 2's records, before its checkpoint (epoch 1's is on disk)",
                "run closed KILLED; --resume RUN redoes epoch 2 and completes under its stored name",
            ),
        ),
        pytest.param(
            "end_of_run:2",
            "continue with --resume {run}: its training had finished, the resume logs what its end was stopped before logging",
            marks=_sigterm(
                "during end-of-training logging (it was left RUNNING, exit 143 with no message; --resume refused it)",
                "run closed KILLED; --resume logs the MLflow model and closes the run FINISHED, training nothing",
            ),
        ),
    ],
)
def test_a_sigterm_in_each_phase_of_a_training_closes_its_run_and_the_advice_works(
    tmp_path: Path, point: str, advice: str
) -> None:
    name = point.replace(":", "-")
    run = tmp_path / "runs" / name
    train = ["-m", "monai.bundle", "run", "training", "--config_file", TRAIN, *TINY_RUN, "--runs_dir", str(tmp_path / "runs")]
    said = _stopped(_run(tmp_path, [*train, "--run_name", name], fault=f"{point}:sigterm"), tmp_path)
    assert said == advice.format(run=run)
    if "--resume" in advice:
        rerun = _run(tmp_path, [*train, "--resume", str(run)])
        assert f"MLflow run {name} (resumed)" in rerun.stdout
        assert _statuses(tmp_path)[name] == "FINISHED"
    else:
        rerun = _run(tmp_path, [*train, "--run_name", name])
        assert f"MLflow run {name}-2 (new)" in rerun.stdout and f"MLflow run {name}-2: " in rerun.stdout  # the name as stored
    _done(rerun, tmp_path)


@pytest.mark.parametrize(
    ("command", "point"),
    [
        pytest.param(
            [
                "compare",
                "--bundle",
                str(BUNDLES / "pyconvunet"),
                "--archs",
                "unet",
                "--epochs",
                "1",
                "--repeats",
                "1",
                "--panel_images",
                "1",
                *TINY_OVERRIDES,
            ],
            "evaluated:1",
            marks=_sigterm(
                "during `segzoo compare`'s held-out evaluation",
                "every run closed KILLED, no 'database is locked' traceback; the same command completes the comparison",
            ),
        ),
        pytest.param(
            [
                "reproduce",
                "pyconvunet-table2",
                "--rows",
                "U-Net",
                "--epochs",
                "1",
                "--bundles_dir",
                str(BUNDLES),
                "--override",
                "synthetic#num_images=5",
                "--override",
                "synthetic#size=32",
                "--override",
                "arch_params#base_channels=4",
            ],
            "iteration:1",
            marks=_sigterm("during `segzoo reproduce`'s training", "parent and child closed KILLED; the same command completes"),
        ),
        pytest.param(
            [
                "tune",
                "--bundle",
                str(BUNDLES / "frem"),
                "--space",
                "B:int:1:16",
                "--epochs",
                "1",
                "--study",
                "s",
                "--trials",
                "1",
                *(
                    a
                    for o in [
                        "train_hook=frem",
                        "synthetic#num_images=6",
                        "synthetic#size=32",
                        "patch_size=[32,32]",
                        "batch_size=2",
                        "arch_params#base_channels=4",
                    ]
                    for a in ("--override", o)
                ),
            ],
            "iteration:1",
            marks=_sigterm("during a `segzoo tune` trial", "study and trial runs closed KILLED; the same command completes"),
        ),
    ],
)
def test_a_sigterm_in_a_command_closes_every_run_and_the_same_command_completes(
    tmp_path: Path, command: list[str], point: str
) -> None:
    out = "--output-dir" if command[0] == "tune" else "--output"
    argv = ["-m", "segzoo", *command, out, str(tmp_path / "out")]
    said = _stopped(_run(tmp_path, argv, fault=f"{point}:sigterm"), tmp_path)
    assert said.startswith(f"continue with the same `segzoo {command[0]}` command")
    _done(_run(tmp_path, argv), tmp_path)
