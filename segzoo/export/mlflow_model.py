"""Log a training run's best network as an MLflow model, and register it (or a comparison's winner) by name.

The model is a pyfunc whose code is :mod:`segzoo.export.pyfunc_model` and whose artifact is the network as
TorchScript: ``mlflow.pyfunc.load_model("runs:/<id>/model").predict(images)`` returns masks in a process that
has neither segzoo nor the network's plugin (a PyTorch-flavour model would pickle the module, so loading it
would import the plugin's classes). Tracing a small network takes about a second, so every training logs one.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from segzoo.errors import SegzooError
from segzoo.export.formats import export_network
from segzoo.export.graph import ExportError
from segzoo.export.trained import TrainedModel, load_trained, sample_input

ARTIFACT = "model"
EXAMPLE_SIZE = 64
CODE = Path(__file__).with_name("pyfunc_model.py")
RULE = Path(__file__).parents[1] / "processing.py"  # shipped with the model as code/processing.py


def model_files(trained: TrainedModel, folder: Path) -> dict[str, Any]:
    """What :func:`mlflow.pyfunc.save_model` and :meth:`mlflow.models.Model.log` take for ``trained``: the model code,
    the TorchScript network (its raw output: the recorded rule applies the activation), the rule's module and record, a
    signature that takes any image array and an input example."""
    import mlflow
    import monai
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    torchscript = export_network(
        trained.network, "torchscript", folder / "model.ts", sample_input(trained, size=EXAMPLE_SIZE)
    ).path
    # (-1,) of objects: MLflow then passes any array through unchanged, so (N, H, W) and (N, C, H, W) images of any
    # dtype reach predict, which scales them by the recorded rule (a fixed dtype and rank would refuse them).
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(object), (-1,))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))]),
        params=ParamSchema([ParamSpec("probabilities", "boolean", False), ParamSpec("dtype", "string", "")]),
    )
    example = (np.random.default_rng(0).random((1, EXAMPLE_SIZE, EXAMPLE_SIZE)) * 255).astype(np.uint8)
    requirements = [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}",
                    f"monai=={monai.__version__}"]
    return {"python_model": str(CODE), "artifacts": {"torchscript": str(torchscript)}, "code_paths": [str(RULE)],
            "signature": signature, "input_example": example, "pip_requirements": requirements,
            "model_config": trained.processing.record()}


def save_pyfunc(path: Path, trained: TrainedModel) -> None:
    """An MLflow pyfunc model folder at ``path`` (see :func:`model_files`)."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="segzoo-mlflow-model-") as tmp, quiet_mlflow():
        mlflow.pyfunc.save_model(str(path), **model_files(trained, Path(tmp)))


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for the calls that read it (logging a model, resolving a
    ``models:/`` source), then given back with ``MLFLOW_TRACKING_URI`` as it was: MLflow's own ``_use_tracking_uri``
    unsets that variable on the way out, which sent every later run of the process (tune's next trial, compare's next
    architecture) to the local default store instead of the user's server."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    variable = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if variable is not None:
            os.environ["MLFLOW_TRACKING_URI"] = variable


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's advice on type hints and its download bars are noise for segzoo's own saves and loads."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    previous = os.environ.get(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name)
    os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hint.*")
            warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
            yield
    finally:
        if previous is None:
            os.environ.pop(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, None)
        else:
            os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = previous


def log_trained_model(client: Any, run_id: str, run_dir: str | Path, register_as: str | None = None, step: int = 0) -> str | None:
    """Log ``run_dir/model.pt`` as the run's MLflow 3 logged model ``model``, linked to the run and to its metrics at
    ``step`` (and register it as ``register_as``); its ``models:/`` URI.

    The same folder is also kept as the run's artifact ``model/``, so ``runs:/<run id>/model`` loads in MLflow 2
    clients too. A folder without ``model.pt`` (an evaluation) logs nothing. A network that cannot be exported costs
    a warning, not the run: its checkpoint is logged anyway.
    """
    import mlflow

    if not (Path(run_dir) / "model.pt").is_file():
        return None
    try:
        trained = load_trained(run_dir, final_activation="identity")
        with (
            tempfile.TemporaryDirectory(prefix="segzoo-mlflow-model-") as tmp,
            quiet_mlflow(),
            using_tracking_uri(client.tracking_uri),
        ):
            run = client.get_run(run_id)  # the model belongs to the run's experiment (MLflow would pick the active one)
            model = client.create_logged_model(run.info.experiment_id, ARTIFACT, run_id, params=dict(run.data.params))
            info = mlflow.models.Model.log(
                None,
                name=ARTIFACT,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                step=step,
                model_id=model.model_id,
                **model_files(trained, Path(tmp)),
            )
            client.finalize_logged_model(model.model_id, "READY")
            mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(Path(tmp) / ARTIFACT))
            client.log_artifacts(run_id, str(Path(tmp) / ARTIFACT), ARTIFACT)
    except (ExportError, SegzooError) as exc:
        warnings.warn(f"the run's MLflow model was not logged: {exc}", RuntimeWarning, stacklevel=2)
        return None
    if register_as:
        version = register_model(client, run_id, register_as, info.model_uri)
        print(f"registered model {register_as} version {version.version}: {model_link(client, register_as, version.version)}")
    return info.model_uri


def logged_model_uri(client: Any, run_id: str) -> str | None:
    """``models:/<id>`` of the MLflow 3 logged model run ``run_id`` produced, or None (a run logged by MLflow 2)."""
    run = client.get_run(run_id)
    outputs = getattr(run, "outputs", None)
    models = getattr(outputs, "model_outputs", None) or []
    return f"models:/{models[-1].model_id}" if models else None


def model_link(client: Any, name: str, version: str | int) -> str:
    """Where to open version ``version`` of registered model ``name``: its page on the server, or the local ``mlflow ui``
    command."""
    page = f"#/models/{name}/versions/{version}"
    uri = client.tracking_uri
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{page}"


def register_model(client: Any, run_id: str, name: str, source: str | None = None) -> Any:
    """A new version of registered model ``name`` (created if new) from ``source`` (default: run ``run_id``'s model folder)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    source = source or f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT}"
    model_id = source.removeprefix("models:/") if source.startswith("models:/") else None
    with using_tracking_uri(client.tracking_uri):  # MLflow resolves a models:/ source in the process's store
        return client.create_model_version(name, source=source, run_id=run_id, model_id=model_id)


def register_winner(tracking_uri: str, entries: dict[str, dict[str, Any]], name: str, metric: str | None = None) -> str:
    """Register the model of the compared architecture with the highest held-out ``metric`` (default: the key metric,
    the evaluator's first) as ``name``; returns the winner's architecture. ``entries`` is ``segzoo compare``'s state:
    ``{arch: {"run_id", "metrics"}}``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    metric = metric or next(iter(next(iter(entries.values()))["metrics"]))
    winner = max(entries, key=lambda arch: entries[arch]["metrics"][metric])
    run_id = entries[winner]["run_id"]
    version = register_model(client, run_id, name, logged_model_uri(client, run_id))
    print(f"registered {winner} (held-out {metric} {entries[winner]['metrics'][metric]:.4f}) "
          f"as {name} version {version.version}: "
          f"{model_link(client, name, version.version)}")
    return winner
