"""``segzoo pack``: a bundle and a trained run as a self-contained MONAI Model Zoo bundle folder.

The folder holds ``configs/inference.json`` + ``metadata.json`` (+ ``logging.conf``), ``models/model.pt`` (the
weights) and ``models/model.ts`` (the network as TorchScript, probabilities out), ``docs/README.md`` and
``samples/`` (two synthetic images, so it runs out of the box). Its inference config builds nothing from segzoo:
it loads the TorchScript file, so ``python -m monai.bundle run --config_file configs/inference.json`` needs only
MONAI, PyTorch, and the readers of the images it reads (Pillow for PNG, ITK for NIfTI/MHA/NRRD).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch

from segzoo.data.items import inference_items
from segzoo.export.formats import export_network
from segzoo.export.graph import ExportError, output_names
from segzoo.export.trained import TrainedModel, find_checkpoint, sample_input

SCHEMA = Path(__file__).with_name("meta_schema.json")
SAMPLES = 2


def inference_config(patch_size: list[int], out_channels: int) -> dict[str, Any]:
    """A MONAI-only inference config: TorchScript network, sliding window, threshold (or argmax), SaveImaged."""
    binary = out_channels == 1
    discrete = {"threshold": 0.5} if binary else {"argmax": True}
    return {
        "imports": ["$import glob", "$import os", "$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "input_dir": "$@bundle_root + '/samples'",
        "output_dir": "$@bundle_root + '/predictions'",
        "output_ext": ".png",
        "intensity_max": 255,
        "patch_size": list(patch_size),
        "network_def": "$torch.jit.load(@bundle_root + '/models/model.ts', map_location='cpu')",
        "network": "$@network_def.to(@device).eval()",
        "datalist": "$[{'image': f} for f in sorted(glob.glob(os.path.join(@input_dir, '*')))]",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image", "image_only": True},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": 0, "a_max": "@intensity_max", "b_min": 0.0, "b_max": 1.0},
        ]},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False, "num_workers": 0},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": "@patch_size", "sw_batch_size": 4, "overlap": 0.25, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "AsDiscreted", "keys": "pred", **discrete},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_ext": "@output_ext", "output_postfix": "mask",
             "output_dtype": "$numpy.uint8", "scale": 255 if binary else None, "resample": False, "separate_folder": False,
             "print_log": False},
        ]},
        "handlers": [{"_target_": "StatsHandler", "iteration_log": False}],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader", "network": "@network",
                      "inferer": "@inferer", "postprocessing": "@postprocessing", "val_handlers": "@handlers"},
        "inference": ["$@evaluator.run()"],
        "run": ["$@evaluator.run()"],
    }


def packed_metadata(bundle_meta: dict[str, Any], trained: TrainedModel, run: str) -> dict[str, Any]:
    """The bundle's metadata, with the packed network's output (probabilities) and what running it needs."""
    classes = {"0": "foreground probability"} if trained.out_channels == 1 else {str(c): f"class {c} probability" for c in range(trained.out_channels)}
    meta = {**bundle_meta, "monai_version": monai.__version__, "pytorch_version": torch.__version__.split("+")[0],
            "numpy_version": np.__version__, "required_packages_version": {}, "schema": bundle_meta.get("schema", str(SCHEMA))}
    meta["description"] = f"{bundle_meta.get('description', '')} Packed by segzoo from run {run}: {trained.arch} ({trained.preset or 'no preset'}) as TorchScript."
    fmt = dict(meta["network_data_format"])
    fmt["outputs"] = {"pred": {**fmt["outputs"]["pred"], "num_channels": trained.out_channels, "value_range": [0, 1], "channel_def": classes}}
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
python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath meta_schema.json   # segzoo/export/meta_schema.json
```

Run from this folder (or pass `--bundle_root FOLDER`). Masks go to `predictions/<image>_mask<ext>`.
It needs MONAI {monai.__version__} and PyTorch {torch.__version__.split('+')[0]} (or newer), and the reader of your images
(Pillow for PNG/TIFF, ITK for NIfTI/MHA/NRRD); not segzoo nor its plugins: `models/model.ts` holds the network.
Images are scaled to [0, 1] by dividing by `--intensity_max` (255, for 8-bit images); the network sees
`{trained.in_channels}`-channel patches of {meta['network_data_format']['inputs']['image'].get('spatial_shape')} and returns
probabilities, thresholded at 0.5 (one channel) or arg-maxed (several).

`models/model.pt` holds the weights for segzoo: `segzoo.create_model("{trained.arch}", {trained.preset!r}, **params)` with the
parameters of `models/params.json`.
"""


def pack(run: str | Path, bundle: str | Path, output: str | Path, trained: TrainedModel) -> Path:
    """Write the Model Zoo folder ``output`` for ``run`` trained with ``bundle``; the folder."""
    if len(output_names(trained.network)) > 1:
        raise ExportError(f"{trained.arch} returns {output_names(trained.network)}; segzoo pack handles one-output networks only "
                          "(export it with segzoo export --format torchscript instead)")
    bundle, output = Path(bundle), Path(output)
    configs = bundle / "configs"
    bundle_inference = json.loads((configs / "inference.json").read_text())
    patch_size = list(bundle_inference.get("patch_size", [256, 256]))
    (output / "configs").mkdir(parents=True, exist_ok=True)
    (output / "models").mkdir(exist_ok=True)
    (output / "docs").mkdir(exist_ok=True)
    export_network(trained.network, "torchscript", output / "models" / "model.ts", sample_input(trained, max(patch_size)))
    state = torch.load(find_checkpoint(run), map_location="cpu", weights_only=True)
    torch.save(state.get("model", state), output / "models" / "model.pt")
    (output / "models" / "params.json").write_text(json.dumps(trained.params, indent=2, default=str))
    meta = packed_metadata(json.loads((configs / "metadata.json").read_text()), trained, Path(run).name)
    (output / "configs" / "metadata.json").write_text(json.dumps(meta, indent=4))
    (output / "configs" / "inference.json").write_text(json.dumps(inference_config(patch_size, trained.out_channels), indent=4))
    if (configs / "logging.conf").is_file():
        shutil.copy(configs / "logging.conf", output / "configs" / "logging.conf")
    (output / "docs" / "README.md").write_text(readme(meta, trained))
    write_samples(output / "samples", bundle_inference.get("synthetic"), trained.in_channels)
    return output
