"""``segzoo compare``: train several architectures through one bundle under identical settings, then tabulate them.

Every architecture runs the bundle's own ``configs/train.json`` with the same overrides (data, split,
augmentation, seed, schedule); only ``arch`` differs. Each is then scored by the bundle's
``configs/evaluate.json`` on the held-out part of the seeded split. The outputs are the paper's
Tables 2-3 in one table (markdown and CSV), the training curves of all models on one plot and a
prediction panel, logged to one MLflow parent run with a child run per architecture.

A state file in the output folder records each finished architecture, so an interrupted comparison
rerun with the same ``--output`` skips those and reuses the parent run. The core knows no paper: the
published figures come from each architecture's ``reported[preset]`` (keys ``params_m``, ``gmac`` and
``<dataset>.miou`` / ``<dataset>.dice``).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import segzoo
from segzoo.files import atomic_open, atomic_write_json, atomic_write_text, read_json
from segzoo.registry import SegzooError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from monai.bundle import ConfigParser, ConfigWorkflow

STATE_FILE = "compare_state.json"
METRICS = ("miou", "dice", "foreground_iou")
COLUMNS = {  # CSV name -> markdown header (the markdown adds the input sizes to the GMac headers)
    "architecture": "architecture", "miou": "MIoU", "dice": "Dice", "foreground_iou": "fg IoU",
    "paper_miou": "paper MIoU", "paper_dice": "paper Dice", "params_m": "params (M)", "paper_params_m": "paper params (M)",
    "gmac": "GMac", "paper_gmac": "paper GMac", "cpu_ms": "CPU ms/image", "gpu_ms": "GPU ms/image",
}


@dataclass
class Comparison:
    """What one ``segzoo compare`` call asks for; ``settings`` must match for a rerun to resume."""

    bundle: Path
    archs: list[str]
    overrides: dict[str, Any]
    output: Path | None
    weights: str = "last"
    tracking_uri: str | None = None
    paper_dataset: str | None = None
    repeats: int = 5
    panel_images: int = 4
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        settings = {"bundle": str(self.bundle.resolve()), "overrides": self.overrides, "weights": self.weights}
        return json.loads(json.dumps(settings))  # as read back from the state file (tuples become lists)

    def config(self, name: str) -> Path:
        return self.bundle / "configs" / f"{name}.json"


# -- command line ----------------------------------------------------------------------------------
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
                   help="a bundle config override applied to every architecture (KEY as in --KEY; VALUE a Python/JSON literal)")
    p.add_argument("--weights", choices=("last", "best"), default="last",
                   help="evaluate the last epoch's weights (default; unbiased) or the checkpoint with the best validation "
                        "key metric (selected on the same held-out split, so optimistic)")
    p.add_argument("--paper_dataset", help="key of the paper's figures to show (e.g. isbi2012); default: guessed from "
                                           "--dataset_dir's folder name, none for synthetic data")
    p.add_argument("--repeats", type=int, default=5, help="timed inference runs per architecture (after one warm-up)")
    p.add_argument("--panel_images", type=int, default=4, help="held-out images in the prediction panel")
    p.add_argument("--tracking_uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or MLflow's default)")
    p.set_defaults(func=cmd_compare)
    return p


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a Python literal (``[64,64]``, ``2``, ``true``), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SegzooError(f"--override expects KEY=VALUE, got '{text}'")
    literal = {"true": "True", "false": "False", "null": "None"}.get(value, value)
    try:
        return key.lstrip("-"), ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return key.lstrip("-"), value


def cmd_compare(args: argparse.Namespace) -> int:
    overrides = dict(parse_override(o) for o in args.override)
    overrides.update({k: v for k, v in (("dataset_dir", args.dataset_dir), ("epochs", args.epochs)) if v is not None})
    archs = list(dict.fromkeys(a.strip() for a in args.archs.split(",") if a.strip()))
    for arch in archs:
        segzoo.get("architecture", arch)  # an unknown name fails now, naming the close ones, not after hours of training
    comparison = Comparison(args.bundle, archs, overrides, args.output, args.weights, args.tracking_uri, args.paper_dataset,
                            args.repeats, args.panel_images)
    table = run(comparison)
    print(f"comparison written to {table} (and {table.with_suffix('.csv').name} beside it)")
    return 0


def main(argv: Sequence[str]) -> int:
    """``segzoo compare ARGV...`` from Python (tests, scripts), with the ``segzoo`` command's parsing and error reporting."""
    from segzoo.cli import main as segzoo_main

    return segzoo_main(["compare", *argv])


