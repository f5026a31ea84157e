"""A segzoo bundle: a folder of MONAI bundle configs that keeps a declared contract, and the one in-process runner.

``segzoo compare``, ``segzoo tune``, ``segzoo reproduce`` and the tests run bundles through :func:`run` (or
:func:`load` to build a workflow's objects without running it), never through their own ``ConfigWorkflow``:
the contract is checked and unknown overrides are refused there, before anything trains. The contract states,
in the style of MONAI's ``monai/bundle/properties.py``, the config keys segzoo's code reads from a bundle; each
bundle's configs may compute them however they like (``python -m monai.bundle run`` reads the same files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.data import get_track_meta, set_track_meta

from segzoo.bundle.validation import ConfigError, check_override_values, load_config_file, load_config_files
from segzoo.runfiles import store

if TYPE_CHECKING:
    from monai.bundle import ConfigParser, ConfigWorkflow

CONFIG_FILES = {"training": "train.json", "evaluating": "evaluate.json", "inference": "inference.json"}
# evaluate.json and inference.json are overlays merged over train.json (as the MONAI Model Zoo's): they add keys, repeat none
OVERLAYS = ("evaluating", "inference")

_RUN = {  # keys of every workflow that runs, saves and logs somewhere
    "bundle_name": "the MLflow experiment and the runs folder's name",
    "arch": "the registered architecture built (what compare varies)",
    "in_channels": "image channels the network takes",
    "output_dir": "the folder this run writes to (read back after the run)",
    "tracking_uri": "the MLflow store (compare and tune pass theirs)",
    "parent_run_id": "the MLflow run this run nests under (compare and tune pass theirs)",
    "network": "the network as run (on its device, weights loaded)",
}
PROPERTIES: dict[str, dict[str, str]] = {
    "training": {
        **_RUN,
        "epochs": "training length",
        "seed": "seed of the split, the data order and the weights",
        "dataset_dir": "folder of image/mask pairs, or null for the bundle's synthetic data",
        "runs_dir": "parent folder of the run folders",
        "run_name": "the run folder's and the MLflow run's name",
        "resume": "null for a new run; true for the newest run if unfinished, or an unfinished run folder or name",
        "network_def": "the network as built by the registry (before device and wrappers)",
        "train#trainer": "the training engine",
        "validate#evaluator": "the validation engine; its metrics are the validation metrics (val_<name>)",
    },
    "evaluating": {
        **{key: _RUN[key] for key in ("bundle_name", "tracking_uri", "parent_run_id")},
        "checkpoint": "the weights evaluated",
        "trained": "the trained model as its run recorded it (segzoo.export.trained.TrainedModel: network, arch, preset, "
                   "in_channels, processing), loaded by the one loader, load_trained",
        "trained_network": "the network as run (on its device, weights loaded)",
        "evaluation_dir": "the folder the evaluation writes to (read back after the run)",
        "patch_size": "the input size that complexity (params, GMac) is counted at",
        "dataset#data": "the held-out items evaluated ({'image', 'label', 'name'})",
        "inferer": "callable (batch, network) -> network output, as evaluation runs it",
        "evaluator": "the evaluation engine; its metrics are the held-out scores",
    },
    "inference": {"bundle_name": _RUN["bundle_name"], "checkpoint": "the weights used",
                  "trained": "the trained model as its run recorded it (see evaluating)",
                  "predictions_dir": "where the masks are written", "evaluator": "the inference engine"},
}
# Keys a bundle may leave out; segzoo reads them as these defaults.
OPTIONAL: dict[str, Any] = {
    "preset": None,  # the architecture's preset, whose published figures compare shows
    "mask_probabilities": None,  # callable: inferer output -> (B, C, H, W) mask probabilities (default: sigmoid/softmax)
}


class BundleContractError(ConfigError):
    """A bundle's config lacks a key segzoo reads from every bundle."""


