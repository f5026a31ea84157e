"""Shared fixtures: every test logs to a temporary MLflow store and writes outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "bundles"
ISBI = ROOT.parent / "shared" / "data" / "isbi2012"

# Set before anything imports mlflow, so no test can write mlflow.db or mlruns/ into the checkout.
_MLFLOW_DIR = tempfile.mkdtemp(prefix="segzoo-mlflow-")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_MLFLOW_DIR}/mlflow.db"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

TINY_DATA = ["--synthetic#num_images", "6", "--synthetic#size", "64", "--patch_size", "[64,64]"]
TINY = [*TINY_DATA, "--batch_size", "2"]


@pytest.fixture(scope="module")
def one_thread() -> None:
    """One intra-op thread for a module's tiny trainings: two on two shared cores run them many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh MLflow store for one test."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_MLFLOW_DIR}/mlflow.db"


def run_bundle(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m monai.bundle ...`` in ``cwd`` (outputs land in ``cwd/runs``); fails the test with the log on error."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"bundle run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc
