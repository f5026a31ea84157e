"""Cases tried beyond the first hostile table (issue 22): what a user made is never overwritten, config files and values are
checked before anything is built, a checkpoint is untrusted input, advice is checked against the disk. All in-process
and fast: each test runs the function or command a user's input reaches, on tiny files."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import segzoo
from segzoo.bundle.validation import ConfigError, check_override_values, check_patch_size, check_training_values, load_config_file
from segzoo.cli import main
from segzoo.engine.checkpoints import LastCheckpoint
from segzoo.errors import SegzooError
from segzoo.tracking.client import closed_with_status
from tests.conftest import BUNDLES, SINCE_FIRST_TABLE
from tests.conftest import hostile as any_hostile


def hostile(*args: str) -> pytest.MarkDecorator:
    """A row of the hostile-input table found by issue 22's tester, beyond the first table."""
    return any_hostile(*args, issue=SINCE_FIRST_TABLE)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """What a training leaves: model.pt (the bare state dict) and components.json."""
    run = tmp_path / "runs" / "pyconvunet" / "unet-1"
    run.mkdir(parents=True)
    params = {"preset": None, "in_channels": 1, "out_channels": 1, "base_channels": 4, "depth": 2}
    torch.manual_seed(0)
    torch.save(segzoo.create_model("unet", **{k: v for k, v in params.items() if k != "preset"}).state_dict(), run / "model.pt")
    (run / "components.json").write_text(json.dumps({"architecture": {"name": "unet", **params}}))
    return run


