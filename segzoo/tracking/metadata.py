"""What makes a run readable in MLflow's UI without opening it: experiment kind, source, dataset, description.

MLflow 3 opens an experiment on its GenAI overview (traces, token usage) unless told it holds model training
(by the experiment's kind, or in later UIs by a link's ``workflowType``: :func:`ui_link`); the runs table's
Source, Dataset and Description columns read MLflow's own tags and dataset inputs; its compare view charts
parameters, which are only usable under short names. Each function here takes an explicit client and run (or
experiment) id: no MLflow global state is touched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import segzoo
from segzoo.plugins import BUILTIN_PLUGINS
from segzoo.tracking.datasets import dataset_inputs

# The experiment tag MLflow 3's UI read to choose an experiment's pages (and not ask for its type) until its
# sidebar switch (below) came; MLflow 2 and the UIs with the switch (3.17 checked) ignore it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"  # the UI's "Model training": runs table first
MODEL_TRAINING = {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}  # the tags a new experiment is created with
# Later MLflow 3 UIs (3.17 checked) pick their pages from a sidebar switch, remembered by the browser and GenAI
# first, not from the experiment's kind; this URL query selects "Model training" (see the README).
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
DESCRIPTION_TAG = "mlflow.note.content"
# Bundle keys that place or plumb a run rather than define what it trains; not repeated as short parameters.
PLUMBING_KEYS = frozenset({"bundle_name", "imports", "tracking_uri", "parent_run_id", "resume", "run_name", "runs_dir",
                           "output_dir", "checkpoint", "device", "num_workers"})
SHORT_NAMES = {"arch": "architecture"}  # the name the run's components already log it under


def mark_as_model_training(client: Any, experiment: Any) -> None:
    """Tag an existing experiment (an MLflow ``Experiment``) as model training, unless it says its kind already (a
    user's choice in the UI stands); new experiments are created with :data:`MODEL_TRAINING` as their tags."""
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)


def plugin_versions() -> dict[str, str]:
    """``{plugin name: version}`` of every plugin that loaded (the core's own components carry segzoo's version)."""
    return {p.name: p.version for p in segzoo.plugin_manager().plugins if p.error is None and p.name not in BUILTIN_PLUGINS}


