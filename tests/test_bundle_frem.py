"""The FREM bundle: every comparison row builds, deep supervision trains and evaluates, ssTEM gray-code labels load."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

import segzoo
from segzoo.errors import SegzooError
from segzoo_frem.data import TEM_4CLASS, label_mapping
from segzoo_frem.synthetic import CLASS_NAMES, synthetic_em
from tests.conftest import BUNDLES, run_bundle

CONFIGS = BUNDLES / "frem" / "configs"
SMALL = {"arch_params#base_channels": 8, "synthetic#num_images": 4, "synthetic#size": 64, "patch_size": [64, 64]}
# The paper's rows (Tables 1-3) as the overrides docs/papers/frem.md lists.
ROWS = {
    "baseline": {},
    "without_deep_layers": {"preset": "without_deep_layers"},
    "supervision": {"preset": "supervision", "loss": "deep_supervision", "lambda": 0.2781},
    "dropout": {"preset": "dropout_drosophila"},
    "frem": {"train_hook": "frem", "B": 8, "X": 250.0},
    "frem_fixed": {"train_hook": "frem", "B": 10, "X": 10000.0, "mode": "fixed"},
}
GRAY_CODES = sorted(TEM_4CLASS)


def parsed(config: str, **overrides: object):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / config))
    parser.update({**SMALL, **overrides})
    return parser


def test_metadata_and_layout() -> None:
    for name in ("metadata.json", "train.json", "evaluate.json", "inference.json", "logging.conf"):
        assert (CONFIGS / name).is_file(), name
    assert (BUNDLES / "frem" / "docs" / "README.md").is_file()
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == len(CLASS_NAMES) == 4


@pytest.mark.parametrize("row", ROWS)
def test_every_paper_row_builds_and_takes_a_training_step(row: str) -> None:
    torch.manual_seed(0)
    parser = parsed("train.json", **ROWS[row])
    network, loss = parser.get_parsed_content("network"), parser.get_parsed_content("loss_function")
    hook = parser.get_parsed_content("train#hook")
    assert (hook is not None) == ("train_hook" in ROWS[row])
    if hook is not None:
        hook.attach(network)
    x, y = torch.rand(2, 1, 64, 64), torch.randint(0, 4, (2, 1, 64, 64)).float()
    network.train()
    out = network(x)
    assert isinstance(out, list) == (row == "supervision")  # deep supervision: [main, aux] in training
    assert torch.isfinite(loss(out, y))
    network.eval()
    with torch.no_grad():
        assert network(x).shape == (2, 4, 64, 64)  # evaluation: one tensor, every row
    metrics = parser.get_parsed_content("validate#metric_handlers")
    assert list(metrics) == ["val_miou_with_background", *(f"val_iou_{name}" for name in CLASS_NAMES)]


def test_synthetic_em_is_seeded_and_has_the_four_classes() -> None:
    first, again = synthetic_em(2, 96, seed=3), synthetic_em(2, 96, seed=3)
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(first, again))
    assert set(np.unique(first[0]["label"])) == {0, 1, 2, 3}
    assert segzoo.get("dataset", "synthetic_em").plugin == "frem"


def write_tem_slices(root: Path, count: int = 5, size: int = 128) -> np.ndarray:
    """ssTEM-format files: ``NN.tif`` raw slices and ``NN.png`` gray-code labels; returns the first label."""
    rng = np.random.default_rng(0)
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "labels").mkdir(parents=True)
    first = None
    for i in range(count):
        codes = np.asarray(GRAY_CODES, dtype=np.uint8)[rng.integers(0, len(GRAY_CODES), (size // 8, size // 8))]
        gray = np.kron(codes, np.ones((8, 8), dtype=np.uint8))  # 8x8 blocks, so classes form regions
        raw = np.clip(gray.astype(float) + rng.normal(0, 20, gray.shape), 0, 255).astype(np.uint8)
        tifffile.imwrite(root / "train" / "images" / f"{i:02d}.tif", raw)
        Image.fromarray(gray).save(root / "train" / "labels" / f"{i:02d}.png")
        first = gray if first is None else first
    return first


def test_tem_gray_codes_map_to_the_papers_four_classes(tmp_path: Path) -> None:
    gray = write_tem_slices(tmp_path, count=2)
    items = parsed("train.json", dataset_dir=str(tmp_path), label_mapping_name="tem_4class").get_parsed_content("items")
    expected = np.vectorize(TEM_4CLASS.get)(gray)
    assert np.array_equal(items[0]["label"][0], expected)
    assert {0: "background", 1: "membrane", 2: "mitochondria", 3: "synapse"} == dict(enumerate(CLASS_NAMES))
    assert expected[gray == 32].max() == 1 and expected[gray == 159].max() == 0 and expected[gray == 223].min() == 3
    with pytest.raises(SegzooError, match="tem_4class"):
        label_mapping("tem")


@pytest.mark.slow
def test_supervision_row_trains_on_tem_files_then_evaluates_and_segments_whole_images(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from monai.bundle import run

    data = tmp_path / "tem"
    write_tem_slices(data)
    row = [
        "--preset",
        "supervision",
        "--loss",
        "deep_supervision",
        "--lambda",
        "0.3257",
        "--arch_params#base_channels",
        "8",
        "--patch_size",
        "[64,64]",
    ]
    run_bundle(
        [
            "run",
            "training",
            "--config_file",
            str(CONFIGS / "train.json"),
            "--epochs",
            "1",
            "--batch_size",
            "2",
            "--dataset_dir",
            str(data),
            "--label_mapping_name",
            "tem_4class",
            *row,
        ],
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    (run_dir,) = (tmp_path / "runs" / "frem").iterdir()
    client = MlflowClient()  # the session's store: creating a fresh one costs seconds
    (trained,) = client.search_runs(
        [client.get_experiment_by_name("frem").experiment_id], filter_string=f"tags.mlflow.runName = '{run_dir.name}'"
    )
    assert trained.data.params["loss"] == "deep_supervision" and trained.data.params["loss.aux_weight"] == "0.3257"
    assert trained.data.params["dataset.label_mapping"] == "tem_4class"
    assert {"val_miou_with_background", *(f"val_iou_{name}" for name in CLASS_NAMES)} <= set(trained.data.metrics)

    # no --preset/--arch_params: the network is rebuilt from the run; the data keys are training's, as trained
    shared = {"patch_size": [64, 64], "dataset_dir": str(data), "runs_dir": str(tmp_path / "runs" / "frem")}
    run("evaluating", config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")], label_mapping_name="tem_4class",
        **shared)
    rows = list(csv.DictReader((run_dir / "eval" / "per_image.csv").read_text().splitlines()))
    assert len(rows) == 1 and set(rows[0]) == {"image", "miou_with_background", *(f"iou_{name}" for name in CLASS_NAMES)}

    masks = tmp_path / "masks"
    run("inference", config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "inference.json")],
        input_dir=str(data / "train" / "images"),
        predictions_dir=str(masks), **shared)
    predicted = tifffile.imread(masks / "00.tif")  # TIFF in, TIFF out
    assert predicted.shape == (128, 128) and set(np.unique(predicted)) <= {0, 1, 2, 3}


def test_a_mistyped_row_override_is_refused_naming_the_key() -> None:
    from segzoo.engine import ConfigError, check_overrides

    argv = ["run", "training", "--config_file", str(CONFIGS / "train.json"), "--preset", "supervision", "--lamda", "0.3"]
    with pytest.raises(ConfigError, match="--lambda"):
        check_overrides(argv)
    check_overrides([*argv[:-2], "--lambda", "0.3", "--arch_params#base_channels", "8"])