def last_error(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


# -- 1. nothing a user made is overwritten --------------------------------------------------------------------------------

@hostile(
    "model tools",
    "`segzoo export RUN --format torchscript --output RUN/model.pt` (issue case: replaced the checkpoint)",
    "refused even with --overwrite; the checkpoint is untouched",
    "RUN/model.pt is the file this command reads; writing over it would destroy it",
)
def test_export_never_writes_over_the_checkpoint_it_reads(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (run_dir / "model.pt").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert (
            main(
                ["export", str(run_dir), "--format", "torchscript", "--output", str(run_dir / "model.pt"), "--size", "32", *extra]
            )
            == 2
        )
        assert "is the file this command reads" in last_error(capsys)
    assert (run_dir / "model.pt").read_bytes() == before


@hostile(
    "model tools",
    "export to an --output that exists (a file, or a non-empty folder for --format mlflow)",
    "refused naming the path and --overwrite; with --overwrite replaced",
    "RUN/model.ts exists (a file) and this command did not create it; pass --overwrite",
)
def test_export_over_an_existing_output_needs_overwrite(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "model.ts").write_text("mine")
    assert main(["export", str(run_dir), "--format", "torchscript", "--size", "32"]) == 2
    error = last_error(capsys)
    assert f"{run_dir / 'model.ts'} exists (a file)" in error and "--overwrite" in error
    assert (run_dir / "model.ts").read_text() == "mine"
    assert main(["export", str(run_dir), "--format", "torchscript", "--size", "32", "--overwrite"]) == 0
    assert torch.jit.load(str(run_dir / "model.ts")) is not None
    notes = run_dir / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):  # --overwrite replaces an MLflow model folder only, never another folder
        assert main(["export", str(run_dir), "--format", "mlflow", "--output", str(notes), "--size", "32", *extra]) == 2
        assert str(notes) in last_error(capsys)
    assert (notes / "mine.txt").read_text() == "mine"


@hostile(
    "model tools",
    "`segzoo pack` into an --output holding an edited configs/inference.json (issue case: overwritten silently)",
    "refused naming the folder and --overwrite",
    "DIR exists (a folder that is not empty) and this command did not create it",
)
@pytest.mark.parametrize("bundle", ["nowhere", "a-file"])
def test_pack_refuses_a_taken_output_and_a_bundle_that_is_not_one(run_dir: Path, tmp_path: Path, bundle: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "packed"
    (out / "configs").mkdir(parents=True)
    (out / "configs" / "inference.json").write_text('{"edited": true}')
    assert main(["pack", str(run_dir), "--bundle", str(BUNDLES / "pyconvunet"), "--output", str(out)]) == 2
    assert "exists (a folder that is not empty)" in last_error(capsys)
    assert json.loads((out / "configs" / "inference.json").read_text()) == {"edited": True}
    target = tmp_path / bundle
    if bundle == "a-file":
        target.write_text("x")
    assert main(["pack", str(run_dir), "--bundle", str(target), "--output", str(tmp_path / "new")]) == 2
    assert f"{target} is not a bundle folder: it {'is a file' if bundle == 'a-file' else 'does not exist'}" in last_error(capsys)


# -- 6. a checkpoint is untrusted input ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            "truncated",
            marks=hostile(
                "model tools",
                "truncated checkpoint to `segzoo export` / evaluation",
                "one line naming the file",
                "checkpoint .../model.pt cannot be read: it is truncated, corrupt or not a PyTorch weights file",
            ),
        ),
        pytest.param(
            "random",
            marks=hostile(
                "model tools",
                "random bytes as a checkpoint",
                "one line naming the file; never advises weights_only=False",
                "checkpoint .../model.pt cannot be read ... (it holds something other than tensors and plain containers)",
            ),
        ),
        pytest.param(
            "foreign",
            marks=hostile(
                "model tools",
                "a torch.save file that holds no weights (a dict of lists)",
                "one line naming the file",
                "checkpoint .../model.pt holds no network weights (a dict, not a {name: tensor} state dict)",
            ),
        ),
    ],
)
def test_a_corrupt_or_foreign_checkpoint_is_one_line_naming_the_file(
    run_dir: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run_dir / "model.pt"
    if content == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    else:
        torch.save({"a": [1, 2]}, path)
    assert main(["export", str(run_dir), "--format", "torchscript", "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {path}" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert "weights_only=False" not in err
    with pytest.raises(SegzooError, match="cannot be read|holds no network weights"):
        segzoo.engine.load_checkpoint(segzoo.create_model("unet", in_channels=1, out_channels=1, base_channels=4, depth=2), path)


@hostile("model tools", "a NaN image, or an empty batch, given to the MLflow model's predict()",
         "refused (it returned an all-zero mask)", "image(s) [1] of the batch hold NaN or infinite pixels ... fill them first")
def test_the_mlflow_model_refuses_nan_images_and_an_empty_batch(run_dir: Path) -> None:
    import mlflow

    assert main(["export", str(run_dir), "--format", "mlflow", "--size", "32"]) == 0
    model = mlflow.pyfunc.load_model(str(run_dir / "mlflow_model"))
    images = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    images[1, 0, 3, 3] = np.nan
    with pytest.raises(Exception, match=r"image\(s\) \[1\] of the batch hold NaN"):
        model.predict(images)
    with pytest.raises(Exception, match="non-empty batch"):
        model.predict(np.zeros((0, 1, 32, 32), np.float32))


# -- 2. config files and values, checked before anything is built -------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            '{"epochs": 2,\n "lr": }',
            "is not valid JSON: Expecting value at line 2, column 8",
            marks=hostile(
                "config",
                "--config_file/--args_file with a JSON syntax error",
                "refused naming the file, line and column",
                "config file x.json is not valid JSON: Expecting value at line 2, column 8",
            ),
        ),
        pytest.param(
            '{"epochs": 2, "batch',
            "is not valid JSON: Unterminated string",
            marks=hostile(
                "config",
                "truncated config file",
                "refused naming the file and where it ends",
                "is not valid JSON: Unterminated string starting at ...",
            ),
        ),
        pytest.param(
            "", "is empty", marks=hostile("config", "empty config file", "refused naming the file", "config file x.json is empty")
        ),
        pytest.param(
            "[1, 2]",
            "holds a list, not an object",
            marks=hostile(
                "config",
                "config file holding a JSON list",
                "refused naming the file",
                "config file x.json holds a list, not an object",
            ),
        ),
        pytest.param(
            None,
            "does not exist",
            marks=hostile(
                "config",
                "--config_file/--args_file that does not exist",
                "refused naming the file",
                "config file x.json does not exist",
            ),
        ),
        pytest.param(
            '{"epochs": 2}',
            "lacks the required key(s) 'bundle_name'",
            marks=hostile(
                "config",
                "config file lacking a required key",
                "refused naming file and key",
                "lacks the required key(s) 'bundle_name'",
            ),
        ),
    ],
)
def test_every_config_file_is_read_by_one_loader_that_names_file_and_place(
    tmp_path: Path, text: str | None, message: str
) -> None:
    path = tmp_path / "x.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config_file(path, required=["bundle_name"])
    assert str(path) in str(raised.value) and message in str(raised.value)


