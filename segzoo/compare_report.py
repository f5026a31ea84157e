"""The report of ``segzoo compare``: tables (markdown and CSV), curves and a prediction panel of the compared models.

The timings of all architectures are measured here, one after the other, so they share the machine's conditions.
The core knows no paper: the published figures come from each architecture's ``reported[preset]`` (keys
``params_m``, ``gmac`` and ``<dataset>.<metric>``).
"""

from __future__ import annotations

import csv
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import segzoo
from segzoo.files import atomic_open, atomic_write_text
from segzoo.engine import bundle as bundles
from segzoo.engine import store

if TYPE_CHECKING:
    from segzoo.compare import Comparison

COUNTS = {"params_m": "params (M)", "paper_params_m": "paper params (M)", "gmac": "GMac", "paper_gmac": "paper GMac",
          "cpu_ms": "CPU ms/image", "gpu_ms": "GPU ms/image"}
DIGITS = {"params_m": 2, "paper_params_m": 2, "gmac": 3, "paper_gmac": 2, "cpu_ms": 1, "gpu_ms": 1}
REPORT_FILES = ("comparison.md", "comparison.csv", "curves.png", "predictions.png")


def write_report(comparison: Comparison) -> list[Path]:
    """comparison.md, comparison.csv, curves.png and predictions.png in the comparison's output folder."""
    from segzoo.engine.plots import plt, save_comparison_curves
    from segzoo.engine.predict import panel, probabilities

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
    dataset = comparison.paper_dataset or guess_paper_dataset(comparison.overrides.get("dataset_dir"), archs, preset)
    metrics = list(dict.fromkeys(name for entry in entries.values() for name in entry["metrics"]))
    rows = [_row(arch, entries[arch], metrics, preset, dataset, ms[arch, "cpu"], ms.get((arch, "cuda"))) for arch in archs]
    context = {
        "in_channels": bundles.get(first, "trained").in_channels, "patch_size": bundles.get(first, "patch_size"),
        "image_size": tuple(torch.as_tensor(items[0]["image"]).shape[1:]), "held_out": len(items), "dataset": dataset,
    }
    _write_csv(rows, out / "comparison.csv")
    atomic_write_text(out / "comparison.md", _markdown(rows, metrics, comparison, context))
    save_comparison_curves({arch: store.read_history(entry["run_dir"]) for arch, entry in entries.items()}, out / "curves.png")
    to_probabilities = bundles.get(first, "mask_probabilities") or probabilities
    figure = panel(models, items[: comparison.panel_images], inferer, "cpu", to_probabilities)
    figure.savefig(out / "predictions.png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [out / name for name in REPORT_FILES]


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


def guess_paper_dataset(dataset_dir: str | None, archs: Sequence[str], preset: str | None) -> str | None:
    """The dataset key of the published figures (``isbi2012`` in ``isbi2012.foreground_iou``) that ``dataset_dir``'s folder name names.

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


def _row(arch: str, entry: dict[str, Any], metrics: list[str], preset: str | None, dataset: str | None, cpu_ms: float,
         gpu_ms: float | None) -> dict[str, Any]:
    reported = segzoo.get("architecture", arch).reported.get(preset, {})
    return {
        "architecture": arch, **{m: entry["metrics"].get(m) for m in metrics},
        **{f"paper_{m}": reported.get(f"{dataset}.{m}") if dataset else None for m in metrics},
        "params_m": entry["params_m"], "paper_params_m": reported.get("params_m"),
        "gmac": entry["gmac"], "paper_gmac": reported.get("gmac"), "cpu_ms": cpu_ms, "gpu_ms": gpu_ms,
        "run_id": entry["run_id"], "run_dir": entry["run_dir"],
    }


def _definition(metric: str) -> str:
    """A registered metric's one-line definition (its summary); a bundle's own key (``iou_membrane``) is named as is."""
    try:
        return segzoo.get("metric", metric).summary
    except segzoo.SegzooError:
        return "the bundle's metric of that name (see its metadata.json)"


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def _markdown(rows: list[dict[str, Any]], metrics: list[str], comparison: Comparison, context: dict[str, Any]) -> str:
    size = "x".join(str(s) for s in context["patch_size"])
    image = "x".join(str(s) for s in context["image_size"])
    headers = {"architecture": "architecture", **{m: m for m in metrics}, **{f"paper_{m}": f"paper {m}" for m in metrics},
               **COUNTS, "gmac": f"GMac @{context['in_channels']}x{size}", "paper_gmac": "paper GMac @3x512x512",
               "paper_params_m": "paper params (M, 3 in)"}
    overrides = ", ".join(f"`{k}={v}`" for k, v in comparison.overrides.items()) or "none"
    weights = ("the last epoch's weights (`last.pt`): nothing was selected on the held-out split"
               if comparison.weights == "last" else
               "the checkpoint with the best validation key metric (`model.pt`), selected on this same split, so optimistic")
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no CUDA here, so no GPU time"
    paper = (f"the figures each architecture's plugin reports: scores for `{context['dataset']}`, parameter and GMac counts"
             if context["dataset"] else "each architecture's published counts; no published scores match this data set")
    notes = [
        (f"Same recipe: each architecture ran the bundle's `train.json` with the same overrides ({overrides}); only `arch` "
         "differs, so data, split, augmentation, seed and schedule are identical."),
        (f"Scores: the bundle's `evaluate.json` on the held-out part of the seeded split ({context['held_out']} images, never "
         f"trained on), with {weights}. Each metric is computed per image, then averaged over images: "
         + "; ".join(f"`{m}` = {_definition(m)}" for m in metrics) + "."),
        (f"Params and GMac: the trained network (in_channels={context['in_channels']}), one forward pass of a "
         f"{context['in_channels']}x{size} patch under the pinned rule of `segzoo/complexity.py`; the paper's are at 3x512x512."),
        (f"Times: median of {comparison.repeats} runs after a warm-up, batch 1, one held-out {image} image through the "
         f"evaluation's inferer; CPU (torch threads: {torch.get_num_threads()}){gpu}."),
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
    lines += ["| " + " | ".join(_cell(row[k], DIGITS.get(k, 4)) for k in headers) + " |" for row in rows]
    return "\n".join(lines) + "\n"
