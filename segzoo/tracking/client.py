"""The one way segzoo opens an MLflow run: an explicit client, never MLflow's process-wide state.

Training runs (:class:`segzoo.engine.MLflowTracker`), comparison parents and tuning studies all open their run
here, so each fails the same way on an unreachable store (before anything trains, naming the URI), keeps a SQLite
store's artifacts beside it and logs parameters in the same flat form.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from segzoo.errors import SegzooError, on_failure
from segzoo.tracking.liveness import close_stale_runs, owner_tags
from segzoo.tracking.metadata import MODEL_TRAINING, mark_as_model_training, run_tags


def bound_http_retries() -> None:
    """A server that stops answering mid-run must cost seconds, not MLflow's default minutes of retries (unless the
    environment already says otherwise). Called where a client is opened, not on import."""
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
    """The id of experiment ``name``, created (with :func:`artifact_location`) if it does not exist; tagged as
    model training either way (see :func:`~segzoo.tracking.metadata.mark_as_model_training`)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, artifact_location=artifact_location(client.tracking_uri), tags=MODEL_TRAINING)
    mark_as_model_training(client, found)
    return found.experiment_id


def open_run(tracking_uri: str | None, experiment: str, run_name: str | None = None, parent_run_id: str | None = None,
             run_id: str | None = None, source: str | None = None, description: str | None = None) -> tuple[Any, str]:
    """``(client, run_id)`` of a new run of ``experiment`` (nested under ``parent_run_id`` if given), or of the
    existing ``run_id`` marked running again (a resumed training, comparison or study).

    A new run carries MLflow's source, user and git tags (``source``, e.g. the bundle folder, as its source name),
    segzoo's and the plugins' versions, and ``description`` (see :mod:`segzoo.tracking.metadata`).
    A ``run_id`` the store does not hold (the tracking store changed since) gets a new run instead, with a warning.
    Runs of this host whose process died are closed first (:func:`~segzoo.tracking.liveness.close_stale_runs`); every run
    is tagged with its host and process. Raises :class:`TrackingUnavailableError` naming the URI when the store cannot
    be reached.
    """
    client, experiment_id = connect(tracking_uri, experiment)
    uri = client.tracking_uri
    if run_id is not None and not _has_run(client, run_id):
        warnings.warn(f"MLflow run {run_id} is not in the tracking store {uri} (the store changed?); a new run is opened",
                      RuntimeWarning, stacklevel=2)
        run_id = None
    try:
        close_stale_runs(client, experiment_id)
    except Exception as exc:  # noqa: BLE001 - tidying other runs must never stop this one
        warnings.warn(f"could not check {uri} for runs left RUNNING: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        for key, value in owner_tags().items():
            client.set_tag(run_id, key, value)
    else:
        tags = {
            **run_tags(source, description),
            **owner_tags(),
            **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {}),
        }
        run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
    _OPENED.append((client, run_id))
    on_failure(close_open_runs)
    return client, run_id


_OPENED: list[tuple[Any, str]] = []  # every run this process opened, so a stop can close those still RUNNING


def close_open_runs(exc: BaseException) -> None:
    """Close every run this process opened that is still RUNNING: KILLED on Ctrl-C or SIGTERM, FAILED on an error.
    Called on the way out of the process (see :func:`segzoo.errors.on_failure`), after each workflow had its chance to
    close its own run with its artifacts, so no stop leaves a run RUNNING whatever it interrupted."""
    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    while _OPENED:
        client, run_id = _OPENED.pop()
        with contextlib.suppress(Exception):
            if client.get_run(run_id).info.status == "RUNNING":
                terminate(client, run_id, status)


# Set on the experiment by :func:`open_experiment` (so by every :func:`connect`): a write that proves the store takes writes
# before anything trains.
WRITE_CHECK_TAG = "segzoo.writable"