@hostile("config", "a recipe whose epochs is the text 'two', then `--epochs 1` (issue case: refused)",
         "accepted: a key's type is the bundle's own config's, not a recipe's")
def test_a_recipes_odd_default_does_not_make_a_valid_override_invalid() -> None:
    own = {"epochs": 50}
    check_override_values({"epochs": 1}, {"epochs": "two"}, types=own)
    with pytest.raises(ConfigError, match="--epochs 'x': expects a whole number"):
        check_override_values({"epochs": "x"}, {"epochs": "two"}, types=own)


def items(n: int, size: int = 64) -> list[dict[str, Any]]:
    return [{"image": np.zeros((1, size, size), np.float32), "name": f"i{i}"} for i in range(n)]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"val_fraction": 0.0},
            "--val_fraction 0.0: must be a fraction strictly between 0 and 1",
            marks=hostile(
                "config",
                "--val_fraction 0, 1, negative or above 1 (silently clamped before)",
                "refused before building",
                "--val_fraction 1.0: must be a fraction strictly between 0 and 1",
            ),
        ),
        pytest.param({"val_fraction": 1.5}, "--val_fraction 1.5: must be a fraction strictly between 0 and 1"),
        pytest.param(
            {"batch_size": 0},
            "--batch_size 0: must be 1 or more",
            marks=hostile("config", "--batch_size 0", "refused before building", "--batch_size 0: must be 1 or more"),
        ),
        pytest.param(
            {"epochs": 0},
            "--epochs 0: must be 1 or more (0 trains nothing and leaves no model)",
            marks=hostile(
                "config",
                "--epochs 0 (finished without a model before)",
                "refused before building",
                "0 trains nothing and leaves no model",
            ),
        ),
        pytest.param(
            {"train": 1, "val": 0},
            "the data set holds 1 item(s), split into 1 training and 0 validation",
            marks=hostile(
                "data",
                "a data set of one image (too small to split)",
                "refused before building",
                "the data set holds 1 item(s) ... a training needs at least one of each",
            ),
        ),
    ],
)
def test_values_a_training_cannot_use_are_refused_before_building(values: dict[str, Any], message: str) -> None:
    args = {"train": 4, "val": 1, "val_fraction": 0.2, "batch_size": 2, "epochs": 1, **values}
    with pytest.raises(ConfigError) as raised:
        check_training_values(
            items(args["train"]), items(args["val"]), args["val_fraction"], args["batch_size"], args["epochs"], [64, 64]
        )
    assert message in str(raised.value)


