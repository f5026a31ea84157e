"""Log a training run's best network as an MLflow model, and register it (or a comparison's winner) by name.

The model is a pyfunc whose code is :mod:`segzoo.export.pyfunc_model` and whose artifact is the network as
TorchScript: ``mlflow.pyfunc.load_model("runs:/<id>/model").predict(images)`` returns masks in a process that
has neither segzoo nor the network's plugin (a PyTorch-flavour model would pickle the module, so loading it
would import the plugin's classes). Tracing a small network takes about a second, so every training logs one.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from segzoo.errors import SegzooError
from segzoo.export.formats import export_network
from segzoo.export.graph import ExportError
from segzoo.export.trained import load_trained, sample_input

ARTIFACT = "model"
SIZE_MULTIPLE = 32  # the largest total stride of the registered architectures (5 poolings)
EXAMPLE_SIZE = 64
CODE = Path(__file__).with_name("pyfunc_model.py")


def save_pyfunc(path: Path, torchscript: Path, in_channels: int) -> None:
    """An MLflow pyfunc model folder at ``path``: the model code, the TorchScript file, a signature and an input example."""
    import mlflow
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, in_channels, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))]),
        params=ParamSchema([ParamSpec("probabilities", "boolean", False)]),
    )
    example = np.random.default_rng(0).random((1, in_channels, EXAMPLE_SIZE, EXAMPLE_SIZE), dtype=np.float32)
    requirements = [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(str(path), python_model=str(CODE), artifacts={"torchscript": str(torchscript)},
                                 signature=signature, input_example=example, pip_requirements=requirements,
                                 model_config={"size_multiple": SIZE_MULTIPLE, "threshold": 0.5})


def log_trained_model(client: Any, run_id: str, run_dir: str | Path, register_as: str | None = None) -> str | None:
    """Log ``run_dir/model.pt`` as the run's MLflow model ``model`` (and register it as ``register_as``); its URI.

    A folder without ``model.pt`` (an evaluation) logs nothing. A network that cannot be exported costs a warning,
    not the run: its checkpoint is logged anyway.
    """
    if not (Path(run_dir) / "model.pt").is_file():
        return None
    try:
        trained = load_trained(run_dir)
        with tempfile.TemporaryDirectory(prefix="segzoo-mlflow-model-") as tmp:
            torchscript = export_network(trained.network, "torchscript", Path(tmp) / "model.ts",
                                         sample_input(trained, size=EXAMPLE_SIZE)).path
            save_pyfunc(Path(tmp) / ARTIFACT, torchscript, trained.in_channels)
            client.log_artifacts(run_id, str(Path(tmp) / ARTIFACT), ARTIFACT)
    except (ExportError, SegzooError) as exc:
        warnings.warn(f"the run's MLflow model was not logged: {exc}", RuntimeWarning, stacklevel=2)
        return None
    if register_as:
        register_model(client, run_id, register_as)
    return f"runs:/{run_id}/{ARTIFACT}"


def register_model(client: Any, run_id: str, name: str) -> Any:
    """A new version of registered model ``name`` (created if new) from run ``run_id``'s logged model."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT}"
    return client.create_model_version(name, source=source, run_id=run_id)


def register_winner(tracking_uri: str, entries: dict[str, dict[str, Any]], name: str, metric: str | None = None) -> str:
    """Register the model of the compared architecture with the highest held-out ``metric`` (default: the key metric,
    the evaluator's first) as ``name``; returns the winner's architecture. ``entries`` is ``segzoo compare``'s state:
    ``{arch: {"run_id", "metrics"}}``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    metric = metric or next(iter(next(iter(entries.values()))["metrics"]))
    winner = max(entries, key=lambda arch: entries[arch]["metrics"][metric])
    version = register_model(client, entries[winner]["run_id"], name)
    print(f"registered {winner} (held-out {metric} {entries[winner]['metrics'][metric]:.4f}) as {name} version {version.version}")
    return winner
