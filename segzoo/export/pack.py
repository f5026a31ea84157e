"""``segzoo pack``: a bundle and a trained run as a self-contained MONAI Model Zoo bundle folder.

The folder holds ``configs/inference.json`` + ``metadata.json`` + the schema it names (+ ``logging.conf``),
``models/model.pt`` (the weights) and ``models/model.ts`` (the network as TorchScript, its raw output),
``scripts/processing.py`` (the recorded input and output rule, :mod:`segzoo.processing` as is), ``docs/README.md``
and ``samples/`` (two synthetic images, so it runs out of the box). Its inference config builds nothing from segzoo:
it loads the TorchScript file and the rule's module, so ``python -m monai.bundle run --config_file configs/inference.json`` needs
only MONAI, PyTorch, and the readers of the images it reads (Pillow for PNG, ITK for NIfTI/MHA/NRRD).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch

from segzoo.bundle.validation import load_config_file
from segzoo.data.items import inference_items
from segzoo.export.formats import export_network
from segzoo.export.trained import TrainedModel, find_checkpoint, sample_input
from segzoo.processing import Processing
from segzoo.runfiles.store import checkpoint_weights

SCHEMA = Path(__file__).with_name("meta_schema.json")
RULE = Path(__file__).parents[1] / "processing.py"  # shipped as scripts/processing.py
SAMPLES = 2


def inference_config(processing: Processing) -> dict[str, Any]:
    """A MONAI-only inference config whose transforms are the recorded rule (``scripts/processing.py``, shipped beside it):
    pixels scaled by the input rule, the sliding window, the activation and threshold (or arg-max), SaveImaged.

    MONAI's readers give images as (x, y) and its writers take them so; the rule runs on (y, x), as segzoo reads
    them, so the image is transposed after reading and the mask back before writing."""
    return {
        "imports": ["$import glob", "$import os", "$import monai", "$import numpy", "$import torch",
                    "$from scripts.processing import Processing",
                    "$from scripts.processing import as_stored as scripts_as_stored"],
        "bundle_root": ".",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "input_dir": "$@bundle_root + '/samples'",
        "output_dir": "$@bundle_root + '/predictions'",
        "output_ext": ".png",
        "processing": processing.record(),
        "rule": "$Processing.from_record(@processing)",
        "network_def": "$torch.jit.load(@bundle_root + '/models/model.ts', map_location='cpu')",
        "network": "$@network_def.to(@device).eval()",
        "datalist": "$[{'image': f} for f in sorted(glob.glob(os.path.join(@input_dir, '*')))]",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image", "image_only": True, "dtype": None},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Transposed", "keys": "image", "indices": [0, 2, 1]},
            {"_target_": "Lambdad", "keys": "image",
             "func": "$lambda x: monai.data.MetaTensor(@rule.prepare(scripts_as_stored(numpy.asarray(x), x.meta)), "
                     "meta=x.meta)"},
        ]},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False, "num_workers": 0},
        "inferer": "$@rule.inferer()",
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Lambdad", "keys": "pred", "func": "$@rule.mask_image"},
            {"_target_": "Transposed", "keys": "pred", "indices": [0, 2, 1]},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_ext": "@output_ext",
             "output_postfix": "", "output_dtype": "$numpy.uint8",
             "scale": "$255 if @processing['out_channels'] == 1 and @output_ext in ('.png', '.tif', '.tiff') else None",
             "resample": False, "separate_folder": False, "print_log": False},
        ]},
        "handlers": [{"_target_": "StatsHandler", "iteration_log": False}],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers"},
        # the rule reads each image's metadata (its stored pixel type); in `run`, not `initialize`: MONAI puts
        # bundle_root (scripts/) on sys.path only when it runs
        "inference": ["$monai.data.set_track_meta(True)", "$@evaluator.run()"],
        "run": ["$monai.data.set_track_meta(True)", "$@evaluator.run()"],
    }


def packed_metadata(bundle_meta: dict[str, Any], trained: TrainedModel, run: str) -> dict[str, Any]:
    """The bundle's metadata describing inference: the packed network, the rule around it, its masks and what running it needs."""
    rule = trained.processing
    classes = (
        {"0": "background", "1": "foreground"}
        if rule.out_channels == 1
        else {str(c): f"class {c}" for c in range(rule.out_channels)}
    )
    meta = {**bundle_meta, "monai_version": monai.__version__, "pytorch_version": torch.__version__.split("+")[0],
            "numpy_version": np.__version__, "required_packages_version": {}, "schema": SCHEMA.name}
    decision = f"probability >= {rule.threshold}" if rule.out_channels == 1 else "arg-max over classes"
    meta["description"] = (f"Inference with {trained.arch} ({trained.preset or 'no preset'}) "
                           f"trained by segzoo (run {run}), as TorchScript: "
                           f"images scaled by scripts/processing.py's input rule, a {list(rule.roi_size)} sliding window, "
                           f"{rule.activation}, then {decision}.")
    meta["pred_classes"] = f"mask of class indices ({decision})"
    meta.pop("eval_metrics", None)
    fmt = dict(meta["network_data_format"])
    # after the input rule: float32 in [0, 1]
    fmt["inputs"] = {"image": {**fmt["inputs"]["image"], "num_channels": rule.in_channels}}
    fmt["outputs"] = {
        "pred": {
            **fmt["outputs"]["pred"],
            "num_channels": 1,
            "dtype": "uint8",
            "value_range": [0, max(1, rule.out_channels - 1)],
            "is_patch_data": False,
            "channel_def": classes,
        }
    }
    meta["network_data_format"] = fmt
    return meta


