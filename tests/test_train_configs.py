"""Overlays extend train.json instead of replacing what it checks, and the three bundles' train.json keep the wiring they
are meant to share (docs/architecture.md, "The bundle contract")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from segzoo.bundle.contract import Bundle
from tests.conftest import BUNDLES

TRAIN_BUNDLES = ("pyconvunet", "frem", "munet")
# Calls every training config's initialize makes, whatever overlay is merged over it: the override and component
# checks (a mistake names its key before anything is built) and MetaTensor tracking off (docs/performance.md).
REQUIRED_INITIALIZE = ("$segzoo.engine.check_overrides()", "$monai.data.set_track_meta(False)", "segzoo.engine.check_components(",
                       "segzoo.engine.check_metrics(", "segzoo.engine.set_determinism(")
# Keys whose value is the same wiring in every bundle: run plumbing, speed switches and the engine's handlers. A bundle
# that needs another value states why in its docs and this list shrinks with it.
SHARED_KEYS = ("amp", "amp_dtype", "cudnn_benchmark", "dataset_dir", "device", "loss_function", "num_workers", "output_dir",
               "parent_run_id", "register_as", "resume", "runs_dir", "seed", "tracking_uri", "train_hook", "train#hook",
               "train#hook_handler", "train#inferer", "train#dataset", "validate#dataset", "validate#dataloader",
               "validate#metric_handlers", "validate#preprocessing")
HANDLERS = ("ValidationHandler", "segzoo.engine.LastCheckpoint", "segzoo.engine.StopOnNonFiniteLoss", "segzoo.engine.ProgressBar",
            "segzoo.engine.MLflowTracker")


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a#b": value}`` for every nested key that is not a component (``_target_``)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}#{key}" if prefix else key
        if isinstance(value, dict) and "_target_" not in value:
            out.update(flat(value, name))
        else:
            out[name] = value
    return out


def train_config(bundle: str) -> dict[str, Any]:
    return json.loads((BUNDLES / bundle / "configs" / "train.json").read_text())


def missing_initialize(initialize: list[str]) -> list[str]:
    return [call for call in REQUIRED_INITIALIZE if not any(call in expression for expression in initialize)]


@pytest.mark.parametrize("bundle", TRAIN_BUNDLES)
def test_every_train_json_checks_its_config_and_switches_metadata_off(bundle: str) -> None:
    assert missing_initialize(train_config(bundle)["initialize"]) == []


def test_the_multi_gpu_overlay_keeps_every_check_of_train_json() -> None:
    """Merged as users run it (train.json, then multi_gpu_train.json), through segzoo's bundle contract."""
    bundle = Bundle(BUNDLES / "pyconvunet")
    overlay = BUNDLES / "pyconvunet" / "configs" / "multi_gpu_train.json"
    merged = bundle.read("training", extra_configs=[overlay]).get()
    single = train_config("pyconvunet")

    assert merged["initialize"][: len(single["initialize"])] == single["initialize"]  # extended, not replaced
    assert missing_initialize(merged["initialize"]) == []
    assert any("init_process_group" in expression for expression in merged["initialize"])
    assert set(single["imports"]) < set(merged["imports"])
    assert not any(key.startswith("+") for key in merged), "a '+' key was copied instead of merged"
    # Every rank lists every handler: the tracker and the bar are rank-aware themselves, so no positional slice.
    assert merged["train"]["trainer"]["train_handlers"] == single["train"]["trainer"]["train_handlers"]
    assert [h["_target_"] for h in merged["train"]["handlers"]] == [h["_target_"] for h in single["train"]["handlers"]]


@pytest.mark.parametrize("bundle", TRAIN_BUNDLES)
def test_train_json_files_share_the_engine_wiring(bundle: str) -> None:
    reference, config = flat(train_config("pyconvunet")), flat(train_config(bundle))
    differing = [key for key in SHARED_KEYS if config.get(key, "<missing>") != reference[key]]
    assert differing == [], f"{bundle}/configs/train.json differs from pyconvunet's on keys meant to be shared"
    # The train hook and the shared handlers first; a bundle may append its own (MUNet's hard-example miner).
    assert config["train#trainer"]["train_handlers"].startswith("$[@train#hook_handler] + @train#handlers")
    assert [h["_target_"] for h in config["train#handlers"]] == list(HANDLERS)
