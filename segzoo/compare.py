"""``segzoo compare``: train several architectures through one bundle under identical settings, then tabulate them.

Every architecture runs the bundle's ``training`` workflow with the same overrides (data, split, augmentation,
seed, schedule); only ``arch`` differs. Each is then scored by the bundle's ``evaluating`` workflow on the
held-out part of the seeded split. Both run through :func:`segzoo.engine.bundle.run`, so any bundle keeping the
bundle contract can be compared. The report (:mod:`segzoo.compare_report`) is logged to one MLflow parent run
with a child run per architecture.

A state file in the output folder records each finished architecture, so an interrupted comparison rerun with
the same ``--output`` skips those and reuses the parent run.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import segzoo
from segzoo.engine import bundle as bundles
from segzoo.engine import store
from segzoo.engine.bundle import Bundle
from segzoo.errors import SegzooError
from segzoo.files import atomic_write_json, read_json
from segzoo.overrides import parse_overrides

STATE_FILE = "compare_state.json"


@dataclass
class Comparison:
    """What one ``segzoo compare`` call asks for; ``settings`` must match for a rerun to resume."""

    bundle: Bundle
    archs: list[str]
    overrides: dict[str, Any]
    output: Path | None = None
    weights: str = "last"
    tracking_uri: str | None = None
    paper_dataset: str | None = None
    repeats: int = 5
    panel_images: int = 4
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        settings = {"bundle": str(self.bundle.root.resolve()), "overrides": self.overrides, "weights": self.weights}
        return json.loads(json.dumps(settings))  # as read back from the state file (tuples become lists)

    def evaluation(self, arch: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``evaluating`` overrides of ``arch``'s trained weights (evaluate.json is an overlay over train.json)."""
        entry = self.state["archs"][arch]
        checkpoint = Path(entry["run_dir"]) / (store.LAST if self.weights == "last" else store.BEST)
        return {**self.overrides, "arch": arch, "checkpoint": str(checkpoint),
                "tracking_uri": self.tracking_uri, "parent_run_id": entry["run_id"], **(overrides or {})}


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``compare`` to the ``segzoo`` command's subparsers."""
    p = subparsers.add_parser("compare", help="train architectures with one bundle under identical settings and tabulate them")
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder with configs/train.json and configs/evaluate.json")
    p.add_argument("--archs", required=True, help="comma-separated registered architectures, e.g. unet,pyconvunet")
    p.add_argument("--dataset_dir", help="folder of image/mask pairs (default: the bundle's synthetic data)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the bundle's)")
    p.add_argument("--output", type=Path, help="folder of the tables, plots, runs and state (default: runs/<bundle>/compare); "
                                                 "rerun with the same one to resume")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a bundle config override applied to every architecture (KEY as in --KEY; VALUE JSON or a Python literal)")
    p.add_argument("--weights", choices=("last", "best"), default="last",
                   help="evaluate the last epoch's weights (default; unbiased) or the checkpoint with the best validation "
                        "key metric (selected on the same held-out split, so optimistic)")
    p.add_argument("--paper_dataset", help="key of the paper's figures to show (e.g. isbi2012); default: guessed from "
                                           "--dataset_dir's folder name, none for synthetic data")
    p.add_argument("--repeats", type=int, default=5, help="timed inference runs per architecture (after one warm-up)")
    p.add_argument("--panel_images", type=int, default=4, help="held-out images in the prediction panel")
    p.add_argument("--tracking_uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or MLflow's default)")
    p.add_argument("--register_winner", metavar="NAME", help="register the MLflow model of the architecture with the best "
                                                             "held-out key metric under NAME (segzoo.export.mlflow_model)")
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.override)
    overrides.update({k: v for k, v in (("dataset_dir", args.dataset_dir), ("epochs", args.epochs)) if v is not None})
    archs = list(dict.fromkeys(a.strip() for a in args.archs.split(",") if a.strip()))
    for arch in archs:
        segzoo.get("architecture", arch)  # an unknown name fails now, naming the close ones, not after hours of training
    bundle = Bundle(args.bundle)
    bundle.read("training", overrides)  # a broken contract or an unknown override fails now too
    comparison = Comparison(bundle, archs, overrides, args.output, args.weights, args.tracking_uri, args.paper_dataset,
                            args.repeats, args.panel_images)
    table = run(comparison)
    if args.register_winner:
        from segzoo.export.mlflow_model import register_winner

        register_winner(comparison.tracking_uri, comparison.state["archs"], args.register_winner)
    print(f"comparison written to {table} (and {table.with_suffix('.csv').name} beside it)")
    return 0


