"""``segzoo compare``: train several architectures through one bundle under identical settings, then tabulate them.

Every architecture runs the bundle's ``training`` workflow with the same overrides (data, split, augmentation,
schedule) once per training seed (``--seeds N``: seeds 0..N-1); only ``arch`` and ``seed`` differ. Each run is
then scored by the bundle's ``evaluating`` workflow on the test part of the split (validation only selects).
Both run through :func:`segzoo.bundle.contract.run`, so any bundle keeping the bundle contract can be compared.
The report (:mod:`segzoo.compare_report`) gives each architecture's mean ± sd over the seeds and its paired
difference from the reference architecture over the test images (:mod:`segzoo.paired`); it is logged to one
MLflow parent run, which carries the means, with a child run per architecture and seed.

A state file in the output folder records each finished seed, so an interrupted comparison rerun with the same
``--output`` skips those and reuses the parent run (:mod:`segzoo.study`).
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import segzoo
from segzoo.bundle import contract as bundles
from segzoo.bundle.contract import Bundle
from segzoo.errors import SegzooError
from segzoo.overrides import parse_overrides
from segzoo.paired import mean_and_sd, read_per_image
from segzoo.runfiles import store
from segzoo.study import load_state, save_state, seed_list

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
    seeds: int = 1
    reference: str | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        settings = {"bundle": str(self.bundle.root.resolve()), "overrides": self.overrides, "weights": self.weights,
                    "seeds": self.seeds}
        return json.loads(json.dumps(settings))  # as read back from the state file (tuples become lists)

    def evaluation(self, arch: str, overrides: dict[str, Any] | None = None, seed: int | None = None) -> dict[str, Any]:
        """The ``evaluating`` overrides of ``arch``'s trained weights (of ``seed``, default its first): the comparison's
        overrides evaluation knows, scoring the test part."""
        entry = self.state["archs"][arch]
        entry = entry["seeds"][str(seed)] if seed is not None else entry
        checkpoint = Path(entry["run_dir"]) / (store.LAST if self.weights == "last" else store.BEST)
        return {**self.overrides, "arch": arch, "checkpoint": str(checkpoint),
                "tracking_uri": self.tracking_uri, "parent_run_id": entry["run_id"], "eval_part": "test", **(overrides or {})}


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``compare`` to the ``segzoo`` command's subparsers."""
    p = subparsers.add_parser("compare", help="train architectures with one bundle under identical settings and tabulate them")
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder with configs/train.json and configs/evaluate.json")
    p.add_argument("--archs", required=True, help="comma-separated registered architectures, e.g. unet,pyconvunet")
    p.add_argument("--dataset_dir", help="folder of image/mask pairs (default: the bundle's synthetic data)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the bundle's)")
    p.add_argument("--output", type=Path, help="folder of the tables, plots, runs and state (default: runs/<bundle>/compare); "
                                                 "rerun with the same one to resume")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a bundle config override applied to every architecture (KEY as in --KEY; VALUE JSON or a Python literal)",
    )
    p.add_argument("--weights", choices=("last", "best"), default="last",
                   help="score the last epoch's weights (default) or the checkpoint with the best validation key metric "
                        "(selected on the validation part; the test part that is scored never selects)")
    p.add_argument("--seeds", type=int, default=1, help="train every architecture with training seeds 0..N-1 on the same "
                                                        "parts; the table shows mean ± sd and a paired comparison")
    p.add_argument("--reference", help="the architecture every other is compared with, paired over the test images "
                                       "(default: the first of --archs)")
    p.add_argument("--paper_dataset", help="key of the paper's figures to show (e.g. isbi2012); default: guessed from "
                                           "--dataset_dir's folder name, none for synthetic data")
    p.add_argument("--repeats", type=int, default=5, help="timed inference runs per architecture (after one warm-up)")
    p.add_argument("--panel_images", type=int, default=4, help="test images in the prediction panel")
    p.add_argument("--tracking_uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or MLflow's default)")
    p.add_argument("--register_winner", metavar="NAME", help="register the MLflow model of the architecture with the best "
                                                             "mean test key metric under NAME (segzoo.export.mlflow_model)")
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.override)
    overrides.update({k: v for k, v in (("dataset_dir", args.dataset_dir), ("epochs", args.epochs)) if v is not None})
    archs = list(dict.fromkeys(a.strip() for a in args.archs.split(",") if a.strip()))
    for arch in archs:
        segzoo.get("architecture", arch)  # an unknown name fails now, naming the close ones, not after hours of training
    reference = args.reference or archs[0]
    if reference not in archs:
        raise SegzooError(f"--reference {reference} is not one of --archs {','.join(archs)}; pass one of them")
    seed_list(args.seeds)  # a bad --seeds fails now
    bundle = Bundle(args.bundle)
    bundle.read("training", overrides)  # a broken contract or an unknown override fails now too
    comparison = Comparison(bundle, archs, overrides, args.output, args.weights, args.tracking_uri, args.paper_dataset,
                            args.repeats, args.panel_images, args.seeds, reference)
    table = run(comparison)
    if args.register_winner:
        from segzoo.export.mlflow_model import register_winner

        register_winner(comparison.tracking_uri, comparison.state["archs"], args.register_winner)
    print(f"comparison written to {table} (and {table.with_suffix('.csv').name} beside it)")
    return 0