@hostile(
    "data",
    "--val_fraction 0.01 of 6 images, and images smaller than the patch",
    "trains; the split and the padding are printed",
    "split: 6 items -> 5 training, 1 validation (val_fraction 0.01 of 6 items is 0.06; kept within 1..5)",
)
def test_the_split_and_any_padding_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    check_training_values(items(5, size=32), items(1, size=32), 0.01, 2, 1, [64, 64])
    out = capsys.readouterr().out
    assert "split: 6 items -> 5 training, 1 validation (val_fraction 0.01 of 6 items is 0.06; kept within 1..5)" in out
    assert "6 image(s) smaller than patch_size [64, 64] are zero-padded" in out


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        pytest.param(
            [63, 63],
            "needs every spatial size to be a multiple of its total stride 4",
            marks=hostile(
                "config",
                "`--patch_size [63,63]` (failed inside MONAI after training began)",
                "refused before building, with the stride",
                "--patch_size [63, 63]: the network unet cannot take a patch of this size (... multiple of its total stride ...)",
            ),
        ),
        pytest.param(
            [64, 64, 64],
            "segzoo trains on 2D images",
            marks=hostile(
                "config",
                "`--patch_size [64,64,64]`",
                "refused before building",
                "segzoo trains on 2D images, so a patch is two positive whole numbers",
            ),
        ),
        pytest.param([0, 64], "two positive whole numbers"),
    ],
)
def test_a_patch_the_network_cannot_take_is_refused_before_building(patch: list[int], message: str) -> None:
    with pytest.raises(ConfigError, match="--patch_size") as raised:
        check_patch_size("unet", None, patch, in_channels=1, out_channels=1, base_channels=4, depth=2)
    assert message in str(raised.value)
    check_patch_size("unet", None, [64, 64], in_channels=1, out_channels=1, base_channels=4, depth=2)


@hostile("config", "`--runs_dir` pointing at a file", "refused naming the folder, before anything is built",
         "--runs_dir afile: cannot create the run folder afile/... (Not a directory)")
def test_a_runs_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    from segzoo.runfiles.store import new_run_dir

    (tmp_path / "afile").write_text("x")
    with pytest.raises(SegzooError, match="--runs_dir .*afile"):
        new_run_dir(tmp_path / "afile", "run")


# -- 4. advice that is true; 3. a stop closes the run without a second traceback ------------------------------------------

@hostile("faults", "disk full at the first checkpoint (issue case: advised --resume of a last.pt that did not exist)",
         "says there is nothing to resume and to start again", "no epoch was saved, so there is nothing to resume")
def test_checkpoint_advice_is_checked_against_the_disk(tmp_path: Path) -> None:
    network = torch.nn.Linear(1, 1)
    saver = LastCheckpoint(str(tmp_path), network, torch.optim.SGD(network.parameters(), lr=0.1))
    saver._writer, saver._error = threading.Thread(target=lambda: None), OSError(28, "No space left on device")
    saver._writer.start()
    with pytest.raises(SegzooError, match="nothing to resume") as raised:
        saver.wait()
    assert "intact" not in str(raised.value)
    assert "no epoch was completed" in saver.how_to_continue()
    torch.save({}, tmp_path / "last.pt")
    assert saver.how_to_continue() == f"continue with --resume {tmp_path} (its last.pt holds every epoch completed)"


class LockedStore:
    """An MLflow client whose store is locked for the first ``locked`` calls (or for ever)."""

    def __init__(self, locked: float) -> None:
        self.locked, self.calls = locked, []

    def set_terminated(self, run_id: str, status: str) -> None:
        self.calls.append(status)
        if len(self.calls) <= self.locked:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")


@hostile("MLflow", "SIGTERM while the SQLite store is locked (issue case: chained 'database is locked' traceback)",
         "retried, then closed KILLED; a store that stays locked costs one warning, the stop line stays last")
def test_a_locked_store_at_a_stop_is_retried_and_never_chained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    briefly = LockedStore(locked=2)
    with pytest.raises(KeyboardInterrupt) as raised, closed_with_status(briefly, "r"):
        raise KeyboardInterrupt
    assert briefly.calls == ["KILLED"] * 3 and raised.value.__context__ is None
    stuck = LockedStore(locked=float("inf"))
    with pytest.warns(RuntimeWarning, match="could not be closed as KILLED"), pytest.raises(KeyboardInterrupt):
        with closed_with_status(stuck, "r"):
            raise KeyboardInterrupt


