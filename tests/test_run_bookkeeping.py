"""Run folders, resume selection, the checkpoint evaluation uses, torn files and every override path: the issue's
cases 1, 2 and 5 and their neighbours, on tiny folders and engines (no bundle subprocess)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from segzoo.bundle.validation import ConfigError, check_overrides
from segzoo.cli import main
from segzoo.engine import LastCheckpoint, NonFiniteLossError, StopOnNonFiniteLoss, output_dir, run_checkpoint
from segzoo.engine.checkpoints import ResumeWarning
from segzoo.errors import SegzooError
from segzoo.files import CorruptFileError, atomic_open, atomic_write_text
from segzoo.runfiles import store
from tests.conftest import BUNDLES, hostile


def _run(root: Path, name: str, *files: str, epochs_done: int = 1, max_epochs: int = 3) -> Path:
    run = root / name
    run.mkdir(parents=True)
    for file in files:
        if file == store.LAST:
            torch.save({"trainer": {"iteration": epochs_done * 2, "epoch_length": 2, "max_epochs": max_epochs}}, run / file)
        else:
            (run / file).write_text("x")
    return run


@hostile(
    "CLI", "two trainings with one --run_name (or started in the same second)", "the second gets NAME-2; nothing is overwritten"
)
def test_a_run_name_that_is_taken_gets_its_own_folder(tmp_path: Path) -> None:
    first, second = output_dir(str(tmp_path), "unet-20261127-160000"), output_dir(str(tmp_path), "unet-20261127-160000")
    assert Path(first).name == "unet-20261127-160000" and Path(second).name == "unet-20261127-160000-2"


@pytest.mark.parametrize(
    ("resume", "message"),
    [
        pytest.param(
            "true",
            "the newest run, {root}/new, finished; runs that can be resumed (newest first): {root}/old",
            marks=hostile(
                "CLI",
                "`--resume true` when the newest run finished (issue case 1)",
                "refused, listing the unfinished runs; the finished run is not reopened",
                "--resume true: the newest run, .../new, finished; runs that can be resumed (newest first): .../old",
            ),
        ),
        pytest.param(
            "new",
            "{root}/new finished its training and is never reopened",
            marks=hostile(
                "CLI", "`--resume NAME` of a finished run", "refused", "... finished its training and is never reopened"
            ),
        ),
        pytest.param(
            "nothing",
            "no run folder nothing or {root}/nothing; runs that can be resumed",
            marks=hostile(
                "CLI",
                "`--resume NAME` of no run",
                "refused, listing the runs that can be",
                "no run folder ...; runs that can be resumed ...",
            ),
        ),
        pytest.param(
            "empty",
            "{root}/empty has no last.pt (no epoch completed), so there is nothing to resume",
            marks=hostile(
                "CLI",
                "`--resume NAME` of a run that never completed an epoch",
                "refused",
                "has no last.pt (no epoch completed), so there is nothing to resume; start a new run",
            ),
        ),
    ],
)
def test_resume_names_an_unfinished_run_or_is_refused(tmp_path: Path, resume: str, message: str) -> None:
    old = _run(tmp_path, "old", store.LAST)
    _run(tmp_path, "empty", store.RUN_ID_FILE)
    new = _run(tmp_path, "new", store.LAST, store.BEST, store.FINISHED)
    for age, run in enumerate((old, tmp_path / "empty", new)):
        for file in run.iterdir():
            file.touch()
            __import__("os").utime(file, (1000 + age, 1000 + age))
    with pytest.raises(SegzooError) as err:
        output_dir(str(tmp_path), "unused", resume)
    assert message.format(root=tmp_path) in str(err.value)
    assert output_dir(str(tmp_path), "unused", "old") == str(old) == output_dir(str(tmp_path), "unused", str(old))


@hostile("faults", "NaN loss in the first epoch, then `--resume true` as advised before (issue case 1)",
         "the advice says there is nothing to resume; `--resume true` refuses: the newest run has no completed epoch",
         "No epoch completed, so there is nothing to resume: ... then start a new training (without --resume)")
def test_a_nan_in_the_first_epoch_never_leads_to_resuming_another_run(tmp_path: Path) -> None:
    from monai.engines import SupervisedTrainer

    _run(tmp_path, "finished-before", store.LAST, store.BEST, store.FINISHED)
    diverged = Path(output_dir(str(tmp_path), "diverged"))
    network = torch.nn.Conv2d(1, 1, 3, padding=1)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    data = [{"image": torch.randn(1, 1, 8, 8), "label": torch.rand(1, 1, 8, 8)}]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=2,
        train_data_loader=data,
        network=network,
        optimizer=optimizer,
        loss_function=lambda p, t: torch.nn.functional.mse_loss(p, t) * float("nan"),
        train_handlers=[LastCheckpoint(str(diverged), network, optimizer), StopOnNonFiniteLoss(str(diverged))],
    )
    with pytest.raises(
        NonFiniteLossError,
        match=r"No epoch completed, so there is nothing to resume: .* start a new training \(without --resume\)",
    ):
        trainer.run()
    with pytest.raises(SegzooError, match=f"the newest run, {diverged}, has no completed epoch; no run there can be resumed"):
        output_dir(str(tmp_path), "unused", True)


def _trainer(run: Path, epochs: int, lr: float, resume: bool):
    from monai.engines import SupervisedTrainer

    torch.manual_seed(0)
    network = torch.nn.Conv2d(1, 1, 3, padding=1)
    optimizer = torch.optim.SGD(network.parameters(), lr=lr)
    data = [{"image": torch.ones(1, 1, 8, 8), "label": torch.zeros(1, 1, 8, 8)}]
    return SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=data,
        network=network,
        optimizer=optimizer,
        loss_function=torch.nn.functional.mse_loss,
        train_handlers=[LastCheckpoint(str(run), network, optimizer, resume, seed=0)],
    )


@hostile(
    "CLI",
    "`--resume RUN --epochs 4 --learning_rate 0.01` (changed schedule)",
    "applied and said",
    "resuming ... after epoch 2 of 4; applied: epochs 2 -> 4, learning_rate 0.1 -> 0.01",
)
def test_changed_epochs_and_learning_rate_are_applied_on_resume_and_said(tmp_path: Path) -> None:
    _trainer(tmp_path, 2, 0.1, False).run()
    with pytest.warns(ResumeWarning, match=r"after epoch 2 of 4; applied: epochs 2 -> 4, learning_rate 0.1 -> 0.01"):
        resumed = _trainer(tmp_path, 4, 0.01, True)
    assert resumed.optimizer.param_groups[0]["lr"] == 0.01
    resumed.run()
    assert resumed.state.epoch == 4
    with pytest.raises(SegzooError, match="has trained 4 epochs already; pass --epochs above 4"):
        _trainer(tmp_path, 3, 0.01, True)


@hostile(
    "CLI",
    "`--resume RUN --arch unetpp` (another network than the run trained)",
    "refused before anything is loaded",
    'the run was trained with other settings (arch: "unet" -> "unetpp"). Only epochs and learning_rate may change on resume',
)
def test_a_resume_that_would_train_something_else_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"arch": "unet", "epochs": 2, "device": "cpu"}
    monkeypatch.setattr("segzoo.engine.checkpoints.current_bundle_config", lambda: config)
    _trainer(tmp_path, 2, 0.1, False).run()
    config.update(arch="unetpp", device="cuda")  # the device is how it runs, not what it trains: free to change
    with pytest.raises(SegzooError, match=r'other settings \(arch: "unet" -> "unetpp"\)\. Only epochs and learning_rate'):
        _trainer(tmp_path, 3, 0.1, True)


@pytest.mark.parametrize(
    ("from_run", "message"),
    [
        pytest.param(
            None,
            "the newest run, {root}/failed, has no model.pt (it failed or is still training), "
            "so 'the latest model' is ambiguous. "
            "Pass --from_run RUN_DIR (or NAME) or --checkpoint PATH; runs with a model.pt: {root}/good",
            marks=hostile(
                "CLI",
                "evaluate/inference when the newest run has no model.pt (issue case 5)",
                "refused; never another run's model",
                "the newest run, .../failed, has no model.pt ... 'the latest model' is ambiguous",
            ),
        ),
        pytest.param(
            "failed",
            "--from_run failed: {root}/failed/model.pt does not exist",
            marks=hostile(
                "CLI",
                "evaluate `--from_run` of a run without a model",
                "refused",
                "--from_run failed: .../model.pt does not exist",
            ),
        ),
    ],
)
def test_evaluation_never_takes_another_runs_model(tmp_path: Path, from_run: str | None, message: str) -> None:
    good = _run(tmp_path, "good", store.BEST, store.LAST)
    failed = _run(tmp_path, "failed", store.RUN_ID_FILE)
    for age, run in enumerate((good, failed)):
        for file in run.iterdir():
            __import__("os").utime(file, (1000 + age, 1000 + age))
    with pytest.raises(SegzooError) as err:
        run_checkpoint(tmp_path, from_run)
    assert message.format(root=tmp_path) in str(err.value)
    assert run_checkpoint(tmp_path, "good") == str(good / store.BEST) == run_checkpoint(tmp_path, str(good))


@hostile("faults", "a crash while a file is being written (history.json, state, csv; issue case 2)",
         "the old file is intact and no temporary file is left: every write is tmp + fsync + rename")
def test_a_write_that_dies_half_way_leaves_the_old_file(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "history.json", '{"val_miou": [[1, 0.5]]}')
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write('{"val_miou": [[1, 0.5], [2')
        raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"val_miou": [[1, 0.5]]} and [p.name for p in tmp_path.iterdir()] == ["history.json"]


@hostile(
    "faults",
    "a 0-byte history.json (torn by another tool or a full disk)",
    "refused naming the file and the fix, not JSONDecodeError",
    "history.json (the run's metric history) is empty; it was torn by a crash or edited by hand. "
    "Delete it to go on without the earlier curves",
)
def test_a_torn_file_is_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text("")
    with pytest.raises(CorruptFileError, match=r"history.json \(the run's metric history\) is empty; .* Delete it to go on"):
        store.read_history(tmp_path)


@hostile(
    "MLflow",
    "resuming a run (or a comparison) after the tracking store changed",
    "a new MLflow run is opened, with a warning",
    "MLflow run ... is not in the tracking store ... (the store changed?); a new run is opened",
)
def test_a_run_the_store_does_not_hold_is_replaced_with_a_warning(tmp_path: Path) -> None:
    from segzoo.tracking.client import open_run

    with pytest.warns(RuntimeWarning, match="is not in the tracking store .* a new run is opened"):
        client, run_id = open_run(f"sqlite:///{tmp_path}/other.db", "pyconvunet", "compare", run_id="0" * 32)
    assert run_id != "0" * 32 and client.get_run(run_id).info.status == "RUNNING"


TRAIN = BUNDLES / "pyconvunet" / "configs" / "train.json"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["compare", "--bundle", str(BUNDLES / "pyconvunet"), "--archs", "unet", "--override", "epoch=3"],
            "--epoch: the config has no key 'epoch' under the top level. Did you mean: --epochs?",
            marks=hostile(
                "CLI",
                "`segzoo compare --override epoch=3` (issue case 5)",
                "exit 2 before training",
                "--epoch: the config has no key 'epoch' under the top level. Did you mean: --epochs?",
            ),
        ),
        pytest.param(
            ["compare", "--bundle", str(BUNDLES / "pyconvunet"), "--archs", "unet", "--override", "batch_size=two"],
            "--batch_size 'two': expects a whole number like its default",
            marks=hostile(
                "CLI",
                "`segzoo compare --override batch_size=two`",
                "exit 2 before training",
                "--batch_size 'two': expects a whole number",
            ),
        ),
        pytest.param(
            ["tune", "--bundle", str(BUNDLES / "pyconvunet"), "--space", "nokey:int:1:5", "--trials", "1"],
            "--nokey: the config has no key 'nokey' under the top level",
            marks=hostile(
                "CLI",
                "`segzoo tune --space nokey:int:1:5` (issue case 5)",
                "exit 2 before any trial",
                "--nokey: the config has no key 'nokey'",
            ),
        ),
        pytest.param(
            ["tune", "--bundle", str(BUNDLES / "pyconvunet"), "--space", "epochs:float:1:3", "--trials", "1"],
            "--epochs 1.0: expects a whole number like its default 50",
            marks=hostile(
                "CLI",
                "`segzoo tune --space epochs:float:1:3` (a float where a whole number was)",
                "exit 2 before any trial",
                "--epochs 1.0: expects a whole number like its default 50",
            ),
        ),
    ],
)
def test_compare_and_tune_overrides_are_checked_like_cli_keys(argv: list[str], message: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--output" if argv[0] == "compare" else "--output_dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists()


@hostile(
    "CLI",
    "`--args_file` with a mistyped key or a wrong type",
    "refused like `--key value`",
    "--epoch: the config has no key 'epoch'",
)
def test_an_args_file_is_checked_like_the_command_line(tmp_path: Path) -> None:
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"epoch": 3, "batch_size": "two"}))
    with pytest.raises(ConfigError) as err:
        check_overrides(["run", "training", "--config_file", str(TRAIN), "--args_file", str(args)])
    assert "--epoch: the config has no key 'epoch'" in str(err.value) and "--batch_size 'two': expects a whole number" in str(
        err.value
    )


def test_atomic_files_are_as_readable_as_plain_ones(tmp_path: Path) -> None:
    """A shared run folder (a colleague, an MLflow server) reads checkpoints and history written through the atomic helper."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = atomic_write_text(tmp_path / "history.json", "{}")
    assert os.stat(written).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
