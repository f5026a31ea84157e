"""The bundle contract and the one in-process runner: ``segzoo compare`` and ``segzoo tune`` on every bundle, and a
bundle without a required key refused before anything trains, naming the key and the file."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from segzoo.bundle import contract as bundles
from segzoo.bundle.contract import PROPERTIES, Bundle, BundleContractError
from segzoo.bundle.validation import ConfigError
from segzoo.cli import main
from tests.conftest import BUNDLES

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny trainings run faster on one thread

# Tiny settings per bundle: a few 64x64 synthetic images, narrow networks, one epoch.
TINY = {
    "pyconvunet": {"archs": "unet", "overrides": ["synthetic#num_images=6", "synthetic#size=64", "patch_size=[64,64]",
                                                   "batch_size=2", "arch_params={'base_channels': 8}"],
                   "space": "learning_rate:float:0.0001:0.01:log", "metric": "val_miou_with_background"},
    "frem": {"archs": "se_unet", "overrides": ["synthetic#num_images=6", "synthetic#size=64", "patch_size=[64,64]",
                                               "batch_size=2", "arch_params#base_channels=8"],
             "space": "X:float:1:100", "metric": "val_miou_with_background"},
    "munet": {"archs": "munet", "overrides": ["synthetic#num_images=8", "synthetic#size=64", "sizes=[32,64]", "batch_size=2",
                                              "backbone=resnet50", "decoder_channels=[32,16,16,8]"],
              "space": "learning_rate:float:0.0001:0.01:log", "metric": "val_dice"},
}


def overrides(name: str) -> list[str]:
    return [a for o in TINY[name]["overrides"] for a in ("--override", o)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["frem", "munet"])  # pyconvunet: tests/test_compare.py
def test_compare_runs_on_every_bundle(name: str, tmp_path: Path, tracking_uri: str) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", "--bundle", str(BUNDLES / name), "--archs", TINY[name]["archs"], "--epochs", "1", "--repeats", "1",
                 "--panel_images", "1", "--output", str(out), *overrides(name)]) == 0
    (row,) = csv.DictReader((out / "comparison.csv").read_text().splitlines())
    assert row["architecture"] == TINY[name]["archs"] and float(row["params_m"]) > 0 and float(row["cpu_ms"]) > 0
    assert (out / "predictions.png").is_file() and (out / "curves.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pyconvunet", "munet"])  # frem: tests/test_tune.py
def test_tune_runs_on_every_bundle(name: str, tmp_path: Path, tracking_uri: str) -> None:
    out = tmp_path / "tune"
    assert main(["tune", "--bundle", str(BUNDLES / name), "--space", TINY[name]["space"], "--trials", "1", "--epochs", "1",
                 "--metric", TINY[name]["metric"], "--output_dir", str(out), *overrides(name)]) == 0
    best = json.loads((out / "best_override.json").read_text())
    assert set(TINY[name]["space"].split(":")[:1]) <= set(best)


def broken_bundle(tmp_path: Path, key: str) -> Path:
    """A copy of the pyconvunet bundle whose train.json lacks ``key`` (a top-level one)."""
    root = tmp_path / "broken"
    shutil.copytree(BUNDLES / "pyconvunet", root)
    config = root / "configs" / "train.json"
    data = json.loads(config.read_text())
    del data[key]
    config.write_text(json.dumps(data))
    return root


def test_a_bundle_without_a_required_key_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = broken_bundle(tmp_path, "parent_run_id")
    with pytest.raises(BundleContractError, match=r"train\.json lacks .*'parent_run_id' \(the MLflow run this run nests under"):
        bundles.run(root, "training", {"runs_dir": str(tmp_path / "runs")})
    assert main(["compare", "--bundle", str(root), "--archs", "unet", "--output", str(tmp_path / "cmp")]) == 2
    assert "'parent_run_id'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cmp").exists()


def test_every_bundle_keeps_the_contract() -> None:
    for name in TINY:
        bundle = Bundle(BUNDLES / name)
        for workflow in PROPERTIES:
            bundle.read(workflow)  # raises naming the key otherwise


def test_an_unknown_override_is_refused_naming_the_close_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean: --epochs"):
        bundles.run(BUNDLES / "pyconvunet", "training", {"epoch": 1, "runs_dir": str(tmp_path / "runs")})
    assert not (tmp_path / "runs").exists()
