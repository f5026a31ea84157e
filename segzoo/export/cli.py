"""``segzoo export`` and ``segzoo pack``: a trained run as TorchScript, ONNX, an MLflow model or a Model Zoo bundle."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from segzoo.errors import SegzooError
from segzoo.export.formats import FORMATS, SUFFIXES, TOLERANCE, export_network
from segzoo.export.trained import find_checkpoint, load_trained, sample_input
from segzoo.files import refuse_overwrite

MLFLOW = "mlflow"


def _trained(args: argparse.Namespace, final_activation: str = "auto"):
    try:
        params = json.loads(args.params) if args.params else None
    except json.JSONDecodeError as exc:
        raise SegzooError(f"--params {args.params!r} is not JSON ({exc}); pass e.g. --params '{{\"in_channels\": 1}}'") from None
    return load_trained(args.run, arch=args.arch, preset=args.preset, params=params, final_activation=final_activation)


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == MLFLOW:  # the raw output: the recorded rule applies the activation after the window
        from segzoo.export.mlflow_model import save_pyfunc

        output = refuse_overwrite(args.output or find_checkpoint(args.run).parent / "mlflow_model", args.overwrite)
        if output.is_file() or (output.is_dir() and any(output.iterdir()) and not (output / "MLmodel").is_file()):
            raise SegzooError(f"{output} is not an MLflow model folder (no MLmodel file in it), "
                              "so --overwrite does not replace it; "
                              "pass another --output folder")
        if output.is_dir():
            shutil.rmtree(output)  # an earlier export's model folder, replaced as --overwrite asked
        save_pyfunc(output, _trained(args, final_activation="identity"))
        print(f"MLflow model -> {output} (mlflow.pyfunc.load_model('{output}').predict(images))")
        return 0
    checkpoint = find_checkpoint(args.run)
    trained = _trained(args)
    output = refuse_overwrite(args.output or checkpoint.with_suffix(SUFFIXES[args.format]), args.overwrite, reads=[checkpoint])
    result = export_network(trained.network, args.format, output, sample_input(trained, args.size), args.tolerance)
    print(result.summary())
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from segzoo.bundle.contract import Bundle
    from segzoo.export.pack import pack

    Bundle(args.bundle)  # refused first, naming the folder, when it is none
    refuse_overwrite(args.output, args.overwrite)
    folder = pack(args.run, args.bundle, args.output, _trained(args, final_activation="identity"))
    print(f"Model Zoo bundle -> {folder}\nrun it: cd {folder} && python -m monai.bundle run --config_file configs/inference.json "
          "--input_dir IMAGES")
    return 0


def _add_network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run folder (runs/<bundle>/<run>/ with model.pt or last.pt) or a checkpoint file")
    p.add_argument("--arch", help="architecture (default: the run's components.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an --output that exists (never the checkpoint read)")
    p.add_argument("--preset", help="preset (default: the run's)")
    p.add_argument("--params", help='architecture parameters over the run\'s, as JSON, e.g. \'{"in_channels": 1}\'')


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` and ``pack`` to the ``segzoo`` command's subparsers."""
    p = subparsers.add_parser("export", help="a trained run as TorchScript, ONNX or an MLflow model, checked against PyTorch")
    _add_network_options(p)
    p.add_argument("--format", required=True, choices=(*FORMATS, MLFLOW))
    p.add_argument(
        "--output", help="file (folder for mlflow) to write; default: beside the checkpoint (model.ts, model.onnx, mlflow_model/)"
    )
    p.add_argument("--size", type=int, default=256, help="height and width of the random sample input the export is checked on")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help="largest max-abs difference to PyTorch accepted (fp32)")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("pack", help="a bundle and a trained run as a self-contained MONAI Model Zoo bundle folder")
    _add_network_options(p)
    p.add_argument("--bundle", required=True, type=Path, help="the bundle the run was trained with, e.g. bundles/pyconvunet")
    p.add_argument("--output", required=True, type=Path, help="folder to create (configs/, models/, docs/)")
    p.set_defaults(func=cmd_pack)
