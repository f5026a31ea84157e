"""The one way segzoo opens an MLflow run: an explicit client, never MLflow's process-wide state.

Training runs (:class:`segzoo.engine.MLflowTracker`), comparison parents and tuning studies all open their run
here, so each fails the same way on an unreachable store (before anything trains, naming the URI), keeps a SQLite
store's artifacts beside it and logs parameters in the same flat form.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from segzoo.registry import SegzooError

# A server that stops answering mid-run must cost seconds, not MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


class TrackingUnavailableError(SegzooError):
    """The MLflow tracking store could not be reached before training."""


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast on an HTTP tracking server that does not answer (MLflow itself would retry for minutes)."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            return  # it answered: some servers have no /health, which is fine
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectionError(getattr(exc, "reason", exc)) from None


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store (``sqlite:///dir/mlflow.db`` ->
    ``dir/mlruns``), so the store is one folder whichever directory a run starts from (MLflow would use
    ``./mlruns`` of that directory); None lets any other store decide."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).resolve().parent / "mlruns").as_uri()
    return None


def get_or_create_experiment(client: Any, name: str) -> str:
    """The id of experiment ``name``, created (with :func:`artifact_location`) if it does not exist."""
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name, artifact_location=artifact_location(client.tracking_uri))


def open_run(tracking_uri: str | None, experiment: str, run_name: str | None = None, parent_run_id: str | None = None,
             run_id: str | None = None) -> tuple[Any, str]:
    """``(client, run_id)`` of a new run of ``experiment`` (nested under ``parent_run_id`` if given), or of the
    existing ``run_id`` marked running again (a resumed training, comparison or study).

    Raises :class:`TrackingUnavailableError` naming the URI when the store cannot be reached.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or mlflow.get_tracking_uri()
    try:
        check_reachable(uri)
        client = MlflowClient(tracking_uri=uri)
        if run_id is not None:
            client.update_run(run_id, status="RUNNING")
            return client, run_id
        experiment_id = get_or_create_experiment(client, experiment)
        tags = {"mlflow.parentRunId": parent_run_id} if parent_run_id else None
        return client, client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        raise TrackingUnavailableError(
            f"cannot reach the MLflow tracking store at {uri} ({type(exc).__name__}: {exc}). Start the server, "
            "fix MLFLOW_TRACKING_URI (or --tracking_uri), or unset it to log to the local store; nothing was trained."
        ) from None


def flatten(config: Any, prefix: str = "") -> dict[str, str]:
    """Scalar leaves of a nested config as ``a.b.c -> value`` (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    if isinstance(config, dict):
        for k, v in config.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(config, list) and all(not isinstance(v, (dict, list)) for v in config):
        out[prefix[:-1]] = json.dumps(config)[:6000]
    elif isinstance(config, list):
        for i, v in enumerate(config):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = str(config)[:6000]
    return out


def param_batches(params: dict[str, Any], size: int = 100) -> list[list[Any]]:
    """``params`` as MLflow ``Param`` batches of at most ``size``; a bundle's nesting ``#`` becomes ``.`` (MLflow keys
    cannot hold it)."""
    from mlflow.entities import Param

    items = [Param(str(key).replace("#", "."), str(value)) for key, value in params.items()]
    return [items[i : i + size] for i in range(0, len(items), size)]


def log_params(client: Any, run_id: str, params: dict[str, Any]) -> None:
    """Log ``params`` (flat; see :func:`flatten`) to ``run_id`` in batches MLflow accepts."""
    for batch in param_batches(params):
        client.log_batch(run_id, params=batch)


@contextmanager
def closed_with_status(client: Any, run_id: str) -> Iterator[None]:
    """Close ``run_id`` as FINISHED when the block ends, KILLED on Ctrl-C, FAILED on any other error (then re-raised)."""
    try:
        yield
    except BaseException as exc:
        client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
