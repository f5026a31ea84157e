"""What MLflow's UI reads from a run: dataset digests, experiment kind, short parameters, descriptions, system metrics."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from segzoo.data import synthetic_cells
from segzoo.engine.mlflow_tracker import get_or_create_experiment
from segzoo.tracking.datasets import content_digest, dataset_origin, evaluation_context
from segzoo.tracking.metadata import describe, key_params, start_system_metrics, ui_link


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for this module's tests (creating one costs seconds); each test uses its own experiments."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_digest_follows_the_contents_not_the_objects() -> None:
    items = synthetic_cells(num_images=3, size=32, seed=0)
    assert content_digest(items) == content_digest(synthetic_cells(num_images=3, size=32, seed=0))
    edited = [dict(item) for item in items]
    edited[1]["label"] = edited[1]["label"].copy()
    edited[1]["label"][0, 0, 0] = 1 - edited[1]["label"][0, 0, 0]  # one mask pixel
    assert content_digest(edited) != content_digest(items)
    assert content_digest(items[::-1]) != content_digest(items)
    assert content_digest(synthetic_cells(num_images=3, size=32, seed=1)) != content_digest(items)


def test_dataset_is_named_after_its_folder_or_generator(tmp_path: Path) -> None:
    name, source = dataset_origin(str(tmp_path / "isbi2012"), {"name": "synthetic_cells", "seed": 3})
    assert name == "isbi2012" and source._get_source_type() == "local" and source.to_dict()["uri"].endswith("isbi2012")
    name, source = dataset_origin(None, {"name": "synthetic_cells", "num_images": 6, "seed": 3})
    assert name == "synthetic_cells" and source.to_dict() == {"generator": "synthetic_cells", "num_images": 6, "seed": 3}
    assert [evaluation_context("train", "val"), evaluation_context("test", "all"), evaluation_context("train", "all")] == [
        "validation", "test", "training"]


def test_short_parameters_are_the_top_level_literals_without_plumbing() -> None:
    config = {"arch": "se_unet", "preset": "baseline", "B": 8, "X": 250.0, "train_hook": None, "patch_size": [64, 64],
              "device": "$torch.device('cpu')", "items": "$segzoo.engine.load_items(...)", "runs_dir": "runs", "resume": False,
              "train": {"items": "@items"}, "imports": ["$import torch"], "_meta_": {"version": "0.1"}}
    assert key_params(config, "isbi2012") == {"architecture": "se_unet", "preset": "baseline", "B": "8", "X": "250.0",
                                              "train_hook": "None", "patch_size": "[64, 64]", "dataset": "isbi2012"}


def test_descriptions_say_in_one_line_what_ran() -> None:
    config = {"arch": "pyconvunet", "preset": "paper", "epochs": 50, "recipe": "paper", "train_hook": None}
    assert describe(config, "isbi2012") == "pyconvunet [paper] on isbi2012, 50 epochs, recipe paper"
    hooked = {"arch": "se_unet", "epochs": 1, "train_hook": "frem"}
    assert describe(hooked, "synthetic_cells") == "se_unet on synthetic_cells, 1 epoch, train hook frem"
    assert describe(config, "isbi2012", evaluated="test") == "evaluation of pyconvunet [paper] on isbi2012 (test)"


def test_experiments_open_on_model_training_unless_a_user_chose_otherwise(store: str) -> None:
    mlflow = client(store)
    created = mlflow.get_experiment(get_or_create_experiment(mlflow, "pyconvunet"))
    assert created.tags["mlflow.experimentKind"] == "custom_model_development"
    older = mlflow.create_experiment("frem")  # made before segzoo tagged experiments
    assert get_or_create_experiment(mlflow, "frem") == older
    assert mlflow.get_experiment(older).tags["mlflow.experimentKind"] == "custom_model_development"
    chosen = mlflow.create_experiment("munet", tags={"mlflow.experimentKind": "genai_development"})
    assert get_or_create_experiment(mlflow, "munet") == chosen
    assert mlflow.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"


def test_printed_links_open_the_model_training_pages(store: str) -> None:
    """MLflow 3.17's UI picks GenAI or model-training pages from the link (or a switch the browser remembers)."""
    mlflow = client(store)
    experiment_id = get_or_create_experiment(mlflow, "links")
    run_id = mlflow.create_run(experiment_id).info.run_id
    page = f"#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
    assert ui_link(mlflow, run_id) == f"mlflow ui --backend-store-uri {store}, then http://127.0.0.1:5000/{page}"


def test_system_metrics_follow_mlflows_switch(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = store
    mlflow = client(uri)
    run_id = mlflow.create_run(get_or_create_experiment(mlflow, "system-metrics")).info.run_id
    assert start_system_metrics(run_id, uri) is None  # the suite switches it off (conftest)
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    monitor = start_system_metrics(run_id, uri)
    deadline = time.monotonic() + 10
    while not mlflow.get_run(run_id).data.metrics and time.monotonic() < deadline:
        time.sleep(0.05)
    monitor.finish()
    metrics = mlflow.get_run(run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics and metrics["system/system_memory_usage_megabytes"] > 0
    assert np.isfinite(metrics["system/cpu_utilization_percentage"])
