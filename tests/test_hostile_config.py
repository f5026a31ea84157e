"""A config value of the wrong type or an unknown key is refused before anything is built, naming key, value and fix,
and that message is the last line the user reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from monai.bundle import ConfigParser

from segzoo.bundle.validation import check_override_values
from segzoo.engine import ConfigError
from tests.conftest import BUNDLES, hostile

TRAIN = BUNDLES / "pyconvunet" / "configs" / "train.json"
CONFIG = ConfigParser.load_config_files([str(TRAIN)])

REFUSED = [
    (
        "epochs",
        "two",
        "--epochs 'two': expects a whole number like its default 50, got str. Pass e.g. --epochs 50",
        "text where a whole number was",
    ),
    ("epochs", 2.5, "--epochs 2.5: expects a whole number like its default 50, got float", "fraction where a whole number was"),
    ("epochs", -3, "--epochs -3: cannot be negative (its default is 50). Pass a value of 0 or more.", "negative epoch count"),
    ("learning_rate", "fast", "--learning_rate 'fast': expects a number like its default 0.001", "text where a number was"),
    (
        "batch_size",
        True,
        "--batch_size True: expects a whole number like its default 5, got bool",
        "true where a whole number was",
    ),
    (
        "patch_size",
        64,
        "--patch_size 64: expects a list such as [1, 2] like its default [128, 128], got int. Pass e.g. --patch_size [128,128]",
        "number where a list was",
    ),
    (
        "metrics",
        ["dice"],
        "--metrics ['dice']: expects a dict such as {'a': 1} like its default "
        "{'foreground_iou': 'foreground_iou', 'dice': 'dice',",
        "list where a dict was (metrics)",
    ),
    ("amp", "maybe", "--amp 'maybe': expects true or false like its default False", "word that is not a switch"),
    (
        "arch_params",
        [4],
        "--arch_params [4]: expects a dict such as {'a': 1} like its default {}",
        "list where a dict was (arch_params)",
    ),
    (
        "synthetic#num_images",
        "many",
        "--synthetic#num_images 'many': expects a whole number like its default 24",
        "wrong type in a nested key",
    ),
    ("epoch", 3, "--epoch: the config has no key 'epoch' under the top level. Did you mean: --epochs?", "unknown key (typo)"),
    (
        "synthetic#num_imgs",
        3,
        "--synthetic#num_imgs: the config has no key 'num_imgs' under synthetic. Did you mean: --synthetic#num_images?",
        "unknown nested key (typo)",
    ),
]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        pytest.param(
            key,
            value,
            message,
            marks=hostile("config", f"`--{key} {value!r}`: {case}", "refused before anything is built", message),
        )
        for key, value, message, case in REFUSED
    ],
)
def test_a_wrong_override_is_refused_naming_key_value_and_fix(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_override_values({key: value}, CONFIG, [str(TRAIN)])
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param(
            "learning_rate",
            1,
            marks=hostile("config", "`--learning_rate 1`: whole number where a float was", "accepted (a number)"),
        ),
        pytest.param(
            "amp", "yes", marks=hostile("config", "`--amp yes`: a switch as text", "accepted (true/false, yes/no, on/off, 1/0)")
        ),
        pytest.param(
            "arch",
            "$'un' + 'et'",
            marks=hostile(
                "config",
                "`--arch \"$'un' + 'et'\"`: a MONAI expression",
                "accepted: `$` overrides run Python, by MONAI's design (docs/architecture.md)",
            ),
        ),
        pytest.param(
            "arch_params#base_channels",
            8,
            marks=hostile(
                "config",
                "`--arch_params#base_channels 8`: a key inside an open dict",
                "accepted; the component's own model checks it",
            ),
        ),
    ],
)
def test_a_value_of_the_right_kind_is_accepted(key: str, value: Any) -> None:
    check_override_values({key: value}, CONFIG)


@hostile("config", "wrong type on the command line of `python -m monai.bundle run`",
         "exit 1 before training; the error is the last line, not MONAI's 'Failed to evaluate ConfigExpression' traceback",
         "segzoo: error: invalid override(s) ... --epochs 'two': expects a whole number")
def test_a_config_error_is_the_last_line_of_a_bundle_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(TRAIN), "--epochs", "two"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and not (tmp_path / "runs").exists()
    assert "Traceback" not in proc.stderr and "ConfigExpression" not in proc.stderr
    assert lines[-2].startswith("segzoo: error: invalid override(s)")
    assert lines[-1] == "  --epochs 'two': expects a whole number like its default 50, got str. Pass e.g. --epochs 50"
