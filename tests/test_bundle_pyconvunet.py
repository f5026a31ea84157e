"""The PyConvU-Net bundle end to end: the README's command, MLflow logging, evaluate, inference, ISBI 2012, gloo."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import BUNDLES, ISBI, ROOT, TINY, TINY_DATA, overlay, run_bundle

CONFIGS = BUNDLES / "pyconvunet" / "configs"


def readme_training_command() -> list[str]:
    """The training command exactly as README's Quick start prints it, as arguments after ``python -m monai.bundle``."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"python -m monai\.bundle (run training --config_file \S+)", text)
    assert match, "README.md must show `python -m monai.bundle run training --config_file ...`"
    return match.group(1).split()


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_metadata_has_every_field_the_bundle_spec_requires() -> None:
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for field in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
                  "task", "description", "authors", "copyright", "network_data_format"):
        assert meta.get(field), f"metadata.json lacks {field}"
    assert meta["version"] in meta["changelog"]
    image = meta["network_data_format"]["inputs"]["image"]
    for key in ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data", "channel_def"):
        assert key in image
    assert "pred" in meta["network_data_format"]["outputs"]


def test_bundle_layout_is_complete() -> None:
    for name in ("metadata.json", "train.json", "evaluate.json", "inference.json", "multi_gpu_train.json", "logging.conf"):
        assert (CONFIGS / name).is_file(), name
    assert (BUNDLES / "pyconvunet" / "docs" / "README.md").is_file()


def test_verify_net_in_out_passes() -> None:
    from monai.bundle import verify_net_in_out

    verify_net_in_out(
        net_id="network_def", meta_file=str(CONFIGS / "metadata.json"), config_file=str(CONFIGS / "train.json"), n=2
    )


def test_swapping_the_architecture_is_one_override() -> None:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"arch": "unet"})
    assert parser.get_parsed_content("network_def").name == "U-Net"
    assert "training" in parser and "run" in parser


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two epochs of the README's exact command on tiny synthetic data, in a scratch folder."""
    cwd = tmp_path_factory.mktemp("train")
    (cwd / "bundles").symlink_to(BUNDLES)  # the README's relative path works here, and outputs stay out of the checkout
    uri = f"sqlite:///{cwd}/mlflow.db"
    proc = run_bundle([*readme_training_command(), "--epochs", "2", *TINY], cwd=cwd, env={"MLFLOW_TRACKING_URI": uri})
    (run_dir,) = (cwd / "runs" / "pyconvunet").iterdir()
    return {"cwd": cwd, "uri": uri, "run_dir": run_dir, "log": proc.stdout + proc.stderr}


def test_readme_command_trains_with_a_progress_bar(trained: dict) -> None:
    assert "Epoch [2/2]" in trained["log"]
    for name in ("model.pt", "last.pt", "curves.png", "predictions.png", "history.json"):
        assert (trained["run_dir"] / name).is_file(), name


def test_training_run_is_logged_to_mlflow(trained: dict) -> None:
    client = mlflow_client(trained["uri"])
    experiment = client.get_experiment_by_name("pyconvunet")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    for metric in ("train_loss", "val_miou_with_background", "val_dice", "val_foreground_iou"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1, 2], metric
    params = run.data.params
    assert params["architecture"] == "pyconvunet" and params["architecture.preset"] == "paper"
    assert params["loss"] == "dice_bce" and params["config.epochs"] == "2"
    assert run.data.tags["segzoo.plugin.pyconvunet"] and run.data.tags["mlflow.source.git.commit"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "config")
    }
    assert {"model.pt", "curves.png", "predictions.png", "config/resolved_config.json"} <= artifacts
    # the store is one folder: artifacts beside mlflow.db, not in ./mlruns of wherever the run started
    assert run.info.artifact_uri.startswith((trained["cwd"] / "mlruns").as_uri())