def write_samples(folder: Path, synthetic: dict[str, Any] | None, in_channels: int) -> None:
    """A few of the bundle's synthetic images as 8-bit PNG, so the packed bundle runs without data."""
    from PIL import Image

    if not synthetic:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for item in inference_items(None, in_channels, synthetic)[:SAMPLES]:
        gray = np.asarray(item["image"])[0]
        Image.fromarray((np.clip(gray, 0, 1) * 255).round().astype(np.uint8)).save(folder / f"{item['name']}.png")


def readme(meta: dict[str, Any], trained: TrainedModel) -> str:
    return f"""# {meta.get('name', trained.arch)} (packed)

{meta.get('description', '')}

## Run it

```bash
python -m monai.bundle run --config_file configs/inference.json                      # the images of samples/
python -m monai.bundle run --config_file configs/inference.json --input_dir DIR --output_ext .nii.gz
python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath configs/{SCHEMA.name}
```

Run from this folder (or pass `--bundle_root FOLDER`). Masks go to `predictions/<image><ext>`.
It needs MONAI {monai.__version__} and PyTorch {torch.__version__.split('+')[0]} (or newer), and the reader of your images
(Pillow for PNG/TIFF, ITK for NIfTI/MHA/NRRD); not segzoo nor its plugins: `models/model.ts` holds the network.
Images are fed by the rule recorded at training (`processing` in `configs/inference.json`, applied by
`scripts/processing.py`, the module segzoo itself uses): unsigned integers divided by their dtype's maximum, signed
integers and floats min-max scaled per image, gray repeated to {trained.processing.in_channels} channels; a
{list(trained.processing.roi_size)} sliding window; {trained.processing.activation}, then a threshold of
{trained.processing.threshold} (one channel) or the arg-max (several).

`models/model.pt` holds the weights for segzoo: `segzoo.create_model("{trained.arch}", {trained.preset!r}, **params)` with the
parameters of `models/params.json`.
"""


def pack(run: str | Path, bundle: str | Path, output: str | Path, trained: TrainedModel) -> Path:
    """Write the Model Zoo folder ``output`` for ``run`` trained with ``bundle``; the folder."""
    bundle, output = Path(bundle), Path(output)
    configs = bundle / "configs"
    training = load_config_file(configs / "train.json")  # the synthetic data the bundle trains on (inference.json is an overlay)
    (output / "configs").mkdir(parents=True, exist_ok=True)
    (output / "models").mkdir(exist_ok=True)
    (output / "docs").mkdir(exist_ok=True)
    (output / "scripts").mkdir(exist_ok=True)
    export_network(
        trained.network, "torchscript", output / "models" / "model.ts", sample_input(trained, max(trained.processing.roi_size))
    )
    shutil.copy(RULE, output / "scripts" / "processing.py")
    (output / "scripts" / "__init__.py").write_text("")
    shutil.copy(SCHEMA, output / "configs" / SCHEMA.name)
    torch.save(checkpoint_weights(find_checkpoint(run)), output / "models" / "model.pt")
    (output / "models" / "params.json").write_text(json.dumps(trained.params, indent=2, default=str))
    meta = packed_metadata(load_config_file(configs / "metadata.json"), trained, Path(run).name)
    (output / "configs" / "metadata.json").write_text(json.dumps(meta, indent=4))
    (output / "configs" / "inference.json").write_text(json.dumps(inference_config(trained.processing), indent=4))
    if (configs / "logging.conf").is_file():
        shutil.copy(configs / "logging.conf", output / "configs" / "logging.conf")
    (output / "docs" / "README.md").write_text(readme(meta, trained))
    write_samples(output / "samples", training.get("synthetic"), trained.in_channels)
    return output
