"""``segzoo tune``: a seeded TPE study of the FREM bundle, nested MLflow runs, the best override, resumption."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from segzoo.errors import SegzooError
from segzoo.tune import BEST_OVERRIDE, PARENT_RUN_ATTR, TRIALS_PLOT, Dimension, parse_overrides, parse_space, register
from tests.conftest import BUNDLES

# A tiny FREM row: 6 synthetic 64x64 images, an 8-wide SE U-Net (128 bottleneck channels), one epoch per trial.
TINY_FREM = ["train_hook=frem", "synthetic#num_images=6", "synthetic#size=64", "patch_size=[64,64]", "batch_size=2",
             "arch_params#base_channels=8"]


def tune(*argv: str) -> int:
    """``segzoo tune ARGV`` through the parser ``register`` adds, as the CLI runs it."""
    parser = argparse.ArgumentParser(prog="segzoo")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tune", *argv])
    return args.func(args)


def test_space_and_overrides_parse_with_errors_that_show_the_format() -> None:
    assert parse_space("B:int:1:512, X:float:1:1000:log") == [
        Dimension("B", "int", 1, 512),
        Dimension("X", "float", 1, 1000, log=True),
    ]
    for bad in ("B:int:1", "B:str:1:2", "B:int:5:1", "X:float:a:b", ""):
        with pytest.raises(SegzooError, match="space"):
            parse_space(bad)
    assert parse_overrides(["patch_size=[64,64]", "train_hook=frem", "amp=true"]) == {
        "patch_size": [64, 64],
        "train_hook": "frem",
        "amp": True,
    }
    with pytest.raises(SegzooError, match="KEY=VALUE"):
        parse_overrides(["train_hook"])
    with pytest.raises(SegzooError, match="--epochs"):
        parse_overrides(["epochs=3"])


@pytest.mark.slow
def test_tune_nests_trials_writes_the_best_override_and_resumes(tmp_path: Path, one_thread: None) -> None:
    import optuna
    from mlflow.tracking import MlflowClient

    out = tmp_path / "tune"
    common = ["--bundle", str(BUNDLES / "frem"), "--space", "B:int:1:16,X:float:1:100", "--epochs", "1", "--study", "s",
              "--output_dir", str(out), *(a for o in TINY_FREM for a in ("--override", o))]
    assert tune(*common, "--trials", "1") == 0
    assert tune(*common, "--trials", "2") == 0  # the same study: one more trial, not two

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.number for t in study.trials] == [0, 1] and all(t.value is not None for t in study.trials)
    assert study.trials[0].params != study.trials[1].params  # the resumed sampler did not repeat the first point

    client = MlflowClient()  # the session's store: creating a fresh one costs seconds
    experiment = client.get_experiment_by_name("frem")
    parent_id = study.user_attrs[PARENT_RUN_ATTR]
    children = client.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(r.info.run_name for r in children) == ["s-trial-0000", "s-trial-0001"]
    for child, trial in zip(sorted(children, key=lambda r: r.info.run_name), study.trials):
        assert child.data.params["train_hook"] == "frem" and int(child.data.params["train_hook.B"]) == trial.params["B"]
        assert child.data.metrics["val_miou_with_background"] == pytest.approx(
            trial.value
        )  # one epoch: the last value is the best

    best = json.loads((out / BEST_OVERRIDE).read_text())
    assert best == {**parse_overrides(TINY_FREM), **study.best_params}
    parent = client.get_run(parent_id)
    assert parent.data.metrics["best_val_miou_with_background"] == pytest.approx(study.best_value)
    assert parent.data.metrics["completed_trials"] == 2
    assert {BEST_OVERRIDE, TRIALS_PLOT} <= {a.path for a in client.list_artifacts(parent_id)}
    # the runs list says what the study found: its trials best first, under short names B and X; its data is the trials'
    description = parent.data.tags["mlflow.note.content"]
    assert description.startswith(
        "TPE search of B, X maximising val_miou_with_background, 2 trials on synthetic_em, 1 epochs each"
    )
    assert f"| {study.best_trial.number} | {study.best_params['B']} |" in description.splitlines()[4]
    assert {int(c.data.params["B"]) for c in children} == {t.params["B"] for t in study.trials}
    digests = [{d.dataset.digest for d in run.inputs.dataset_inputs} for run in (parent, children[0])]
    assert digests[0] == digests[1]


def test_best_override_is_a_config_file_monai_merges(tmp_path: Path) -> None:
    from monai.bundle import ConfigParser

    override = tmp_path / BEST_OVERRIDE
    override.write_text(json.dumps({"train_hook": "frem", "B": 12, "arch_params#base_channels": 8}))
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / "frem" / "configs" / "train.json"), str(override)])
    assert parser["train_hook_params"]["B"] == "@B" and parser["B"] == 12
    assert parser["arch_params"] == {"base_channels": 8}


def test_a_storage_that_cannot_be_reached_is_named_with_the_fix(tmp_path: Path) -> None:
    from tests.services import free_port

    url = f"postgresql://segzoo@127.0.0.1:{free_port()}/optuna"  # nobody listens there
    with pytest.raises(SegzooError, match=r"--storage postgresql://.*: cannot open the study's database .*database server is up"):
        tune("--bundle", str(BUNDLES / "frem"), "--space", "B:int:1:16", "--trials", "1", "--storage", url,
             "--output-dir", str(tmp_path / "tune"), *(a for o in TINY_FREM for a in ("--override", o)))
