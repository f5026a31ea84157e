"""The façade bundle configs call (``$segzoo.engine.<name>``): what a JSON config cannot express.

Each name lives in the room of its concern (docs/architecture.md): the bundle contract and checks in
:mod:`segzoo.bundle`, run files in :mod:`segzoo.runfiles`, data selection in :mod:`segzoo.data`, MLflow in
:mod:`segzoo.tracking`; Ignite handlers and training setup here. Configs name these helpers and the registry's
components; nothing here knows a paper. Importing it has no side effect (no excepthook, no environment variable):
:func:`~segzoo.bundle.validation.check_overrides`, which every config calls first, installs the excepthook and
the SIGTERM handler.

Plugins import their API from :mod:`segzoo`, :mod:`segzoo.nn` and :mod:`segzoo.data` (docs/writing-a-plugin.md).
"""

from segzoo.bundle.contract import Bundle, BundleContractError
from segzoo.bundle.metrics import check_metrics, key_metric, metric_handlers, other_metrics
from segzoo.bundle.validation import (
    ConfigError,
    check_components,
    check_overlay,
    check_overrides,
    check_params,
    check_patch_size,
    check_training_values,
)
from segzoo.data.items import inference_items, load_items
from segzoo.engine.checkpoints import LastCheckpoint, NonFiniteLossError, StopOnNonFiniteLoss
from segzoo.engine.handlers import MaskWriter, MetricsCSVWriter, ProgressBar, TrainHook, TrainHookHandler
from segzoo.engine.mlflow_tracker import MLflowTracker
from segzoo.engine.predict import panel, predict, probabilities
from segzoo.engine.setup import (
    amp_kwargs,
    build_optional,
    prepare_network,
    run_name,
    set_determinism,
    shared_run_name,
    train_loader_class,
)
from segzoo.overrides import as_flag, is_none
from segzoo.runfiles.network import load_checkpoint, run_processing
from segzoo.runfiles.store import evaluation_dir, fresh_output_dir, is_main_process, output_dir, run_checkpoint
from segzoo.tracking.client import check_tracking_store
from segzoo.tracking.datasets import evaluation_context

# What bundle configs call (``$segzoo.engine.<name>``): the JSON façade. Plugin API lives in segzoo, segzoo.nn, segzoo.data.
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
    "is_main_process",
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