# -- the comparison --------------------------------------------------------------------------------
def run(comparison: Comparison) -> Path:
    """Train and evaluate every architecture not yet finished, then write and log the tables and plots."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from segzoo.engine.runs import run_name

    defaults = _parser(comparison.config("train"), comparison.overrides)
    bundle_name = defaults.get_parsed_content("bundle_name")
    comparison.output = comparison.output or Path("runs") / bundle_name / "compare"
    comparison.tracking_uri = comparison.tracking_uri or mlflow.get_tracking_uri()
    comparison.state = _load_state(comparison)
    client = MlflowClient(tracking_uri=comparison.tracking_uri)
    parent = comparison.state.get("parent_run_id") or _start_parent(client, comparison, bundle_name, run_name("compare"))
    client.update_run(parent, status="RUNNING")
    try:
        for arch in comparison.archs:
            entry = comparison.state["archs"].setdefault(arch, {})
            if "metrics" in entry:
                print(f"{arch}: finished in {entry['run_dir']}, skipped")
                continue
            if "run_id" not in entry:
                entry.update(_train(comparison, arch, parent))
                _save_state(comparison)
            entry.update(_evaluate(comparison, arch, entry, client))
            _save_state(comparison)
        paths = _report(comparison, defaults)
        for path in paths:
            client.log_artifact(parent, str(path))
    except BaseException as exc:
        client.set_terminated(parent, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    return paths[0]


def _parser(config: Path, overrides: dict[str, Any]) -> ConfigParser:
    """The bundle config with the comparison's overrides, unresolved (for reading defaults)."""
    from monai.bundle import ConfigParser

    if not config.is_file():
        raise SegzooError(f"{config} not found: --bundle must be a bundle folder with configs/train.json and evaluate.json")
    parser = ConfigParser()
    parser.read_config(str(config))
    parser.update(overrides)
    return parser


def _workflow(config: Path, overrides: dict[str, Any]) -> ConfigWorkflow:
    """A MONAI ``ConfigWorkflow`` of ``config`` with ``overrides``, run in this process (no 8 s of imports per model)."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(config_file=str(config), workflow_type=None)
    workflow.parser.update(overrides)
    return workflow


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


def _start_parent(client: MlflowClient, comparison: Comparison, experiment: str, name: str) -> str:
    from mlflow.entities import Param

    from segzoo.engine.tracking import TrackingUnavailableError, flatten, get_or_create_experiment

    try:
        experiment_id = get_or_create_experiment(client, experiment)
        run_id = client.create_run(experiment_id, run_name=name).info.run_id
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        raise TrackingUnavailableError(
            f"cannot reach the MLflow tracking store at {comparison.tracking_uri} ({type(exc).__name__}: {exc}); "
            "nothing was trained."
        ) from None
    comparison.state["parent_run_id"] = run_id
    _save_state(comparison)
    params = {"archs": ",".join(comparison.archs), **flatten(comparison.settings)}
    # MLflow keys cannot hold '#', the bundle's nesting separator
    client.log_batch(run_id, params=[Param(key.replace("#", "."), value) for key, value in params.items()])
    return run_id


def _train(comparison: Comparison, arch: str, parent: str) -> dict[str, str]:
    """One training through the bundle's train.json; an interrupted one (``last.pt`` left) is resumed."""
    from segzoo.engine.checkpoints import LAST
    from segzoo.engine.tracking import RUN_ID_FILE

    runs_dir = comparison.output / "runs" / arch
    interrupted = sorted(runs_dir.glob(f"*/{LAST}"), key=lambda p: p.stat().st_mtime)
    if interrupted and _all_epochs_done(interrupted[-1]):  # stopped after training, before this was recorded
        run_dir = interrupted[-1].parent
    else:
        print(f"{arch}: {'resuming' if interrupted else 'training'} in {runs_dir}")
        workflow = _workflow(comparison.config("train"), {
            **comparison.overrides, "arch": arch, "runs_dir": str(runs_dir), "resume": bool(interrupted),
            "parent_run_id": parent, "tracking_uri": comparison.tracking_uri,
        })
        workflow.initialize()
        workflow.run()
        run_dir = Path(workflow.parser.get_parsed_content("output_dir"))
    return {"run_dir": str(run_dir), "run_id": (run_dir / RUN_ID_FILE).read_text().strip()}


def _all_epochs_done(last: Path) -> bool:
    """Whether ``last.pt`` is of a finished training (Ignite would start a finished one over, not resume it)."""
    trainer = torch.load(last, map_location="cpu", weights_only=True)["trainer"]
    return trainer["iteration"] >= trainer["epoch_length"] * trainer["max_epochs"]