def source_tags(source_name: str | None = None) -> dict[str, str]:
    """MLflow's run-context tags (``mlflow.user``, ``mlflow.source.name``/``type``, ...) as ``mlflow.start_run``
    would set them, with segzoo's own git commit, branch and repository (the code that trained, wherever the
    command was started from), ``source_name`` if given (a bundle folder) and the segzoo and plugin versions."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils import git_utils
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_BRANCH, MLFLOW_GIT_COMMIT, MLFLOW_GIT_REPO_URL, MLFLOW_SOURCE_NAME

    code = str(Path(segzoo.__file__).parent)
    git = {MLFLOW_GIT_COMMIT: git_utils.get_git_commit(code), MLFLOW_GIT_BRANCH: git_utils.get_git_branch(code),
           MLFLOW_GIT_REPO_URL: git_utils.get_git_repo_url(code)}
    tags = resolve_tags({key: value for key, value in git.items() if value})
    if source_name:
        tags[MLFLOW_SOURCE_NAME] = source_name
    tags["segzoo.version"] = segzoo.__version__
    tags.update({f"segzoo.plugin.{name}": version for name, version in plugin_versions().items()})
    return tags


def is_literal(value: Any) -> bool:
    """A value set in the config itself (``--KEY VALUE``), not a ``$`` expression or an ``@`` reference."""
    if isinstance(value, str):
        return not value.startswith(("$", "@", "%"))
    if isinstance(value, list):
        return all(is_literal(v) and not isinstance(v, (dict, list)) for v in value)
    return value is None or isinstance(value, (bool, int, float))


def key_params(config: dict[str, Any], dataset: str | None = None) -> dict[str, str]:
    """The bundle's top-level literal keys (architecture, preset, loss, epochs, batch_size, learning_rate, a train
    hook's B and X, ...: what ``--KEY`` overrides) under their own short names, plus the dataset's name."""
    params = {SHORT_NAMES.get(key, key): json.dumps(value) if isinstance(value, list) else str(value)
              for key, value in config.items() if key not in PLUMBING_KEYS and not key.startswith("_") and is_literal(value)}
    if dataset:
        params["dataset"] = dataset
    return params


def describe(config: dict[str, Any], dataset: str, evaluated: str | None = None) -> str:
    """One line saying what the run is: ``pyconvunet [paper] on isbi2012, 50 epochs, recipe paper``, or for an
    evaluation (``evaluated`` names the data's context) ``evaluation of pyconvunet [paper] on isbi2012 (test)``."""
    network = str(config.get("arch", "a network")) + (f" [{config['preset']}]" if config.get("preset") else "")
    if evaluated:
        return f"evaluation of {network} on {dataset} ({evaluated})"
    epochs = config.get("epochs")
    parts = [f"{network} on {dataset}"]
    if epochs is not None:
        parts.append(f"{epochs} epoch{'' if epochs == 1 else 's'}")
    parts += [f"{key.replace('_', ' ')} {config[key]}" for key in ("train_hook", "recipe") if config.get(key)]
    return ", ".join(parts)


def run_tags(source: str | None = None, description: str | None = None) -> dict[str, str]:
    """What a new run is tagged with: :func:`source_tags` and, if given, its one-line ``description``."""
    return source_tags(source) | ({DESCRIPTION_TAG: description} if description else {})


def set_description(client: Any, run_id: str, text: str) -> None:
    """Replace a run's description (the runs table's Description column, the run page's text; markdown)."""
    client.set_tag(run_id, DESCRIPTION_TAG, text)


def log_datasets(client: Any, run_id: str, datasets: dict[str, list[dict[str, Any]]], name: str, source: Any) -> None:
    """Log ``{context: items}`` as MLflow dataset inputs named ``name`` from ``source`` (see
    :func:`~segzoo.tracking.datasets.dataset_origin`)."""
    if datasets:
        client.log_inputs(run_id, datasets=dataset_inputs(datasets, name, source))


def summarize(client: Any, run_id: str, one_of_its_runs: str, title: str, table: str) -> None:
    """Describe a comparison's or study's parent run: ``title`` on the data and epochs of ``one_of_its_runs`` (whose
    dataset inputs it takes), then ``table`` (markdown), so the runs list says what it found without opening it."""
    child = client.get_run(one_of_its_runs)
    if child.inputs and child.inputs.dataset_inputs:
        client.log_inputs(run_id, datasets=child.inputs.dataset_inputs)
    params = child.data.params
    summary = f"{title} on {params.get('dataset', 'the bundle data')}, {params.get('epochs', '?')} epochs each"
    set_description(client, run_id, f"{summary}\n\n{table}")


def ui_link(client: Any, run_id: str) -> str:
    """Where to see the run: its page on the tracking server, or for a local store the ``mlflow ui`` command and the
    page it serves. The link asks for MLflow 3's "Model training" pages, which recent UIs do not pick from the
    experiment's kind (the README says which versions)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    page = f"#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"
    uri = client.tracking_uri
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{page}"


def system_metrics_enabled() -> bool:
    """On unless ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` is set false: MLflow's own switch (off by default for
    ``mlflow.start_run``), read the same way; the tests set it false."""
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING

    return not MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.defined or MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get()


def start_system_metrics(run_id: str, tracking_uri: str, resume: bool = False) -> Any | None:
    """MLflow's sampler of CPU, memory, disk, network and (with ``nvidia-ml-py``) GPU utilisation, logged as
    ``system/*`` metrics every ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (10) while the run lasts;
    None when switched off. Call ``.finish()`` on it when the run ends."""
    if not system_metrics_enabled():
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, resume_logging=resume, tracking_uri=tracking_uri)
    monitor.start()
    return monitor
