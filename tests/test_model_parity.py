"""One trained network, one mask: the recorded input and output rule (segzoo.processing) gives the same masks through
`segzoo inference` (the bundle), the MLflow pyfunc and the packed Model Zoo bundle, for uint8, uint16, int16 and float
images and every registered architecture.

Each architecture is a randomly initialised, narrow network saved as a run folder (model.pt + components.json with its
architecture and rule), since training each one would take minutes; the training-time path (evaluation during a
real training, the served model) is covered on one trained network in tests/test_bundle_pyconvunet.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

import segzoo
from segzoo.processing import Processing, scale
from tests.conftest import BUNDLES

# MUNet's smallest backbone (ResNet-50) takes a minute on two cores: marked slow, like the trainings
ARCHITECTURES = [pytest.param(spec.name, marks=pytest.mark.slow) if spec.name == "munet" else spec.name
                 for spec in segzoo.list_components("architecture")]
NARROW = {"base_channels": 8, "depth": 3, "backbone": "resnet50"}
OWN_PRESET = {"pyconvunet"}  # its paper pyramids fix width and depth: narrowed, they would not build
# the released PyConvU-Net's 16 groups on half a block's channels need 32 of them (tests/test_export.py)
WIDER = {"pyconvunet_released": {"base_channels": 32, "depth": 1}}
ROI = [64, 64]
HEIGHT, WIDTH = 70, 90  # not square and not a multiple of the window: the window pads and overlaps
RNG = np.random.default_rng(0)
RAMP = RNG.random((HEIGHT, WIDTH))
IMAGES = {  # name -> (pixels, how it is stored)
    "u8": ((RAMP * 255).astype(np.uint8), "png"),
    "u16": ((RAMP * 65535).astype(np.uint16), "png"),
    "i16": ((RAMP * 3000 - 1000).astype(np.int16), "tif"),
    "f32": ((RAMP * 7.5 - 2).astype(np.float32), "tif"),
}


def narrow(name: str) -> dict:
    fields = segzoo.get("architecture", name).params.model_fields
    if name in WIDER:
        return WIDER[name]
    return {} if name in OWN_PRESET else {k: v for k, v in NARROW.items() if k in fields}


def preset(name: str) -> str:
    """The architecture's ``paper`` preset, or its only one (the released PyConvU-Net has ``released``)."""
    presets = list(segzoo.get("architecture", name).presets)
    return "paper" if "paper" in presets else presets[0]


def write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (pixels, kind) in IMAGES.items():
        if kind == "png":
            Image.fromarray(pixels).save(folder / f"{name}.png")
        else:
            tifffile.imwrite(folder / f"{name}.tif", pixels)


def saved_run(name: str, root: Path) -> tuple[Path, torch.nn.Module, Processing]:
    """A run folder as a training leaves it, for a narrow random network ``name``."""
    params = {"in_channels": 1, "out_channels": 1, **narrow(name)}
    torch.manual_seed(0)
    network = segzoo.create_model(name, preset(name), **params, final_activation="identity").eval()
    munet = "fused" in (getattr(network, "export_outputs", None) or ())
    rule = Processing(
        in_channels=1, out_channels=1, roi_size=ROI, activation="none" if munet else "auto", output="fused" if munet else None
    )
    # a random network's probabilities sit in a narrow band: their median as the recorded threshold gives masks with
    # both classes (and checks that every path reads the threshold from the record)
    probabilities = rule.predict(network, IMAGES["u8"][0][None])[1]
    rule = replace(rule, threshold=float(np.median(probabilities)))
    run = root / "runs" / name
    run.mkdir(parents=True)
    torch.save(network.state_dict(), run / "model.pt")
    (run / "components.json").write_text(json.dumps({"architecture": {"name": name, "preset": preset(name), **params},
                                                     "processing": {"name": "segzoo.processing", **rule.record()}}))
    return run, network, rule


def read_mask(path: Path) -> np.ndarray:
    mask = np.asarray(Image.open(path)) if path.suffix == ".png" else tifffile.imread(path)
    return (np.squeeze(mask) > 0).astype(np.uint8)


def test_the_input_rule_scales_unsigned_by_dtype_and_signed_and_float_by_range() -> None:
    assert scale(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert scale(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert scale(np.array([-1000, 2000], np.int16)).tolist() == [0.0, 1.0]
    assert scale(np.array([-2.0, 5.5], np.float32)).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_path_gives_the_same_masks(arch: str, tmp_path: Path, one_thread: None) -> None:
    import mlflow

    from segzoo.bundle.contract import run as run_bundle
    from segzoo.cli import main
    from segzoo.export.mlflow_model import save_pyfunc
    from segzoo.export.trained import load_trained

    run, network, rule = saved_run(arch, tmp_path)
    write_images(tmp_path / "images")
    expected = {name: rule.predict(network, pixels[None])[0][0] for name, (pixels, _) in IMAGES.items()}
    assert any(m.any() and not m.all() for m in expected.values()), "a constant mask would prove nothing"

    # segzoo inference: the bundle's inference.json over train.json, the network and the rule taken from the run (no --arch)
    run_bundle(BUNDLES / "pyconvunet", "inference", {
        "checkpoint": str(run / "model.pt"), "input_dir": str(tmp_path / "images"),
        "predictions_dir": str(tmp_path / "inference"),
        "device": "cpu"})
    # the MLflow pyfunc, fed the arrays as they are
    save_pyfunc(tmp_path / "pyfunc", load_trained(run, final_activation="identity"))
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    # the packed bundle, run by MONAI
    packed = tmp_path / "packed"
    assert main(["pack", str(run), "--bundle", str(BUNDLES / "pyconvunet"), "--output", str(packed)]) == 0
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=str(packed / "configs" / "inference.json"),
        workflow_type=None,
        bundle_root=str(packed),
        input_dir=str(tmp_path / "images"),
        output_dir=str(tmp_path / "packed_out"),
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()

    for name, (pixels, kind) in IMAGES.items():
        assert np.array_equal(read_mask(tmp_path / "inference" / f"{name}.{kind}"), expected[name]), f"segzoo inference, {name}"
        assert np.array_equal(pyfunc.predict(pixels[None]), expected[name][None]), f"pyfunc, {name}"
        # the packed bundle writes --output_ext (.png) for every input
        assert np.array_equal(read_mask(tmp_path / "packed_out" / f"{name}.png"), expected[name]), f"packed bundle, {name}"
