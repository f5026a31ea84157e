"""``segzoo compare``: two architectures, one epoch on tiny synthetic data; tables, MLflow parent and children, resuming."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from segzoo import compare, compare_report
from segzoo.cli import main
from segzoo.errors import SegzooError
from segzoo.overrides import parse_override
from segzoo.registry import Component, Params
from tests.conftest import BUNDLES

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny trainings run faster on one thread

ARGS = [
    "--bundle", str(BUNDLES / "pyconvunet"), "--archs", "unet,pyconvunet", "--epochs", "1",
    "--repeats", "1", "--panel_images", "2", "--seeds", "2",
    "--override", "synthetic#num_images=6", "--override", "synthetic#size=64", "--override", "patch_size=[64,64]",
    "--override", "batch_size=2", "--override", "arch_params={'base_channels': 8}",
]


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs(uri: str) -> list:
    mlflow = client(uri)
    return mlflow.search_runs([mlflow.get_experiment_by_name("pyconvunet").experiment_id])


def children(uri: str, parent_id: str) -> list:
    return [r for r in runs(uri) if r.data.tags.get("mlflow.parentRunId") == parent_id]


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("compare")
    out, uri = root / "cmp", f"sqlite:///{root}/mlflow.db"
    args = [*ARGS, "--output", str(out), "--tracking_uri", uri]
    assert main(["compare", *args]) == 0
    return {"out": out, "uri": uri, "args": args, "state": json.loads((out / compare.STATE_FILE).read_text())}


def test_two_seeds_give_mean_sd_and_a_paired_interval_against_the_reference_on_the_test_part(compared: dict) -> None:
    rows = {r["architecture"]: r for r in csv.DictReader((compared["out"] / "comparison.csv").read_text().splitlines())}
    state = compared["state"]["archs"]
    for arch, row in rows.items():
        seeds = [run["metrics"]["foreground_iou"] for run in state[arch]["seeds"].values()]
        assert row["seeds"] == "2" and row["reported_part"] == "test"
        assert float(row["foreground_iou"]) == pytest.approx(sum(seeds) / 2)
        assert float(row["foreground_iou_sd"]) == pytest.approx(abs(seeds[0] - seeds[1]) / 2 ** 0.5)
        assert all(len(run["per_image"]) == 2 for run in state[arch]["seeds"].values())  # the 2 test images
    assert rows["unet"]["vs_reference"] == ""  # the reference (the first of --archs)
    paired = rows["pyconvunet"]
    assert float(paired["ci_low"]) <= float(paired["vs_reference"]) <= float(paired["ci_high"])
    assert paired["verdict"] in ("better", "worse", "no detectable difference")
    table = (compared["out"] / "comparison.md").read_text()
    assert "pyconvunet vs unet on the 2 test images, 2 seeds:" in table and "foreground_iou ± sd" in table


def test_tables_list_every_architecture_with_scores_counts_and_times(compared: dict) -> None:
    rows = list(csv.DictReader((compared["out"] / "comparison.csv").read_text().splitlines()))
    assert [r["architecture"] for r in rows] == ["unet", "pyconvunet"]
    for row in rows:
        assert (
            0 <= float(row["miou_with_background"]) <= 1
            and 0 <= float(row["dice"]) <= 1
            and 0 <= float(row["foreground_iou"]) <= 1
        )
        assert float(row["params_m"]) > 0 and float(row["gmac"]) > 0 and float(row["cpu_ms"]) > 0
        assert row["paper_foreground_iou"] == ""  # synthetic data: the paper has no scores for it
    assert float(rows[0]["paper_params_m"]) == 7.77  # unet's published Table 3 figure, from its plugin
    table = (compared["out"] / "comparison.md").read_text()
    assert "| unet |" in table and "| pyconvunet |" in table and "GMac @1x64x64" in table
    assert "per image, then averaged" in table and "last epoch's weights" in table and "Reported part: **test**" in table


def test_mlflow_parent_run_holds_one_child_per_architecture_and_the_artifacts(compared: dict) -> None:
    parent_id = compared["state"]["parent_run_id"]
    mlflow = client(compared["uri"])
    parent = mlflow.get_run(parent_id)
    assert parent.info.run_name.startswith("compare-") and parent.info.status == "FINISHED"
    kids = children(compared["uri"], parent_id)  # one per architecture and seed
    assert sorted((r.data.params["architecture"], r.data.params["seed"]) for r in kids) == [
        ("pyconvunet", "0"), ("pyconvunet", "1"), ("unet", "0"), ("unet", "1")]
    assert {"unet.test_foreground_iou_mean", "unet.test_foreground_iou_sd"} <= set(parent.data.metrics)
    for kid in kids:
        assert kid.info.status == "FINISHED"
        assert {"test_miou_with_background", "test_dice", "params_m", "gmac", "train_loss", "val_miou_with_background"} <= set(
            kid.data.metrics
        )
        assert kid.data.params["config.epochs"] == "1" and kid.data.params["config.arch_params.base_channels"] == "8"
    artifacts = {a.path for a in mlflow.list_artifacts(parent_id)}
    assert {"comparison.md", "comparison.csv", "curves.png", "predictions.png"} <= artifacts


def dataset_inputs(run) -> dict:
    """``{context: dataset}`` of a run's MLflow dataset inputs."""
    return {tag.value: d.dataset for d in run.inputs.dataset_inputs for tag in d.tags if tag.key == "mlflow.data.context"}