def run(comparison: Comparison) -> Path:
    """Train and evaluate every architecture not yet finished, then write and log the tables and plots."""
    import mlflow

    from segzoo.engine.setup import run_name
    from segzoo.tracking.client import closed_with_status, flatten, log_params, open_run
    from segzoo.tracking.metadata import summarize, ui_link

    comparison.output = comparison.output or Path("runs") / comparison.bundle.name / "compare"
    comparison.tracking_uri = comparison.tracking_uri or mlflow.get_tracking_uri()
    comparison.reference = comparison.reference or comparison.archs[0]
    state_path = comparison.output / STATE_FILE
    comparison.state = load_state(state_path, comparison.settings, "comparison", {"archs": {}})
    parent_id = comparison.state.get("parent_run_id")
    title = f"comparison of {', '.join(comparison.archs)} ({comparison.seeds} seed(s) each, scored on the test part)"
    client, parent = open_run(comparison.tracking_uri, comparison.bundle.name, run_name("compare"), run_id=parent_id,
                              source=str(comparison.bundle.root.resolve()), description=title)
    if parent != parent_id:  # a new comparison, or its parent run is not in this tracking store (open_run warned)
        comparison.state["parent_run_id"] = parent
        save_state(state_path, comparison.state)
        log_params(client, parent, {"archs": ",".join(comparison.archs), "reference": comparison.reference,
                                    **flatten(comparison.settings)})
    with closed_with_status(client, parent):
        for arch in comparison.archs:
            entry = comparison.state["archs"].setdefault(arch, {})
            if "metrics" in entry:
                print(f"{arch}: finished in {entry['run_dir']}, skipped")
                continue
            for seed in seed_list(comparison.seeds):
                run = entry.setdefault("seeds", {}).setdefault(str(seed), {})
                if "metrics" in run:
                    continue
                if "run_id" not in run:
                    run.update(_train(comparison, arch, parent, seed))
                    save_state(state_path, comparison.state)
                run.update(_evaluate(comparison, arch, seed, client))
                save_state(state_path, comparison.state)
            entry.update(_aggregate(entry["seeds"]))
            _log_aggregate(client, parent, arch, entry)
            save_state(state_path, comparison.state)
        paths = _write_report(comparison)
        for path in paths:
            client.log_artifact(parent, str(path))
        first_run = comparison.state["archs"][comparison.archs[0]]["run_id"]
        summarize(client, parent, first_run, title, paths[0].read_text())
    print(f"MLflow comparison: {ui_link(client, parent)}")
    return paths[0]