# -- 7. small ones -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "size",
    [
        pytest.param(
            "0",
            marks=hostile(
                "CLI",
                "`segzoo complexity unet --size 0` (and -5, 100000)",
                "refused: one line",
                "--size 0: counts are taken on an image of 1 to 8192 pixels a side",
            ),
        ),
        pytest.param("-5"),
        pytest.param("100000"),
        pytest.param(
            "33",
            marks=hostile(
                "CLI",
                "`segzoo complexity unet --size 33` (not a multiple of the stride)",
                "refused: one line",
                "--size 33: UNetSkeleton cannot take an image of 33x33 (... multiple of its total stride 16 ...)",
            ),
        ),
    ],
)
def test_complexity_of_a_size_the_network_cannot_take_is_one_line(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complexity", "unet", "--size", size]) == 2
    assert last_error(capsys).startswith(f"segzoo: error: --size {size}:")


@hostile("CLI", "`segzoo new-plugin class` (a Python keyword; wrote a package that did not compile)", "refused",
         "plugin name 'class' is a Python keyword ... choose another name, e.g. 'class_net'")
def test_new_plugin_refuses_a_keyword(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", "class", "--dir", str(tmp_path)]) == 2
    assert "is a Python keyword" in last_error(capsys) and not os.listdir(tmp_path)


@hostile("config", "`--preset huge` in a bundle run (blamed arch_params)", "refused naming the preset key",
         "config key 'preset' = 'huge': architecture 'pyconvunet' has no preset 'huge'; available presets: ...")
def test_an_unknown_preset_is_blamed_on_preset() -> None:
    from segzoo.bundle.validation import check_params

    with pytest.raises(ConfigError, match="config key 'preset' = 'huge': architecture 'pyconvunet' has no preset 'huge'"):
        check_params("arch_params", "architecture", "pyconvunet", "huge", in_channels=1, out_channels=1)


@hostile("model tools", "evaluating one run on a second data set (issue case: replaced its eval/ CSVs without a word)",
         "written beside: RUN/eval-<data folder>; the same data again reuses its folder; each folder records its data",
         "evaluation of /data/other train val ... -> RUN/eval-other")
def test_evaluations_on_other_data_go_to_folders_of_their_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from segzoo.runfiles.store import DATA_FILE, evaluation_dir

    checkpoint = tmp_path / "model.pt"
    first = Path(evaluation_dir(checkpoint, None, {"size": 64}, "train", "val"))
    (first / "summary.csv").write_text("synthetic")
    assert first == tmp_path / "eval" and evaluation_dir(checkpoint, None, {"size": 64}, "train", "val") == str(first)
    other = Path(evaluation_dir(checkpoint, str(tmp_path / "isbi"), None, "train", "val"))
    assert other == tmp_path / "eval-isbi" and str(tmp_path / "isbi") in (other / DATA_FILE).read_text()
    assert (first / "summary.csv").read_text() == "synthetic"
    assert f"-> {other}" in capsys.readouterr().out


@hostile("model tools", "inference twice into the default predictions/ (issue case: "
                        "mixed with an earlier input's masks, never said where)",
         "each call writes a folder of its own (predictions, predictions-2, ...) and prints it", "masks -> RUN/predictions-2")
def test_each_inference_writes_a_fresh_folder_and_says_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from segzoo.runfiles.store import fresh_output_dir

    first = Path(fresh_output_dir(tmp_path / "predictions"))
    (first / "a_mask.png").write_text("earlier")
    second = Path(fresh_output_dir(tmp_path / "predictions"))
    assert second == tmp_path / "predictions-2" and not any(second.iterdir())
    assert capsys.readouterr().out.splitlines()[-1] == f"masks -> {second}"