def test_training_runs_carry_what_the_mlflow_ui_shows(compared: dict) -> None:
    """Experiment kind (MLflow 3 opens the runs table), dataset inputs with a content digest, source and git tags, a
    description and short key parameters; runs on the same data show the same digest."""
    import segzoo

    mlflow = client(compared["uri"])
    assert mlflow.get_experiment_by_name("pyconvunet").tags["mlflow.experimentKind"] == "custom_model_development"
    kids = children(compared["uri"], compared["state"]["parent_run_id"])
    for kid in kids:
        tags, params, arch = kid.data.tags, kid.data.params, kid.data.params["architecture"]
        data = dataset_inputs(kid)
        assert set(data) == {"training", "validation"}
        assert data["training"].name == "synthetic_cells" and data["training"].source_type == "synthetic"
        assert json.loads(data["training"].source) == {"generator": "synthetic_cells", "num_images": 6, "size": 64, "seed": 0}
        # 6 images: 2 test, 1 validation and len(data["training"].digest) == 10
        assert json.loads(data["training"].profile)["num_images"] == 3
        assert tags["mlflow.source.name"] == str((BUNDLES / "pyconvunet").resolve()) and tags["mlflow.source.type"] == "LOCAL"
        assert len(tags["mlflow.source.git.commit"]) == 40 and tags["mlflow.user"]
        assert tags["segzoo.version"] == segzoo.__version__ and tags["segzoo.plugin.pyconvunet"]
        assert tags["mlflow.note.content"] == f"{arch} [paper] on synthetic_cells, 1 epoch"
        assert {k: params[k] for k in ("preset", "loss", "epochs", "batch_size", "learning_rate", "dataset")} == {
            "preset": "paper", "loss": "dice_bce", "epochs": "1", "batch_size": "2", "learning_rate": "0.001",
            "dataset": "synthetic_cells"}
        (evaluation,) = [r for r in runs(compared["uri"]) if r.data.tags.get("mlflow.parentRunId") == kid.info.run_id]
        assert dataset_inputs(evaluation)["test"].digest not in (data["validation"].digest, data["training"].digest)
        assert evaluation.data.tags["mlflow.note.content"] == f"evaluation of {arch} [paper] on synthetic_cells (test)"
    assert len({dataset_inputs(kid)["training"].digest for kid in kids}) == 1
    assert dataset_inputs(kids[0])["training"].digest != dataset_inputs(kids[0])["validation"].digest
    parent = mlflow.get_run(compared["state"]["parent_run_id"])  # its data is its children's, its description the table
    assert dataset_inputs(parent)["training"].digest == dataset_inputs(kids[0])["training"].digest
    description = parent.data.tags["mlflow.note.content"]
    assert description.startswith("comparison of unet, pyconvunet (2 seed(s) each, scored on the test part) "
                                  "on synthetic_cells, 1 epochs each\n\n")
    assert description.endswith((compared["out"] / "comparison.md").read_text())


