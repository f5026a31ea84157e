"""The MUNet bundle: a 1-epoch multi-task run logged to MLflow, evaluate with an ensemble, and the data pieces
(class-balanced sampling, multi-scale batches, hard-example mining, the two-class synthetic lesions, CSV labels)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from segzoo.data import DataError
from segzoo_munet.data import balanced_sampler, labelled_folder, stratified_split, synthetic_lesions
from segzoo_munet.training import HardExampleMining, MultiScaleInferer, MultiTaskBatch
from tests.conftest import BUNDLES, run_bundle

CONFIGS = BUNDLES / "munet" / "configs"
# 8 images of 64x64, 4 per class (per class 2 train, 1 validation, 1 test), batches resized to 32 or 64, a small ResNet-50 MUNet
TINY_MODEL = [
    "--synthetic",
    "{'name': 'synthetic_lesions', 'num_images': 8, 'size': 64, 'seed': 0, 'malignant_fraction': 0.5}",
    "--sizes",
    "[32,64]",
    "--backbone",
    "resnet50",
    "--decoder_channels",
    "[32,16,16,8]",
]
TINY = [*TINY_MODEL, "--batch_size", "2"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_bundle_layout_and_metadata() -> None:
    for name in ("metadata.json", "train.json", "evaluate.json", "inference.json", "logging.conf"):
        assert (CONFIGS / name).is_file(), name
    assert (BUNDLES / "munet" / "docs" / "README.md").is_file()
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert {"pred", "cls_pred"} <= set(meta["network_data_format"]["outputs"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cwd = tmp_path_factory.mktemp("train")
    uri = f"sqlite:///{cwd}/mlflow.db"
    run_bundle(["run", "training", "--config_file", str(CONFIGS / "train.json"), "--epochs", "1", *TINY], cwd=cwd,
               env={"MLFLOW_TRACKING_URI": uri})
    (run_dir,) = (cwd / "runs" / "munet").iterdir()
    return {"cwd": cwd, "uri": uri, "run_dir": run_dir}


def test_one_epoch_logs_dice_and_auc_to_mlflow(trained: dict) -> None:
    from mlflow.tracking import MlflowClient

    assert (trained["run_dir"] / "model.pt").is_file() and (trained["run_dir"] / "last.pt").is_file()
    client = MlflowClient(tracking_uri=trained["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("munet").experiment_id])
    assert run.info.status == "FINISHED"
    for metric in ("train_loss", "val_dice", "val_auc", "val_sensitivity", "val_specificity", "val_accuracy", "val_score"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1], metric
    assert 0.0 <= run.data.metrics["val_dice"] <= 1.0 and 0.0 <= run.data.metrics["val_auc"] <= 1.0
    assert run.data.params["architecture"] == "munet" and run.data.params["loss"] == "munet"
    assert run.data.params["dataset"] == "synthetic_lesions" and run.data.params["hard_example_mining"] == "True"


def test_evaluate_an_ensemble_writes_per_image_csv(trained: dict) -> None:
    run_dir = trained["run_dir"]
    checkpoints = f"['{run_dir / 'model.pt'}','{run_dir / 'last.pt'}']"
    run_bundle(["run", "evaluating", "--config_file", str(CONFIGS / "evaluate.json"), *TINY_MODEL, "--checkpoints", checkpoints,
                "--ensemble_weights", "[0.5,0.5]"], cwd=trained["cwd"], env={"MLFLOW_TRACKING_URI": trained["uri"]})
    rows = read_csv(run_dir / "eval" / "per_image.csv")
    assert len(rows) == 2 and all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    classes = read_csv(run_dir / "eval" / "classes.csv")
    assert sorted(r["true_class"] for r in classes) == ["0", "1"]  # the stratified split validates on both classes
    assert all(abs(float(r["p0"]) + float(r["p1"]) - 1) < 1e-4 for r in classes)


def test_inference_writes_a_mask_and_a_class_per_image(trained: dict, tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90), dtype=np.uint8)).save(tmp_path / "scan.png")
    out = tmp_path / "out"
    run_bundle(["run", "inference", "--config_file", str(CONFIGS / "inference.json"), *TINY, "--input_dir", str(tmp_path),
                "--output_dir", str(out)], cwd=trained["cwd"])
    mask = np.asarray(Image.open(out / "scan.png"))
    assert mask.shape == (70, 90) and set(np.unique(mask)) <= {0, 255}  # any size: resized to each scale and back
    (row,) = read_csv(out / "classes.csv")
    assert row["image"] == "scan" and row["predicted_class"] in {"0", "1"}


def test_weighted_sampler_draws_the_minority_class_as_often_as_the_majority() -> None:
    items = [{"class": 1 if i < 3 else 0} for i in range(12)]  # 25% minority
    sampler = balanced_sampler(items, seed=0)
    draws = [items[i]["class"] for _ in range(300) for i in sampler]
    share = sum(draws) / len(draws)
    assert 0.45 < share < 0.55  # drawn twice as often as its 25% share


def test_multi_scale_batches_take_only_the_configured_sizes() -> None:
    batch = {"image": torch.rand(2, 1, 96, 96), "label": (torch.rand(2, 1, 96, 96) > 0.5).float(), "class": torch.tensor([0, 1])}
    prepare = MultiTaskBatch(sizes=[64, 96], seed=0)
    shapes = set()
    for _ in range(40):
        image, targets = prepare(batch)
        shapes.add(tuple(image.shape[2:]))
        assert targets["mask"].shape[2:] == image.shape[2:] and set(targets["mask"].unique().tolist()) <= {0.0, 1.0}
        assert targets["label"].tolist() == [0, 1]
    assert shapes == {(64, 64), (64, 96), (96, 64), (96, 96)}


def test_multi_scale_inference_averages_scales_back_to_the_input_size() -> None:
    seen = []

    def network(x: torch.Tensor) -> dict:
        seen.append(tuple(x.shape[2:]))
        return {"fused": torch.full((len(x), 1, *x.shape[2:]), x.shape[2] / 100), "logits": torch.zeros(len(x), 2)}

    out = MultiScaleInferer([64, 96])(torch.rand(1, 1, 70, 90), network)
    assert seen == [(64, 64), (96, 96)]
    assert out["fused"].shape == (1, 1, 70, 90) and torch.allclose(out["fused"], torch.tensor(0.8))
    assert torch.allclose(out["probabilities"], torch.tensor([[0.5, 0.5]]))


def test_hard_example_mining_oversamples_low_confidence_images() -> None:
    items = [{"class": c} for c in (0, 0, 1, 1)]
    sampler = balanced_sampler(items)
    miner = HardExampleMining(sampler, threshold=0.5, factor=3.0)
    logits = [torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0]), torch.tensor([0.0, 2.0]), torch.tensor([2.0, 0.0])]
    engine = SimpleNamespace(
        state=SimpleNamespace(
            batch=[{"index": i} for i in range(4)],
            output=[
                {"pred": {"logits": logit}, "label": {"label": torch.tensor(item["class"])}} for logit, item in zip(logits, items)
            ],
        )
    )
    miner.record(engine)
    miner.reweight(engine)
    assert sampler.weights.tolist() == pytest.approx([0.5, 1.5, 0.5, 1.5])  # images 1 and 3 were misclassified


def test_synthetic_lesions_are_seeded_imbalanced_and_differ_in_shape() -> None:
    items = synthetic_lesions(num_images=20, size=96, malignant_fraction=0.3, seed=3)
    assert [i["class"] for i in items] == [
        i["class"] for i in synthetic_lesions(num_images=20, size=96, malignant_fraction=0.3, seed=3)
    ]
    assert sum(i["class"] for i in items) == 6

    def compactness(mask: np.ndarray) -> float:  # perimeter^2 / area: lowest for a disc, high for spiculated outlines
        mask = mask[0] > 0
        return float((mask & ~ndimage.binary_erosion(mask)).sum() ** 2 / mask.sum())

    by_class = {c: [compactness(i["label"]) for i in items if i["class"] == c] for c in (0, 1)}
    assert min(by_class[1]) > max(by_class[0])
    val = stratified_split(items, "val", 0.2, 0)
    assert {i["class"] for i in val} == {0, 1} and [i["index"] for i in val] == list(range(len(val)))


def test_labelled_folder_reads_classes_from_csv(tmp_path: Path) -> None:
    for sub in ("images", "labels"):
        (tmp_path / "train" / sub).mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "train" / "images" / f"{name}.png")
        Image.fromarray(np.full((32, 32), 255, np.uint8)).save(tmp_path / "train" / "labels" / f"{name}.png")
    (tmp_path / "train" / "classes.csv").write_text("image,label\na.png,1\n")
    with pytest.raises(DataError, match="no class for 1 image"):
        labelled_folder(str(tmp_path))
    (tmp_path / "train" / "classes.csv").write_text("image,label\na.png,1\nb,0\n")
    assert [(i["name"], i["class"], float(i["label"].max())) for i in labelled_folder(str(tmp_path))] == [
        ("a", 1, 1.0),
        ("b", 0, 1.0),
    ]