def run(comparison: Comparison) -> Path:
    """Train and evaluate every architecture not yet finished, then write and log the tables and plots."""
    import mlflow

    from segzoo.compare_report import write_report
    from segzoo.engine.mlflow_runs import closed_with_status, flatten, log_params, open_run
    from segzoo.engine.run_metadata import summarize, ui_link
    from segzoo.engine.runs import run_name

    comparison.output = comparison.output or Path("runs") / comparison.bundle.name / "compare"
    comparison.tracking_uri = comparison.tracking_uri or mlflow.get_tracking_uri()
    comparison.state = _load_state(comparison)
    parent_id = comparison.state.get("parent_run_id")
    title = f"comparison of {', '.join(comparison.archs)}"
    client, parent = open_run(comparison.tracking_uri, comparison.bundle.name, run_name("compare"), run_id=parent_id,
                              source=str(comparison.bundle.root.resolve()), description=title)
    if parent != parent_id:  # a new comparison, or its parent run is not in this tracking store (open_run warned)
        comparison.state["parent_run_id"] = parent
        _save_state(comparison)
        log_params(client, parent, {"archs": ",".join(comparison.archs), **flatten(comparison.settings)})
    with closed_with_status(client, parent):
        for arch in comparison.archs:
            entry = comparison.state["archs"].setdefault(arch, {})
            if "metrics" in entry:
                print(f"{arch}: finished in {entry['run_dir']}, skipped")
                continue
            if "run_id" not in entry:
                entry.update(_train(comparison, arch, parent))
                _save_state(comparison)
            entry.update(_evaluate(comparison, arch, client))
            _save_state(comparison)
        paths = write_report(comparison)
        for path in paths:
            client.log_artifact(parent, str(path))
        first_run = comparison.state["archs"][comparison.archs[0]]["run_id"]
        summarize(client, parent, first_run, title, paths[0].read_text())
    print(f"MLflow comparison: {ui_link(client, parent)}")
    return paths[0]


def _load_state(comparison: Comparison) -> dict[str, Any]:
    path = comparison.output / STATE_FILE
    if not path.exists():
        return {"settings": comparison.settings, "archs": {}}
    state = read_json(path, "the comparison's progress", "Delete it to start the comparison over, or pass another --output.")
    if state["settings"] != comparison.settings:
        differ = [k for k in comparison.settings if state["settings"].get(k) != comparison.settings[k]]
        raise SegzooError(
            f"{comparison.output} holds a comparison with other {', '.join(differ)} ({state['settings']}); "
            "its models would not be comparable with these. Rerun with the same options to resume it, or pass another --output."
        )
    return state


def _save_state(comparison: Comparison) -> None:
    """Written atomically after each step, so an interruption never leaves a half-written state."""
    atomic_write_json(comparison.output / STATE_FILE, comparison.state, indent=2)


def _train(comparison: Comparison, arch: str, parent: str) -> dict[str, str]:
    """One training through the bundle's training workflow (see :func:`segzoo.engine.bundle.train_in`)."""
    run_dir = bundles.train_in(comparison.output / "runs" / arch, comparison.bundle, {
        **comparison.overrides, "arch": arch, "parent_run_id": parent, "tracking_uri": comparison.tracking_uri}, label=arch)
    return {"run_dir": str(run_dir), "run_id": store.read_run_id(run_dir)}


def _evaluate(comparison: Comparison, arch: str, client: Any) -> dict[str, Any]:
    """Held-out metrics and complexity, kept in the state and logged to the architecture's child run."""
    from segzoo.complexity import measure

    parser = bundles.run(comparison.bundle, "evaluating", comparison.evaluation(arch))
    metrics = {k: float(v) for k, v in bundles.get(parser, "evaluator").state.metrics.items()}
    network = bundles.get(parser, "trained_network").cpu()
    counts = measure(network, bundles.get(parser, "trained").in_channels, tuple(bundles.get(parser, "patch_size")))
    logged = {**{f"heldout_{k}": v for k, v in metrics.items()}, "params_m": counts.params_m, "gmac": counts.gmac}
    run_id = comparison.state["archs"][arch]["run_id"]
    try:
        for name, value in logged.items():
            client.log_metric(run_id, name, value)
    except Exception as exc:  # noqa: BLE001 - a child run of an earlier tracking store: the state keeps the scores
        warnings.warn(f"{arch}: could not log the held-out scores to MLflow run {run_id} ({type(exc).__name__}: {exc}); "
                      f"they are in {comparison.output / STATE_FILE} and the report", RuntimeWarning, stacklevel=2)
    print(f"{arch}: held-out " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return {"metrics": metrics, "params_m": counts.params_m, "gmac": counts.gmac}
