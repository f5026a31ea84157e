"""What bundle configs call that a JSON config cannot express: data loading, tracking, progress, plots, outputs,
plus the bundle contract and the one in-process runner (:mod:`segzoo.engine.bundle`).

Bundles stay recipes: they name these helpers and the registry's components;
nothing here knows a paper.
"""

from segzoo.engine.bundle import Bundle, BundleContractError
from segzoo.engine.checkpoints import LastCheckpoint, NonFiniteLossError, StopOnNonFiniteLoss
from segzoo.engine.handlers import MaskWriter, MetricsCSVWriter, ProgressBar, TrainHook, TrainHookHandler
from segzoo.engine.metrics import check_metrics, key_metric, metric_handlers, other_metrics
from segzoo.engine.mlflow_dataset import evaluation_context
from segzoo.engine.mlflow_runs import check_tracking_store
from segzoo.engine.predict import panel, predict, probabilities
from segzoo.engine.runs import (
    amp_kwargs,
    build_optional,
    inference_items,
    load_checkpoint,
    load_items,
    prepare_network,
    run_name,
    run_processing,
    set_determinism,
    shared_run_name,
    train_loader_class,
)
from segzoo.engine.store import evaluation_dir, fresh_output_dir, output_dir, run_checkpoint
from segzoo.engine.tracking import MLflowTracker
from segzoo.engine.validation import (
    ConfigError,
    check_components,
    check_overlay,
    check_overrides,
    check_params,
    check_patch_size,
    check_training_values,
)
from segzoo.errors import install_excepthook, raise_on_sigterm
from segzoo.overrides import as_flag, is_none

# Bundle configs import this package first: a config error is then the last line of `python -m monai.bundle run`,
# and a SIGTERM in any phase (start-up included) closes the open MLflow runs as KILLED instead of ending Python.
install_excepthook()
raise_on_sigterm()

__all__ = [
    "Bundle",
    "BundleContractError",
    "ConfigError",
    "LastCheckpoint",
    "MLflowTracker",
    "MaskWriter",
    "MetricsCSVWriter",
    "NonFiniteLossError",
    "ProgressBar",
    "StopOnNonFiniteLoss",
    "TrainHook",
    "TrainHookHandler",
    "amp_kwargs",
    "as_flag",
    "build_optional",
    "check_components",
    "check_metrics",
    "check_overlay",
    "check_overrides",
    "check_params",
    "check_tracking_store",
    "check_patch_size",
    "check_training_values",
    "evaluation_context",
    "evaluation_dir",
    "fresh_output_dir",
    "inference_items",
    "is_none",
    "key_metric",
    "load_checkpoint",
    "load_items",
    "metric_handlers",
    "other_metrics",
    "output_dir",
    "panel",
    "predict",
    "prepare_network",
    "probabilities",
    "run_checkpoint",
    "run_processing",
    "run_name",
    "set_determinism",
    "shared_run_name",
    "train_loader_class",
]