def test_a_sqlite_store_keeps_its_artifacts_beside_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow would put them in ./mlruns of whatever folder the run started from (the checkout, for in-process tests)."""
    from segzoo.tracking.client import artifact_location, get_or_create_experiment

    (tmp_path / "store").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    client = mlflow_client(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    experiment = client.get_experiment(get_or_create_experiment(client, "pyconvunet"))
    assert experiment.artifact_location == (tmp_path / "store" / "mlruns").as_uri()
    assert get_or_create_experiment(client, "pyconvunet") == experiment.experiment_id
    assert not (tmp_path / "elsewhere" / "mlruns").exists()
    assert artifact_location("http://tracking.example:5000") is None


def test_evaluate_writes_per_image_and_mean_csv(trained: dict) -> None:
    run_bundle(["run", "evaluating", "--config_file", overlay(CONFIGS, "evaluate.json"), *TINY_DATA], cwd=trained["cwd"],
               env={"MLFLOW_TRACKING_URI": trained["uri"]})
    eval_dir = trained["run_dir"] / "eval"
    rows = list(csv.DictReader(open(eval_dir / "per_image.csv")))
    # the test part, the default: ceil(20% of 6 images), as scikit-learn's train_test_split draws it
    assert len(rows) == 2 and set(rows[0]) == {"image", "miou_with_background", "dice", "foreground_iou"}
    summary = {r["metric"]: float(r["mean"]) for r in csv.DictReader(open(eval_dir / "summary.csv"))}
    mean = sum(float(row["miou_with_background"]) for row in rows) / len(rows)
    assert summary["miou_with_background"] == pytest.approx(mean, abs=1e-5)
    runs = mlflow_client(trained["uri"]).search_runs(
        [mlflow_client(trained["uri"]).get_experiment_by_name("pyconvunet").experiment_id],
        filter_string="tags.mlflow.runName LIKE 'evaluate-%'",
    )
    assert runs and "miou_with_background" in runs[0].data.metrics


def test_inference_writes_a_mask_per_image_with_sliding_windows(trained: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, shape in (("wide", (80, 150)), ("small", (40, 40))):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(tmp_path / f"{name}.png")
    out = tmp_path / "masks"
    run_bundle(["run", "inference", "--config_file", overlay(CONFIGS, "inference.json"), "--input_dir", str(tmp_path),
                "--predictions_dir", str(out)], cwd=trained["cwd"])  # the window: the training's patch, recorded with the run
    for name, shape in (("wide", (80, 150)), ("small", (40, 40))):
        mask = np.asarray(Image.open(out / f"{name}.png"))
        assert mask.shape == shape and set(np.unique(mask)) <= {0, 255}


@pytest.mark.slow
def test_isbi_2012_smoke_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_bundle(["run", "training", "--config_file", str(CONFIGS / "train.json"), "--dataset_dir", str(ISBI), "--epochs", "1",
                "--patch_size", "[128,128]", "--batch_size", "4"], cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
    client = mlflow_client(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("pyconvunet").experiment_id])
    assert 0.0 < run.data.metrics["val_dice"] <= 1.0
    assert run.data.params["dataset"] == "isbi2012"  # the dataset is named after its folder


@pytest.mark.slow
def test_multi_process_training_with_gloo(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    configs = f"['{CONFIGS / 'train.json'}','{CONFIGS / 'multi_gpu_train.json'}']"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29533",
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            configs,
            "--epochs",
            "1",
            *TINY,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    (run_dir,) = (tmp_path / "runs" / "pyconvunet").iterdir()
    assert (run_dir / "model.pt").is_file() and (run_dir / "last.pt").is_file()
    client = mlflow_client(uri)
    runs = client.search_runs([client.get_experiment_by_name("pyconvunet").experiment_id])
    assert len(runs) == 1 and "val_miou_with_background" in runs[0].data.metrics  # only rank 0 logs


def test_a_mistyped_override_stops_before_training_naming_the_closest_key(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(CONFIGS / "train.json"),
                           "--epoch", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "--epoch: the config has no key 'epoch' under the top level. Did you mean: --epochs?" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_an_unknown_component_names_the_config_key(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(CONFIGS / "train.json"),
                           "--loss", "dice_bse"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "config key 'loss' = 'dice_bse': no loss named 'dice_bse'. Did you mean: dice_bce" in proc.stderr


@pytest.mark.parametrize("bundle", ["pyconvunet", "frem", "munet"])
def test_training_batches_reach_the_network_as_plain_tensors(
    bundle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MONAI's MetaTensor bookkeeping on every network operation made training steps 3-19% slower, and the
    transforms 4x slower; the training configs switch it off when they initialize."""
    import torch
    from monai.bundle import ConfigWorkflow
    from monai.data import DataLoader, ThreadDataLoader, get_track_meta, set_track_meta

    import segzoo.engine

    monkeypatch.chdir(tmp_path)
    workflow = ConfigWorkflow(config_file=str(BUNDLES / bundle / "configs" / "train.json"), workflow_type="train",
                              **{"synthetic#num_images": 6})
    try:
        workflow.initialize()
        assert not get_track_meta()
        loader = workflow.parser.get_parsed_content("train#dataloader")
        batch = next(iter(loader))
    finally:
        set_track_meta(True)  # process-wide: leave it as other tests expect
    assert type(batch["image"]) is torch.Tensor and type(batch["label"]) is torch.Tensor
    # inline on CPU (a loader thread competes with the convolutions for the cores), threaded on a GPU
    assert type(loader) is DataLoader and segzoo.engine.train_loader_class("cuda") is ThreadDataLoader