@dataclass(frozen=True)
class Bundle:
    """A bundle folder (``configs/train.json``, the overlays ``evaluate.json`` and ``inference.json``, ``metadata.json``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if not self.config_file("training").is_file():
            state = (
                "does not exist"
                if not self.root.exists()
                else "is a file"
                if not self.root.is_dir()
                else "has no configs/train.json"
            )
            raise ConfigError(f"{self.root} is not a bundle folder: it {state} (pass e.g. bundles/pyconvunet)")

    @property
    def name(self) -> str:
        """The bundle's ``bundle_name`` (its MLflow experiment), else its folder's name."""
        return load_config_file(self.config_file("training")).get("bundle_name", self.root.name)

    def config_file(self, workflow: str) -> Path:
        if workflow not in CONFIG_FILES:
            raise ConfigError(f"unknown bundle workflow '{workflow}'; workflows are: {', '.join(CONFIG_FILES)}")
        return self.root / "configs" / CONFIG_FILES[workflow]

    def files(self, workflow: str, extra_configs: Sequence[str | Path] = ()) -> list[str]:
        """The workflow's config files (``train.json``, then the overlay of ``evaluating``/``inference``), then
        ``extra_configs`` merged over them in order (as MONAI merges a ``--config_file`` list)."""
        overlay = [self.config_file(workflow)] if workflow in OVERLAYS else []
        files = [self.config_file("training"), *overlay, *map(Path, extra_configs)]
        for path in files:
            if not path.is_file():
                raise ConfigError(f"config file {path} not found (bundle {self.root}, workflow '{workflow}')")
        return [str(path) for path in files]

    def read(
        self, workflow: str, overrides: Mapping[str, Any] | None = None, extra_configs: Sequence[str | Path] = ()
    ) -> ConfigParser:
        """The workflow's merged config with ``overrides`` applied, unparsed; the contract, and each override's key and
        type (against the config's own value), checked."""
        from monai.bundle import ConfigParser

        files = self.files(workflow, extra_configs)
        parser = ConfigParser(load_config_files(files))
        self.check(workflow, parser, files)
        check_override_values(dict(overrides or {}), parser.get(), files, types=load_config_file(files[0]))
        parser.update(dict(overrides or {}))
        return parser

    def check(self, workflow: str, parser: ConfigParser, files: Sequence[str] | None = None) -> None:
        """Refuse a config without a key of :data:`PROPERTIES`, naming the key, what it is for and the file."""
        missing = [key for key in PROPERTIES[workflow] if key not in parser]
        if missing:
            where = " + ".join(files or [str(self.config_file(workflow))])
            raise BundleContractError(
                f"{where} lacks the key(s) every segzoo {workflow} config provides: "
                + "; ".join(f"'{key}' ({PROPERTIES[workflow][key]})" for key in missing)
                + ". Add them (docs/architecture.md, 'The bundle contract', lists every key)."
            )


def get(parser: ConfigParser, key: str) -> Any:
    """A contract key's parsed value, or its :data:`OPTIONAL` default when the bundle leaves it out."""
    if key not in parser and key in OPTIONAL:
        return OPTIONAL[key]
    return parser.get_parsed_content(key)


def load(bundle: Bundle | str | Path, workflow: str = "training", overrides: Mapping[str, Any] | None = None,
         extra_configs: Sequence[str | Path] = ()) -> ConfigWorkflow:
    """The bundle's ``workflow`` as an initialized MONAI ``ConfigWorkflow`` (objects buildable, nothing run yet)."""
    from monai.bundle import ConfigWorkflow

    bundle = bundle if isinstance(bundle, Bundle) else Bundle(Path(bundle))
    bundle.read(workflow, overrides, extra_configs)  # refuses a broken contract or an unknown override first
    # MONAI's own property check is off (workflow_type=None): segzoo's contract above is the one that applies.
    workflow_ = ConfigWorkflow(config_file=bundle.files(workflow, extra_configs), workflow_type=None, run_id=workflow,
                               **dict(overrides or {}))
    workflow_.initialize()
    return workflow_


def run(bundle: Bundle | str | Path, workflow: str = "training", overrides: Mapping[str, Any] | None = None,
        extra_configs: Sequence[str | Path] = ()) -> ConfigParser:
    """Run the bundle's ``workflow`` (``training``, ``evaluating`` or ``inference``) in this process.

    ``evaluating`` and ``inference`` run their overlay merged over ``train.json``, so a training's overrides apply as
    they are (the network itself comes from the run's ``checkpoint``). ``overrides`` are config keys (``a#b`` for
    nested ones), as ``--KEY VALUE`` on MONAI's command line; ``extra_configs`` are files merged over the workflow's
    config (e.g. a recipe). Returns the parsed config,
    so callers read what the run made: ``get(parser, "output_dir")``, the evaluator's ``state.metrics``, ...
    """
    track_meta = get_track_meta()
    workflow_ = load(bundle, workflow, overrides, extra_configs)
    try:
        workflow_.run()
    finally:
        workflow_.finalize()
        set_track_meta(track_meta)  # a bundle's initialize switches it off process-wide; the caller's setting comes back
    return workflow_.parser


def train_in(runs_dir: Path, bundle: Bundle | str | Path, overrides: Mapping[str, Any] | None = None,
             extra_configs: Sequence[str | Path] = (), label: str = "") -> Path:
    """The run folder of one training kept under ``runs_dir``: a finished run there is reused, an interrupted one
    (``last.pt`` left) resumed by name, else a new one trained. What ``segzoo compare`` and ``segzoo reproduce`` rerun
    after an interruption, so a finished training is never repeated and an unfinished one never started over."""
    newest = next(iter(store.runs_newest_first(runs_dir)), None) if runs_dir.is_dir() else None
    # trained, then stopped before the caller recorded it
    if newest is not None and store.is_finished(newest) and not store.logging_interrupted(newest):
        return newest
    interrupted = newest if newest is not None and store.resumable(newest) else None
    print(f"{label or runs_dir.name}: {'resuming' if interrupted else 'training'} in {runs_dir}")
    parser = run(bundle, "training", {**dict(overrides or {}), "runs_dir": str(runs_dir),
                                      "resume": str(interrupted) if interrupted else None}, extra_configs)
    return Path(get(parser, "output_dir"))