def _write_report(comparison: Comparison) -> list[Path]:
    """Time the trained models one after the other (same machine conditions), draw their curves and predictions, and
    write the tables (:mod:`segzoo.compare_report`, which takes plain data); returns the files, tables first."""
    import torch

    from segzoo.compare_report import Compared, guess_paper_dataset, ms_per_image, write_tables
    from segzoo.engine.predict import panel, probabilities
    from segzoo.figures import plt, save_comparison_curves

    archs, out = comparison.archs, comparison.output
    entries = {arch: comparison.state["archs"][arch] for arch in archs}
    evaluations = {arch: bundles.load(comparison.bundle, "evaluating", comparison.evaluation(arch)).parser for arch in archs}
    first = evaluations[archs[0]]
    inferer, items = bundles.get(first, "inferer"), bundles.get(first, "dataset#data")
    models = {arch: bundles.get(parser, "trained_network").cpu() for arch, parser in evaluations.items()}
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    ms = {(arch, device): ms_per_image(net, inferer, items[0]["image"], device, comparison.repeats)
          for device in devices for arch, net in models.items()}
    for net in models.values():
        net.cpu()
    preset = bundles.get(first, "trained").preset
    tables = write_tables(Compared(
        comparison.bundle.name, archs, entries, comparison.reference or archs[0], comparison.seeds, comparison.weights,
        comparison.overrides, comparison.repeats, preset,
        comparison.paper_dataset or guess_paper_dataset(comparison.overrides.get("dataset_dir"), archs, preset),
        {arch: (ms[arch, "cpu"], ms.get((arch, "cuda"))) for arch in archs}, bundles.get(first, "trained").in_channels,
        bundles.get(first, "patch_size"), tuple(torch.as_tensor(items[0]["image"]).shape[1:]), len(items)), out)
    save_comparison_curves({arch: store.read_history(entry["run_dir"]) for arch, entry in entries.items()}, out / "curves.png")
    to_probabilities = bundles.get(first, "mask_probabilities") or probabilities
    figure = panel(models, items[: comparison.panel_images], inferer, "cpu", to_probabilities)
    figure.savefig(out / "predictions.png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [*tables, out / "curves.png", out / "predictions.png"]


def _aggregate(seeds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An architecture's test metrics as mean and sd over its seeds; its run, weights and counts are its first seed's."""
    runs = list(seeds.values())
    spread = {k: mean_and_sd([run["metrics"][k] for run in runs]) for k in runs[0]["metrics"]}
    return {"metrics": {k: m for k, (m, _) in spread.items()}, "sd": {k: sd for k, (_, sd) in spread.items()},
            **{k: runs[0][k] for k in ("run_dir", "run_id", "params_m", "gmac")}}


def _log_aggregate(client: Any, parent: str, arch: str, entry: dict[str, Any]) -> None:
    """The parent run carries each architecture's mean (and sd, over several seeds) of every test metric."""
    for name, value in entry["metrics"].items():
        client.log_metric(parent, f"{arch}.test_{name}_mean", value)
        if entry["sd"][name] is not None:
            client.log_metric(parent, f"{arch}.test_{name}_sd", entry["sd"][name])


def _train(comparison: Comparison, arch: str, parent: str, seed: int) -> dict[str, str]:
    """One training (a child run of the parent) through the bundle's training workflow (see
    :func:`segzoo.bundle.contract.train_in`)."""
    name = f"{arch}-seed{seed}"
    run_dir = bundles.train_in(comparison.output / "runs" / arch / f"seed{seed}", comparison.bundle, {
        **comparison.overrides, "arch": arch, "seed": seed, "run_name": name, "parent_run_id": parent,
        "tracking_uri": comparison.tracking_uri}, label=name)
    return {"run_dir": str(run_dir), "run_id": store.read_run_id(run_dir)}


def _evaluate(comparison: Comparison, arch: str, seed: int, client: Any) -> dict[str, Any]:
    """Test metrics (means and per image) and complexity, kept in the state and logged to the seed's child run."""
    from segzoo.complexity import measure

    parser = bundles.run(comparison.bundle, "evaluating", comparison.evaluation(arch, seed=seed))
    metrics = {k: float(v) for k, v in bundles.get(parser, "evaluator").state.metrics.items()}
    network = bundles.get(parser, "trained_network").cpu()
    counts = measure(network, bundles.get(parser, "trained").in_channels, tuple(bundles.get(parser, "patch_size")))
    logged = {**{f"test_{k}": v for k, v in metrics.items()}, "params_m": counts.params_m, "gmac": counts.gmac}
    run_id = comparison.state["archs"][arch]["seeds"][str(seed)]["run_id"]
    try:
        for name, value in logged.items():
            client.log_metric(run_id, name, value)
    except Exception as exc:  # noqa: BLE001 - a child run of an earlier tracking store: the state keeps the scores
        warnings.warn(f"{arch}: could not log the test scores to MLflow run {run_id} ({type(exc).__name__}: {exc}); "
                      f"they are in {comparison.output / STATE_FILE} and the report", RuntimeWarning, stacklevel=2)
    print(f"{arch} seed {seed}: test " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    per_image = read_per_image(Path(bundles.get(parser, "evaluation_dir")) / "per_image.csv")
    return {"metrics": metrics, "per_image": per_image, "params_m": counts.params_m, "gmac": counts.gmac}