def connect(tracking_uri: str | None, experiment: str) -> tuple[Any, str]:
    """A client of the tracking store (``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default) and the id
    of ``experiment``, created if need be, after one harmless write (an experiment tag).

    This is the preflight of every command that logs: bundle configs call it (:func:`check_tracking_store`) before a run
    folder exists. Raises :class:`TrackingUnavailableError` naming the URI and the fix: one message for a server that
    does not answer, another for a store that answers but refuses to write.
    """
    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    try:
        check_reachable(uri)
    except Exception as exc:  # noqa: BLE001 - any failure here means the server is not there
        raise TrackingUnavailableError(
            f"cannot reach the MLflow tracking store at {uri} ({type(exc).__name__}: {exc}). Start the server "
            "(`mlflow server --backend-store-uri ... --host ...`, docs/group.md), fix MLFLOW_TRACKING_URI (or --tracking_uri), "
            "or unset it to log to the local store; nothing was trained."
        ) from None
    try:
        client, experiment_id = open_experiment(uri, experiment)
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if uri.startswith(("http://", "https://")):
            raise TrackingUnavailableError(
                f"the MLflow tracking server at {uri} answers but refused to write experiment '{experiment}' ({detail}). "
                "Check the server's log: its --backend-store-uri database must accept writes from the server's user and its "
                "--artifacts-destination must be writable, and your credentials (MLFLOW_TRACKING_USERNAME/PASSWORD or "
                "MLFLOW_TRACKING_TOKEN) must allow writing; nothing was trained."
            ) from None
        raise TrackingUnavailableError(
            f"cannot open or write the MLflow tracking store at {uri} ({detail}). Fix MLFLOW_TRACKING_URI (or --tracking_uri) "
            "so it names a store this user can write, or unset it to log to the local store; nothing was trained."
        ) from None
    return client, experiment_id


def check_tracking_store(tracking_uri: str | None, experiment: str) -> None:
    """Bundle configs' preflight (their ``initialize``): the store answers and takes writes, before a run folder exists
    or anything is built (see :func:`connect`). Only rank 0 of a distributed run checks; it alone logs."""
    if int(os.environ.get("RANK", "0")) == 0:
        connect(tracking_uri, experiment)


def _has_run(client: Any, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def open_experiment(uri: str, name: str) -> tuple[Any, str]:
    """A client of the store at ``uri`` and the id of its experiment ``name`` (created if need be), after one write.

    Several runs starting at once on a new SQLite or PostgreSQL store would race to create its tables (MLflow's
    migrations fail with "database is locked", "duplicate column" or a unique violation) and the experiment;
    :func:`store_lock` lets one process at a time open it.
    """
    from mlflow.tracking import MlflowClient

    bound_http_retries()
    with store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        experiment_id = get_or_create_experiment(client, name)
        client.set_experiment_tag(experiment_id, WRITE_CHECK_TAG, "true")  # proves the store takes writes (see connect)
        return client, experiment_id


def store_lock(uri: str, purpose: str = "segzoo.mlflow") -> contextlib.AbstractContextManager[Any]:
    """An inter-process lock on the database at ``uri``, for work that must not run twice at once (creating tables, or
    reading-then-writing shared state): a ``<db>.lock`` file beside a SQLite file, a PostgreSQL advisory lock (one per
    ``purpose``, so differently-purposed locks on one database never wait for each other) on a server database, on any
    machine that reaches it; no lock for other stores."""
    if uri.startswith("sqlite:///"):
        from filelock import FileLock

        database = Path(uri[len("sqlite:///") :]).resolve()
        database.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(database) + ".lock", timeout=600)
    if uri.startswith("postgresql"):
        return advisory_lock(uri, zlib.crc32(purpose.encode()))
    return contextlib.nullcontext()


@contextmanager
def advisory_lock(url: str, key: int) -> Iterator[None]:
    """PostgreSQL's session advisory lock ``key`` on the database at ``url``, held on its own connection for the block."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


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


def terminate(client: Any, run_id: str, status: str, attempts: int = 5) -> bool:
    """Close ``run_id`` with ``status`` while the process is going down anyway (an error, Ctrl-C, SIGTERM): a SQLite store
    still locked by the call the signal interrupted is retried for a few seconds, and a store that cannot be written
    costs a one-line warning, never a second traceback chained to the first. Whether the run was closed."""
    for attempt in range(attempts):
        try:
            client.set_terminated(run_id, status)
            return True
        except KeyboardInterrupt:  # a second Ctrl-C/SIGTERM while closing: stop trying, the stale-run check closes it later
            break
        except Exception as exc:  # noqa: BLE001 - see above
            if "locked" in str(exc) and attempt + 1 < attempts:
                time.sleep(0.5 * (attempt + 1))
                continue
            warnings.warn(f"MLflow run {run_id} could not be closed as {status} ({type(exc).__name__}: {str(exc)[:200]}); "
                          "the next training in this experiment closes it as KILLED", RuntimeWarning, stacklevel=2)
            break
    return False


@contextmanager
def closed_with_status(client: Any, run_id: str) -> Iterator[None]:
    """Close ``run_id`` as FINISHED when the block ends, KILLED on Ctrl-C or SIGTERM, FAILED on any other error (then
    re-raised, with no error of the closing chained to it: see :func:`terminate`)."""
    try:
        yield
    except BaseException as exc:
        terminate(client, run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
