"""A group's shared ``mlflow server`` (PostgreSQL backend, proxied artifacts) on 127.0.0.1, started by the session fixture.

Against it a training (registering its model), an evaluation and a ``segzoo compare`` of two networks log their runs;
their artifacts come back through the server, and the links segzoo prints point to it. A server that is down or refuses
writes stops a training before its run folder exists, naming the server and the fix.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BUNDLES, TINY, TINY_DATA, hostile, overlay, run_bundle
from tests.services import MlflowServer, free_port

pytestmark = [pytest.mark.service, pytest.mark.slow]

B = BUNDLES / "pyconvunet" / "configs"
SMALL_NET = ["--arch", "unet", "--arch_params", "{'base_channels': 4}"]


def server_env(uri: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}


def printed_links(output: str) -> list[str]:
    return re.findall(r"MLflow [a-z]+(?: [\w-]+)?: (\S+)", output)


@pytest.fixture(scope="module")
def trained(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny training on the server, its model registered; then an evaluation of it."""
    work = tmp_path_factory.mktemp("group-train")
    train = run_bundle(["run", "training", "--config_file", str(B / "train.json"), *TINY, *SMALL_NET, "--epochs", "1",
                        "--register_as", "group-unet"], cwd=work, env=server_env(mlflow_server.uri))
    evaluate = run_bundle(["run", "evaluating", "--config_file", overlay(B, "evaluate.json"), *TINY_DATA],
                          cwd=work, env=server_env(mlflow_server.uri))
    (run_dir,) = (work / "runs" / "pyconvunet").iterdir()
    return {"work": work, "run_dir": run_dir, "train": train.stdout + train.stderr, "evaluate": evaluate.stdout + evaluate.stderr}


def test_a_training_logs_to_the_server_and_its_artifacts_come_back_through_it(
    mlflow_server: MlflowServer, trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run_id = (trained["run_dir"] / "mlflow_run_id.txt").read_text().strip()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied: served over HTTP
    assert "val_foreground_iou" in run.data.metrics
    for name in ("curves.png", "predictions.png", "model.pt"):
        local = Path(client.download_artifacts(run_id, name, str(tmp_path)))
        assert local.stat().st_size > 0 and local.read_bytes() == (trained["run_dir"] / name).read_bytes()
    # the artifacts live in the server's --artifacts-destination, not in an mlruns/ beside the training
    assert list(mlflow_server.artifacts.rglob("model.pt")) and not (trained["work"] / "mlruns").exists()
    assert not (trained["work"] / "mlflow.db").exists()
    # the registered model loads back through the server, as a user's script on another machine loads it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    (version,) = client.search_model_versions("name = 'group-unet'")
    assert version.run_id == run_id
    import mlflow.pyfunc

    (tmp_path / "model").mkdir()
    model = mlflow.pyfunc.load_model("models:/group-unet/1", dst_path=str(tmp_path / "model"))
    masks = model.predict(np.random.default_rng(0).random((1, 1, 64, 64), dtype=np.float32))
    assert masks.shape[-2:] == (64, 64)
    # every link printed is a page of that server
    links = printed_links(trained["train"])
    assert links and all(link.startswith(mlflow_server.uri + "/#/experiments/") for link in links), trained["train"][-2000:]
    assert f"/runs/{run_id}" in links[-1] and "mlflow ui" not in trained["train"]


def test_an_evaluation_logs_to_the_server_with_its_csv(mlflow_server: MlflowServer, trained: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.get_experiment_by_name("pyconvunet")
    (evaluation,) = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name LIKE 'evaluate-%'")
    assert evaluation.info.status == "FINISHED" and any(k.endswith("foreground_iou") for k in evaluation.data.metrics)
    names = [a.path for a in client.list_artifacts(evaluation.info.run_id)]
    assert names, "the evaluation logged no artifact"
    csvs = [n for n in names if n.endswith(".csv")] or [
        a.path for n in names for a in client.list_artifacts(evaluation.info.run_id, n) if a.path.endswith(".csv")
    ]
    assert csvs, names
    local = Path(client.download_artifacts(evaluation.info.run_id, csvs[0], str(tmp_path)))
    assert "foreground_iou" in local.read_text().splitlines()[0]
    links = printed_links(trained["evaluate"])
    assert links and all(link.startswith(mlflow_server.uri) for link in links)


def test_a_comparison_of_two_networks_logs_to_the_server_and_registers_the_winner(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    args = ["compare", "--bundle", str(BUNDLES / "pyconvunet"), "--archs", "unet,pyconvunet", "--epochs", "1", "--repeats", "1",
            "--panel_images", "2", "--output", str(tmp_path / "cmp"), "--register_winner", "group-winner",
            *(a for o in ("synthetic#num_images=6", "synthetic#size=64", "patch_size=[64,64]", "batch_size=2",
                          "arch_params={'base_channels': 4}") for a in ("--override", o))]
    proc = subprocess.run(
        [sys.executable, "-m", "segzoo", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **server_env(mlflow_server.uri)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    (link,) = [line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("MLflow comparison: ")]
    assert link.startswith(mlflow_server.uri + "/#/experiments/")
    parent_id = re.search(r"/runs/(\w+)", link).group(1)
    children = client.search_runs([client.get_run(parent_id).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert {"unet", "pyconvunet"} <= {c.data.params.get("architecture") for c in children}
    assert {"comparison.md", "comparison.csv"} <= {a.path for a in client.list_artifacts(parent_id)}
    table = Path(client.download_artifacts(parent_id, "comparison.csv", str(tmp_path / "dl"))).read_text()
    assert table == (tmp_path / "cmp" / "comparison.csv").read_text() and "pyconvunet" in table
    (version,) = client.search_model_versions("name = 'group-winner'")
    assert version.run_id in {c.info.run_id for c in children}


@hostile("MLflow", "MLFLOW_TRACKING_URI of a server that is down: no run folder left to count as the newest run",
         "exit before the run folder exists, naming the server and how to start it",
         "cannot reach the MLflow tracking store at http://127.0.0.1:PORT ... Start the server (`mlflow server ...`)")
def test_a_server_that_is_down_stops_a_training_before_its_run_folder_exists(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(B / "train.json"), *TINY, *SMALL_NET],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        f"cannot reach the MLflow tracking store at {uri}" in last and "mlflow server" in last and "nothing was trained" in last
    )
    assert not (tmp_path / "runs").exists()  # no run folder holding only settings.json, to count as "the newest run"


class RefusingWrites(http.server.BaseHTTPRequestHandler):
    """A tracking server whose user may not write: healthy, but every API call answers 403 as MLflow's auth app does."""

    def _refuse(self) -> None:
        if self.path == "/health":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")
            return
        body = json.dumps({"error_code": "PERMISSION_DENIED", "message": "Permission denied (read-only user)"}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingWrites)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@hostile("MLflow", "MLFLOW_TRACKING_URI of a server that refuses writes (403)",
         "exit before the run folder exists, naming the server and what to check",
         "the MLflow tracking server at ... answers but refused to write experiment 'pyconvunet' ...; nothing was trained")
def test_a_server_that_refuses_writes_stops_a_training_before_its_run_folder_exists(refusing_server: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(B / "train.json"), *TINY, *SMALL_NET],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "MLFLOW_TRACKING_URI": refusing_server},
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert f"the MLflow tracking server at {refusing_server} answers but refused to write experiment 'pyconvunet'" in last, (
        proc.stderr[-2000:]
    )
    assert "PERMISSION_DENIED" in last or "403" in last or "Permission denied" in last
    assert not (tmp_path / "runs").exists()