def _evaluation(comparison: Comparison, arch: str, entry: dict[str, Any]) -> ConfigWorkflow:
    """The bundle's evaluate.json for ``arch``'s weights, with the comparison's overrides that it knows."""
    from segzoo.engine.checkpoints import LAST

    config = comparison.config("evaluate")
    known = _parser(config, {})
    overrides = {k: v for k, v in comparison.overrides.items() if k in known}
    checkpoint = Path(entry["run_dir"]) / (LAST if comparison.weights == "last" else "model.pt")
    return _workflow(config, {**overrides, "arch": arch, "checkpoint": str(checkpoint),
                              "tracking_uri": comparison.tracking_uri, "parent_run_id": entry["run_id"]})


def _evaluate(comparison: Comparison, arch: str, entry: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Held-out metrics and complexity, kept in the state and logged to the architecture's child run."""
    from segzoo.complexity import measure

    workflow = _evaluation(comparison, arch, entry)
    workflow.initialize()
    workflow.run()
    metrics = {k: float(v) for k, v in workflow.parser.get_parsed_content("evaluator").state.metrics.items()}
    network = workflow.parser.get_parsed_content("network").cpu()
    size = tuple(workflow.parser.get_parsed_content("patch_size"))
    counts = measure(network, workflow.parser.get_parsed_content("in_channels"), size)
    logged = {**{f"heldout_{k}": v for k, v in metrics.items()}, "params_m": counts.params_m, "gmac": counts.gmac}
    for name, value in logged.items():
        client.log_metric(entry["run_id"], name, value)
    print(f"{arch}: held-out " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return {"metrics": metrics, "params_m": counts.params_m, "gmac": counts.gmac}


# -- the report ------------------------------------------------------------------------------------
def _report(comparison: Comparison, defaults: ConfigParser) -> list[Path]:
    """comparison.md, comparison.csv, curves.png and predictions.png in the output folder, with the timings of all
    architectures measured now, one after the other, so they share the machine's conditions."""
    from segzoo.engine.plots import plt
    from segzoo.engine.predict import panel

    archs, out = comparison.archs, comparison.output
    entries = {arch: comparison.state["archs"][arch] for arch in archs}
    evaluations = {arch: _evaluation(comparison, arch, entry).parser for arch, entry in entries.items()}
    first = evaluations[archs[0]]
    inferer, items = first.get_parsed_content("inferer"), first.get_parsed_content("dataset#data")
    models = {arch: parser.get_parsed_content("network").cpu() for arch, parser in evaluations.items()}
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    ms = {(arch, device): ms_per_image(net, inferer, items[0]["image"], device, comparison.repeats)
          for device in devices for arch, net in models.items()}
    for net in models.values():
        net.cpu()
    preset = defaults.get_parsed_content("preset")
    dataset = comparison.paper_dataset or guess_paper_dataset(comparison.overrides.get("dataset_dir"), archs, preset)
    rows = [_row(arch, entries[arch], preset, dataset, ms[arch, "cpu"], ms.get((arch, "cuda"))) for arch in archs]
    context = {
        "in_channels": first.get_parsed_content("in_channels"), "patch_size": first.get_parsed_content("patch_size"),
        "image_size": tuple(torch.as_tensor(items[0]["image"]).shape[1:]), "held_out": len(items), "dataset": dataset,
    }
    _write_csv(rows, out / "comparison.csv")
    atomic_write_text(out / "comparison.md", _markdown(rows, comparison, context))
    save_comparison_curves({arch: _history(Path(entry["run_dir"])) for arch, entry in entries.items()}, out / "curves.png")
    figure = panel(models, items[: comparison.panel_images], inferer, "cpu")
    figure.savefig(out / "predictions.png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [out / name for name in ("comparison.md", "comparison.csv", "curves.png", "predictions.png")]


@torch.no_grad()
def ms_per_image(network: torch.nn.Module, inferer: Callable, image: Any, device: str, repeats: int) -> float:
    """Median wall time (ms) of ``inferer`` on one image, batch 1, after one warm-up run."""
    network = network.to(device).eval()
    batch = torch.as_tensor(image, dtype=torch.float32)[None].to(device)
    times = []
    for _ in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        inferer(batch, network)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])


def guess_paper_dataset(dataset_dir: str | None, archs: Sequence[str], preset: str) -> str | None:
    """The dataset key of the published figures (``isbi2012`` in ``isbi2012.miou``) that ``dataset_dir``'s folder name names.

    A key matches when the folder name, lower-cased and without punctuation, contains it or its letters
    before the first digit (``isbi2012`` matches ``ISBI``, ``isbi-2012``). Synthetic data matches none.
    """
    if not dataset_dir:
        return None
    name = re.sub(r"[^a-z0-9]", "", Path(dataset_dir).resolve().name.lower())
    reported = [segzoo.get("architecture", arch).reported.get(preset, {}) for arch in archs]
    keys = {key.rsplit(".", 1)[0] for figures in reported for key in figures if "." in key}
    for key in sorted(keys):
        plain = re.sub(r"[^a-z0-9]", "", key.lower())
        stem = re.match(r"[a-z]*", plain).group(0)
        if plain in name or (stem and stem in name):
            return key
    return None


def _row(arch: str, entry: dict[str, Any], preset: str, dataset: str | None, cpu_ms: float, gpu_ms: float | None
         ) -> dict[str, Any]:
    reported = segzoo.get("architecture", arch).reported.get(preset, {})
    paper = {m: reported.get(f"{dataset}.{m}") if dataset else None for m in ("miou", "dice")}
    return {
        "architecture": arch, **{m: entry["metrics"].get(m) for m in METRICS},
        "paper_miou": paper["miou"], "paper_dice": paper["dice"],
        "params_m": entry["params_m"], "paper_params_m": reported.get("params_m"),
        "gmac": entry["gmac"], "paper_gmac": reported.get("gmac"), "cpu_ms": cpu_ms, "gpu_ms": gpu_ms,
        "run_id": entry["run_id"], "run_dir": entry["run_dir"],
    }


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def _markdown(rows: list[dict[str, Any]], comparison: Comparison, context: dict[str, Any]) -> str:
    size = "x".join(str(s) for s in context["patch_size"])
    image = "x".join(str(s) for s in context["image_size"])
    headers = {**COLUMNS, "gmac": f"GMac @{context['in_channels']}x{size}", "paper_gmac": "paper GMac @3x512x512",
               "paper_params_m": "paper params (M, 3 in)"}
    overrides = ", ".join(f"`{k}={v}`" for k, v in comparison.overrides.items()) or "none"
    weights = ("the last epoch's weights (`last.pt`): nothing was selected on the held-out split"
               if comparison.weights == "last" else
               "the checkpoint with the best validation key metric (`model.pt`), selected on this same split, so optimistic")
    digits = {"params_m": 2, "paper_params_m": 2, "gmac": 3, "paper_gmac": 2, "cpu_ms": 1, "gpu_ms": 1}
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no CUDA here, so no GPU time"
    paper = (f"the figures each architecture's plugin reports: Table 2 scores for `{context['dataset']}`, Table 3 counts"
             if context["dataset"] else "each architecture's published Table 3 counts; no published scores match this data set")
    notes = [
        (f"Same recipe: each architecture ran the bundle's `train.json` with the same overrides ({overrides}); only `arch` "
         "differs, so data, split, augmentation, seed and schedule are identical."),
        (f"Scores: the bundle's `evaluate.json` on the held-out part of the seeded split ({context['held_out']} images, never "
         f"trained on), with {weights}. Each metric is computed per image, then averaged over images: MIoU is the mean of "
         "background and foreground IoU (paper eq. 1-2), Dice and fg IoU are of the foreground."),
        (f"Params and GMac: the trained network (in_channels={context['in_channels']}), one forward pass of a "
         f"{context['in_channels']}x{size} patch under the pinned rule of `segzoo/complexity.py`; the paper's are at 3x512x512."),
        (f"Times: median of {comparison.repeats} runs after a warm-up, batch 1, one held-out {image} image through the "
         f"evaluation's sliding-window inferer; CPU (torch threads: {torch.get_num_threads()}){gpu}."),
        f"Paper columns: {paper}.",
    ]
    lines = [
        f"# Comparison of {len(rows)} architectures with the `{comparison.bundle.name}` bundle",
        "",
        *(f"- {note}" for note in notes),
        "",
        "| " + " | ".join(headers.values()) + " |",
        "|" + "---|" * len(headers),
    ]
    lines += ["| " + " | ".join(_cell(row[k], digits.get(k, 4)) for k in headers) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _history(run_dir: Path) -> dict[str, list[list[float]]]:
    path = run_dir / "history.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_comparison_curves(histories: dict[str, dict[str, list[list[float]]]], path: Path) -> Path:
    """Paper Fig. 2-3: one panel per curve (train loss, each validation metric), one line per architecture."""
    from matplotlib.ticker import MaxNLocator

    from segzoo.engine.plots import plt

    names = sorted({name for history in histories.values() for name in history}, key=lambda n: (n != "train_loss", n))
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        for arch, history in histories.items():
            if name in history:
                steps, values = zip(*history[name])
                ax.plot(steps, values, marker="o", markersize=3, label=arch)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