def test_rerun_skips_finished_architectures(compared: dict) -> None:
    before = {r.info.run_id for r in runs(compared["uri"])}
    assert main(["compare", *compared["args"]]) == 0
    assert {r.info.run_id for r in runs(compared["uri"])} == before  # no training, no evaluation, same parent
    state = json.loads((compared["out"] / compare.STATE_FILE).read_text())
    assert state["archs"] == compared["state"]["archs"]


def test_interrupted_comparison_trains_only_what_is_missing(compared: dict) -> None:
    state_path = compared["out"] / compare.STATE_FILE
    state = json.loads(state_path.read_text())
    lost = state["archs"].pop("pyconvunet")  # as if stopped while pyconvunet was training
    shutil.rmtree(Path(lost["run_dir"]).parents[1])  # both of its seeds' runs
    state_path.write_text(json.dumps(state))
    assert main(["compare", *compared["args"]]) == 0
    kids = children(compared["uri"], state["parent_run_id"])
    names = sorted(r.data.params["architecture"] for r in kids)
    assert names == ["pyconvunet"] * 4 + ["unet"] * 2  # the lost runs stay in MLflow; unet was not retrained
    assert json.loads(state_path.read_text())["archs"]["unet"] == state["archs"]["unet"]


def test_other_settings_in_the_same_output_are_refused(compared: dict, capsys: pytest.CaptureFixture) -> None:
    args = [a if a != "1" else "2" for a in compared["args"]]  # --epochs 2 (and --repeats 2)
    assert main(["compare", *args]) == 2
    assert "other overrides" in capsys.readouterr().err


def test_paper_dataset_is_guessed_from_the_folder_name(monkeypatch: pytest.MonkeyPatch) -> None:
    reported = {"paper": {"params_m": 1.0, "isbi2012.foreground_iou": 0.77, "kaggle_lung.dice": 0.9}}
    fake = Component("architecture", "fake", object, Params, "", reported=reported)
    monkeypatch.setattr(compare_report.segzoo, "get", lambda kind, name: fake)
    assert compare_report.guess_paper_dataset("/data/ISBI-2012", ["fake"], "paper") == "isbi2012"
    assert compare_report.guess_paper_dataset("/data/isbi", ["fake"], "paper") == "isbi2012"
    assert compare_report.guess_paper_dataset("/data/KaggleLung", ["fake"], "paper") == "kaggle_lung"
    assert compare_report.guess_paper_dataset("/data/liver", ["fake"], "paper") is None
    assert compare_report.guess_paper_dataset(None, ["fake"], "paper") is None


def test_override_values_are_json_or_python_literals() -> None:
    assert parse_override("patch_size=[64,64]") == ("patch_size", [64, 64])
    assert parse_override("amp=true") == ("amp", True)
    assert parse_override("arch_params={'base_channels': 8}") == ("arch_params", {"base_channels": 8})
    assert parse_override("dataset_dir=/data/isbi2012") == ("dataset_dir", "/data/isbi2012")
    with pytest.raises(SegzooError, match="KEY=VALUE"):
        parse_override("epochs")


def test_training_finished_but_unrecorded_is_not_repeated(compared: dict) -> None:
    state_path = compared["out"] / compare.STATE_FILE
    state = json.loads(state_path.read_text())
    unrecorded = state["archs"].pop("unet")  # as if stopped between the end of unet's training and its evaluation
    state_path.write_text(json.dumps(state))
    before = children(compared["uri"], state["parent_run_id"])
    assert main(["compare", *compared["args"]]) == 0
    assert len(children(compared["uri"], state["parent_run_id"])) == len(before)
    assert json.loads(state_path.read_text())["archs"]["unet"]["run_dir"] == unrecorded["run_dir"]


def test_an_unknown_architecture_fails_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(["compare", "--bundle", str(BUNDLES / "pyconvunet"), "--archs", "unet,unett", "--output", str(tmp_path / "cmp")])
        == 2
    )
    assert "Did you mean: unet" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()