def test_switches_accept_lowercase_text_and_refuse_anything_else() -> None:
    """``--amp false`` arrives from the command line as the string 'false', which Python would count as true."""
    import torch

    from segzoo.engine import amp_kwargs, as_flag
    from segzoo.errors import SegzooError

    assert as_flag("false", "amp") is False and as_flag("True", "amp") is True and as_flag(False) is False
    with pytest.raises(SegzooError, match="--amp expects true or false, got 'flase'"):
        as_flag("flase", "amp")
    assert amp_kwargs("bfloat16") == {"dtype": torch.bfloat16}
    with pytest.raises(SegzooError, match="--amp_dtype expects one of float16, bfloat16, got 'fp8'"):
        amp_kwargs("fp8")


# -- using the trained model without segzoo (issue 14) ----------------------------------------------
def without_segzoo(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python in which ``import segzoo`` (and any plugin) fails, as on a machine without them."""
    blocker = ("import sys; sys.modules.update(dict.fromkeys("
               "['segzoo', 'segzoo_pyconvunet', 'segzoo_baselines', 'segzoo_frem', 'segzoo_munet']))\n")
    env = {**os.environ, **(env or {})}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", blocker + code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def test_the_logged_mlflow_model_predicts_masks_without_segzoo(trained: dict, tmp_path: Path) -> None:
    run_id = (trained["run_dir"] / "mlflow_run_id.txt").read_text().strip()
    proc = without_segzoo(
        "import mlflow, numpy as np\n"
        f"model = mlflow.pyfunc.load_model('runs:/{run_id}/model')\n"
        "rng = np.random.default_rng(0)\n"
        "for images in (rng.random((2, 1, 70, 90), dtype=np.float32), (rng.random((2, 70, 90)) * 255).astype(np.uint8),\n"
        "               (rng.random((1, 70, 90)) * 3000 - 1000).astype(np.int16), (rng.random((1, 70, 90)) "
        "* 65535).astype(np.uint16)):\n"
        "    masks = model.predict(images)\n"
        "    print('masks', masks.shape[1:], masks.dtype, sorted(set(np.unique(masks).tolist()) - {0, 1}))\n",
        cwd=tmp_path, env={"MLFLOW_TRACKING_URI": trained["uri"]})
    # (N, C, H, W) and (N, H, W) of each pixel type: one 0/1 mask per image, at the image's size
    assert proc.stdout.count("masks (70, 90) uint8 []") == 4, proc.stdout


def test_each_training_logs_an_mlflow_3_model_linked_to_its_run_and_metrics(trained: dict) -> None:
    client = mlflow_client(trained["uri"])
    run_id = (trained["run_dir"] / "mlflow_run_id.txt").read_text().strip()
    run = client.get_run(run_id)
    (model,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])  # the logged_models table
    assert model.name == "model" and model.source_run_id == run_id
    assert [m.model_id for m in run.outputs.model_outputs] == [model.model_id]  # the runs table's Models column
    assert {m.key for m in model.metrics} >= {"val_foreground_iou", "val_dice"}  # the last epoch's validation metrics
    assert "MLflow model models:/" in trained["log"]
    assert f"run folder {trained['run_dir'].relative_to(trained['cwd'])}" in trained["log"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_served_model_answers_a_uint8_image_with_segzoo_inferences_mask(trained: dict, tmp_path: Path) -> None:
    """``mlflow models serve`` (local environment, 127.0.0.1) on the training's logged model, fed
    ``np.array(Image.open(png))[None]``."""
    import time
    import urllib.request

    pixels = (np.random.default_rng(3).random((70, 90)) * 255).astype(np.uint8)
    (tmp_path / "images").mkdir()
    Image.fromarray(pixels).save(tmp_path / "images" / "x.png")
    run_bundle(["run", "inference", "--config_file", overlay(CONFIGS, "inference.json"), "--input_dir", str(tmp_path / "images"),
                "--predictions_dir", str(tmp_path / "masks")], cwd=trained["cwd"])
    expected = (np.asarray(Image.open(tmp_path / "masks" / "x.png")) > 0).astype(np.uint8)

    client = mlflow_client(trained["uri"])
    run_id = (trained["run_dir"] / "mlflow_run_id.txt").read_text().strip()
    (model,) = client.search_logged_models(experiment_ids=[client.get_run(run_id).info.experiment_id])
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{model.model_id}",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={**os.environ, "MLFLOW_TRACKING_URI": trained["uri"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        request = json.dumps({"inputs": np.array(Image.open(tmp_path / "images" / "x.png"))[None].tolist(),
                              "params": {"dtype": "uint8"}}).encode()
        deadline = time.monotonic() + 180
        while True:
            try:
                reply = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/invocations", request,
                                                                      {"Content-Type": "application/json"}), timeout=60)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow models serve did not answer"
                time.sleep(1)
        served = np.array(json.loads(reply.read())["predictions"], dtype=np.uint8)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    assert served.shape == (1, 70, 90)
    assert np.array_equal(served[0], expected)


def test_a_packed_bundle_runs_inference_from_any_folder_with_monai_alone(trained: dict, tmp_path: Path) -> None:
    from segzoo.cli import main

    packed = tmp_path / "pyconvunet_packed"
    assert main(["pack", str(trained["run_dir"]), "--bundle", str(BUNDLES / "pyconvunet"), "--output", str(packed)]) == 0
    for name in ("configs/inference.json", "configs/metadata.json", "models/model.pt", "models/model.ts", "docs/README.md",
                 "scripts/processing.py"):
        assert (packed / name).is_file(), name
    from monai.bundle import verify_metadata

    meta = json.loads((packed / "configs" / "metadata.json").read_text())
    # shipped: offline
    verify_metadata(meta_file=str(packed / "configs" / "metadata.json"), filepath=str(packed / "configs" / meta["schema"]))
    assert "eval_metrics" not in meta and "sliding window" in meta["description"]
    without_segzoo(
        "import runpy, sys\n"
        "sys.argv = ['monai.bundle', 'run', '--config_file', 'configs/inference.json']\n"
        "runpy.run_module('monai.bundle', run_name='__main__')\n",
        cwd=packed)
    samples = sorted(p.name for p in (packed / "samples").glob("*.png"))
    masks = sorted((packed / "predictions").glob("*.png"))
    assert [p.name for p in masks] == samples and samples  # named as segzoo inference names them
    assert set(np.unique(np.asarray(Image.open(masks[0])))) <= {0, 255}
