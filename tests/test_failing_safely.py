"""Bad input or a crash never costs a user their data or their run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import segzoo
from segzoo.engine import LastCheckpoint, NonFiniteLossError, StopOnNonFiniteLoss, load_checkpoint
from tests.conftest import BUNDLES, TINY, hostile

TRAIN = str(BUNDLES / "pyconvunet" / "configs" / "train.json")
SMALL_NET = ["--arch", "unet", "--arch_params", "{'base_channels': 4}"]


def _epochs_done(path: Path) -> int:
    state = torch.load(path, weights_only=True)["trainer"]
    return state["iteration"] // state["epoch_length"]


def test_resume_without_an_interrupted_run_says_so(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", TRAIN, "--resume", "true"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "segzoo: error: --resume true: there is no run under runs/pyconvunet; no run there can be resumed: "
        "start a new training without --resume")


@hostile(
    "faults",
    "NaN loss in epoch 2",
    "stops naming epoch and iteration; last.pt keeps epoch 1",
    "training loss became nan at epoch 2, iteration 2 ... continue this run with --resume RUN_DIR",
)
def test_a_nan_loss_stops_training_naming_epoch_and_iteration_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    from monai.engines import SupervisedTrainer

    torch.manual_seed(0)
    network = torch.nn.Conv2d(1, 1, 3, padding=1)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    data = [{"image": torch.randn(1, 1, 8, 8), "label": torch.rand(1, 1, 8, 8)} for _ in range(3)]

    def loss_that_breaks(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(pred, label)
        return loss * float("nan") if trainer.state.epoch == 2 and trainer.state.iteration == 5 else loss

    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=3,
        train_data_loader=data,
        network=network,
        optimizer=optimizer,
        loss_function=loss_that_breaks,
        train_handlers=[LastCheckpoint(str(tmp_path), network, optimizer), StopOnNonFiniteLoss(str(tmp_path))],
    )
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 2, iteration 2 .*last.pt \(epoch "
                                                 rf"1\).*--resume {tmp_path}$"):
        trainer.run()
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert _epochs_done(tmp_path / "last.pt") == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_the_last_checkpoint_is_written_in_the_background_and_complete_when_training_ends(tmp_path: Path) -> None:
    from monai.engines import SupervisedTrainer

    torch.manual_seed(0)
    network = torch.nn.Conv2d(1, 1, 3, padding=1)
    optimizer = torch.optim.Adam(network.parameters())
    data = [{"image": torch.randn(1, 1, 8, 8), "label": torch.rand(1, 1, 8, 8)} for _ in range(2)]
    checkpoint = LastCheckpoint(str(tmp_path), network, optimizer)
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=3, train_data_loader=data, network=network,
                                optimizer=optimizer, loss_function=torch.nn.functional.mse_loss, train_handlers=[checkpoint])
    trainer.run()
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert _epochs_done(tmp_path / "last.pt") == 3
    torch.testing.assert_close(saved["model"]["weight"], network.weight.detach())  # the final weights, not a stale snapshot
    assert not list(tmp_path.glob("*.tmp"))


@hostile(
    "faults",
    "disk full / unwritable run folder when the first last.pt is written",
    "training stops naming the file; says there is nothing to resume (there is no last.pt)",
    "could not write the checkpoint .../last.pt: ... then start the training again (no epoch was saved, "
    "so there is nothing to resume)",
)
def test_a_checkpoint_that_cannot_be_written_stops_training_naming_the_file(tmp_path: Path) -> None:
    from monai.engines import SupervisedTrainer

    network = torch.nn.Conv2d(1, 1, 3, padding=1)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    (tmp_path / "last.pt").mkdir()  # a folder where the checkpoint goes: the rename onto it fails
    data = [{"image": torch.randn(1, 1, 8, 8), "label": torch.rand(1, 1, 8, 8)}]
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=2, train_data_loader=data, network=network,
                                optimizer=optimizer, loss_function=torch.nn.functional.mse_loss,
                                train_handlers=[LastCheckpoint(str(tmp_path), network, optimizer)])
    with pytest.raises(segzoo.SegzooError, match=f"could not write the checkpoint {tmp_path / 'last.pt'}.*nothing to resume"):
        trainer.run()


@hostile("data", "empty dataset folder", "exit before training, no run folder", ".../train/images holds no images")
def test_an_empty_dataset_folder_stops_before_training_naming_it(tmp_path: Path) -> None:
    (tmp_path / "data" / "train" / "images").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", TRAIN, "--dataset_dir",
                           str(tmp_path / "data")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"{tmp_path / 'data' / 'train' / 'images'} holds no images" in proc.stderr
    assert not (tmp_path / "runs").exists()


@hostile(
    "config",
    "`--arch_params \"{'base_channels': 'wide'}\"`",
    "refused before building, naming the config key",
    "config key 'arch_params': invalid parameters for architecture 'unet' ... 'base_channels': got 'wide'",
)
def test_a_wrong_parameter_type_names_the_config_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            TRAIN,
            "--arch",
            "unet",
            "--arch_params",
            "{'base_channels': 'wide'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "config key 'arch_params': invalid parameters for architecture 'unet'" in proc.stderr
    assert "'base_channels': got 'wide'" in proc.stderr


@hostile(
    "CLI",
    "evaluate with a checkpoint of another architecture/class count",
    "refused naming both",
    "checkpoint ... was trained as unet (preset None, out_channels 1) and does not fit the network asked for",
)
def test_a_checkpoint_of_another_architecture_is_refused_naming_both(tmp_path: Path) -> None:
    unet = segzoo.create_model("unet", base_channels=4, in_channels=1)
    torch.save(unet.state_dict(), tmp_path / "model.pt")
    (tmp_path / "components.json").write_text(json.dumps({"architecture": {"name": "unet", "preset": None, "out_channels": 1}}))
    other = segzoo.create_model("unet", base_channels=4, in_channels=1, out_channels=3)
    with pytest.raises(segzoo.SegzooError, match=r"trained as unet \(preset None, out_channels 1\) "
                                                 r".* asked for, unet \(out_channels 3\)"):
        load_checkpoint(other, tmp_path / "model.pt", expected={"name": "unet", "out_channels": 3})
    assert load_checkpoint(segzoo.create_model("unet", base_channels=4, in_channels=1), tmp_path / "model.pt") is not None


@hostile(
    "MLflow",
    "MLFLOW_TRACKING_URI of a server that is down",
    "exit before training, nothing written",
    "cannot reach the MLflow tracking store at http://127.0.0.1:9",
)
def test_an_unreachable_tracking_server_stops_before_training_naming_the_uri(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", TRAIN, *TINY, *SMALL_NET],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert proc.returncode != 0
    assert "cannot reach the MLflow tracking store at http://127.0.0.1:9" in proc.stderr
    assert not list(tmp_path.glob("runs/pyconvunet/*/*.pt"))


@pytest.mark.slow
@hostile(
    "MLflow",
    "tracking server that goes away mid-run",
    "one warning; training, checkpoints and history.json go on",
    "MLflow at ... failed while logging metrics ...; training continues without tracking",
)
def test_a_tracking_server_that_goes_away_costs_a_warning_not_the_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str
) -> None:
    from mlflow.tracking import MlflowClient
    from monai.bundle import run

    calls = {"n": 0}
    real_log_batch = MlflowClient.log_batch

    def flaky_log_batch(self, run_id, metrics=(), *args, **kwargs):
        calls["n"] += bool(metrics)
        if calls["n"] > 1:
            raise ConnectionError("server went away")
        return real_log_batch(self, run_id, metrics, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", flaky_log_batch)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run("training", config_file=TRAIN, epochs=3, arch="unet", arch_params={"base_channels": 4},
            synthetic={"name": "synthetic_cells", "num_images": 6, "size": 64, "seed": 0}, patch_size=[64, 64], batch_size=2)
    assert any("server went away" in str(w.message) and "training continues" in str(w.message) for w in caught)
    (run_dir,) = tmp_path.glob("runs/pyconvunet/*")
    assert _epochs_done(run_dir / "last.pt") == 3
    assert (run_dir / "model.pt").is_file() and len(
        json.loads((run_dir / "history.json").read_text())["val_miou_with_background"]
    ) == 3
