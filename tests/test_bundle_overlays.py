"""evaluate.json and inference.json are overlays over train.json: they add keys and take the network from the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import BUNDLES

OVERLAYS = [(bundle, name) for bundle in ("pyconvunet", "frem", "munet") for name in ("evaluate.json", "inference.json")]
TINY = {"synthetic#num_images": 6, "synthetic#size": 64, "patch_size": [64, 64]}


@pytest.mark.parametrize(("bundle", "name"), OVERLAYS)
def test_an_overlay_repeats_no_key_of_train_json(bundle: str, name: str) -> None:
    """A training value is stated once: an overlay only adds keys, or extends a list/dict of train.json with ``+key``."""
    configs = BUNDLES / bundle / "configs"
    train, overlay = (json.loads((configs / file).read_text()) for file in ("train.json", name))
    assert not set(overlay) & set(train), f"{name} restates train.json's {sorted(set(overlay) & set(train))}"
    for key in (k for k in overlay if k.startswith("+")):
        assert isinstance(train.get(key[1:]), type(overlay[key])), (
            f"{name}: '{key}' must extend train.json's {key[1:]} of the same type")


@pytest.mark.parametrize("workflow", ["evaluating", "inference"])
def test_an_overlay_run_alone_names_the_two_file_command(workflow: str) -> None:
    from monai.bundle import run

    overlay = BUNDLES / "pyconvunet" / "configs" / ("evaluate.json" if workflow == "evaluating" else "inference.json")
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps segzoo's ConfigError in its RuntimeError
        run(workflow, config_file=str(overlay))
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    assert any("is an overlay over" in message and "train.json" in message and "--config_file" in message
               for message in chain), chain



@pytest.mark.parametrize(("workflow", "own"), [("evaluating", "evaluation_dir"), ("inference", "predictions_dir")])
def test_output_dir_on_an_overlay_is_refused_naming_its_own_folder_key(workflow: str, own: str) -> None:
    """--output_dir is training's run folder in the merged config: accepted, it would be ignored and the masks land elsewhere."""
    from segzoo.engine import ConfigError, check_overlay

    argv = ["monai.bundle", "run", workflow, "--config_file", "['train.json','overlay.json']", "--output_dir", "masks"]
    with pytest.raises(ConfigError, match=f"--output_dir is the training's run folder; {workflow} writes to --{own}"):
        check_overlay(workflow, argv)

@pytest.mark.slow
def test_a_run_is_evaluated_and_segmented_as_trained_without_its_training_flags(tmp_path: Path) -> None:
    """Trained as pyconvunet preset ``fast``; evaluation and inference get no --arch/--preset and rebuild that network.
    The held-out scores on the validation part equal the training's own last validation (same split, rule and weights)."""
    from segzoo.bundle.contract import get, run
    from segzoo.export.trained import load_trained
    from segzoo.runfiles import store

    bundle, common = BUNDLES / "pyconvunet", {**TINY, "runs_dir": str(tmp_path / "runs"), "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
                                             "device": "cpu"}
    training = run(bundle, "training", {**common, "epochs": 1, "batch_size": 2, "preset": "fast"})
    run_dir = Path(get(training, "output_dir"))

    evaluation = run(bundle, "evaluating", {**common, "eval_part": "val"})  # the part the training itself scored
    trained = get(evaluation, "trained")
    assert (trained.arch, trained.preset, trained.checkpoint) == ("pyconvunet", "fast", run_dir / store.BEST)
    scores = get(evaluation, "evaluator").state.metrics
    history = store.read_history(run_dir)
    for name, value in scores.items():
        assert value == pytest.approx(history[f"val_{name}"][-1][1], abs=1e-6), name

    images = tmp_path / "images"
    images.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (70, 90), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "x.png")
    run(bundle, "inference", {**common, "input_dir": str(images), "predictions_dir": str(tmp_path / "masks")})
    model = load_trained(run_dir, final_activation="identity")
    expected = model.processing.predict(model.network, pixels[None])[0][0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "masks" / "x.png")) > 0, expected > 0)
