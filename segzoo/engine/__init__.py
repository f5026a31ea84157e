"""What bundle configs call that a JSON config cannot express: data loading, tracking, progress, plots, outputs.

Bundles stay recipes: they name these helpers and the registry's components;
nothing here knows a paper.
"""

from segzoo.engine.checkpoints import LastCheckpoint, NonFiniteLossError, StopOnNonFiniteLoss, output_dir
from segzoo.engine.handlers import MaskWriter, MetricsCSVWriter, ProgressBar, TrainHookHandler
from segzoo.engine.predict import panel, predict, probabilities
from segzoo.engine.runs import (
    amp_kwargs,
    inference_items,
    load_checkpoint,
    load_items,
    prepare_network,
    run_name,
    shared_run_name,
    train_loader_class,
)
from segzoo.engine.store import latest_checkpoint
from segzoo.engine.tracking import MLflowTracker
from segzoo.overrides import as_flag
from segzoo.engine.validation import ConfigError, check_components, check_overrides, check_params

__all__ = [
    "ConfigError",
    "LastCheckpoint",
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "output_dir",
    "MLflowTracker",
    "MaskWriter",
    "MetricsCSVWriter",
    "ProgressBar",
    "amp_kwargs",
    "as_flag",
    "check_components",
    "check_overrides",
    "check_params",
    "TrainHookHandler",
    "inference_items",
    "latest_checkpoint",
    "load_checkpoint",
    "load_items",
    "panel",
    "predict",
    "prepare_network",
    "probabilities",
    "run_name",
    "shared_run_name",
    "train_loader_class",
]
