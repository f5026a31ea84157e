"""The report of ``segzoo compare``: its tables (markdown and CSV) of the compared models.

Scores are the test part's, as mean ± sd over the training seeds, and every architecture is set against the
reference one by a paired difference over the test images with a bootstrap interval (:mod:`segzoo.paired`).

It takes plain data (:class:`Compared`): ``segzoo compare`` measures the timings, one model after the other so they
share the machine's conditions, and draws the figures; this module only tabulates.
The core knows no paper: the published figures come from each architecture's ``reported[preset]`` (keys
``params_m``, ``gmac`` and ``<dataset>.<metric>``).
"""

from __future__ import annotations

import csv
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import segzoo
from segzoo.files import atomic_open, atomic_write_text
from segzoo.paired import PairedDifference, paired_difference

COUNTS = {"params_m": "params (M)", "paper_params_m": "paper params (M)", "gmac": "GMac", "paper_gmac": "paper GMac",
          "cpu_ms": "CPU ms/image", "gpu_ms": "GPU ms/image"}
DIGITS = {"params_m": 2, "paper_params_m": 2, "gmac": 3, "paper_gmac": 2, "cpu_ms": 1, "gpu_ms": 1}
SIGNED = ("vs_reference", "ci_low", "ci_high")  # differences, shown with their sign


@dataclass
class Compared:
    """What the tables say, as plain data: the state's entries, the settings, and what was measured on the models."""

    bundle_name: str
    archs: list[str]
    entries: dict[str, dict[str, Any]]  # segzoo compare's state per architecture (metrics, sd, seeds, counts, runs)
    reference: str
    seeds: int
    weights: str
    overrides: dict[str, Any]
    repeats: int
    preset: str | None
    dataset: str | None  # the key of the published figures shown, if any
    ms: dict[str, tuple[float, float | None]]  # architecture -> (CPU, GPU) ms per image
    in_channels: int
    patch_size: list[int]
    image_size: tuple[int, ...]
    test_images: int


def write_tables(compared: Compared, out: Path) -> list[Path]:
    """comparison.md and comparison.csv in ``out``."""
    metrics = list(dict.fromkeys(name for entry in compared.entries.values() for name in entry["metrics"]))
    paired = {arch: versus_reference(compared.entries, arch, compared.reference, metrics[0]) for arch in compared.archs}
    rows = [_row(arch, compared.entries[arch], metrics, compared.preset, compared.dataset, *compared.ms[arch], paired[arch])
            for arch in compared.archs]
    sentences = [p.sentence(arch, compared.reference) for arch, p in paired.items() if p is not None]
    _write_csv(rows, out / "comparison.csv")
    atomic_write_text(out / "comparison.md", _markdown(rows, metrics, compared, sentences))
    return [out / "comparison.md", out / "comparison.csv"]


def versus_reference(
    entries: dict[str, dict[str, Any]], arch: str, reference: str | None, metric: str
) -> PairedDifference | None:
    """``arch - reference`` on ``metric``, paired over the test images with seeds averaged (``None`` for the reference)."""
    if reference is None or arch == reference or reference not in entries:
        return None
    per_seed = {name: [run["per_image"] for run in entries[name]["seeds"].values()] for name in (arch, reference)}
    return paired_difference(per_seed[arch], per_seed[reference], metric)


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
    """The dataset key of the published figures (``isbi2012`` in ``isbi2012.foreground_iou``) that ``dataset_dir``'s
    folder name names.

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
         gpu_ms: float | None, paired: PairedDifference | None) -> dict[str, Any]:
    reported = segzoo.get("architecture", arch).reported.get(preset, {})
    return {
        "architecture": arch, **{m: entry["metrics"].get(m) for m in metrics},
        **{f"{m}_sd": entry["sd"].get(m) for m in metrics}, "seeds": len(entry["seeds"]), "reported_part": "test",
        "vs_reference": paired and paired.mean, "ci_low": paired and paired.low, "ci_high": paired and paired.high,
        "verdict": paired and paired.verdict,
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


def _markdown(rows: list[dict[str, Any]], metrics: list[str], compared: Compared, sentences: list[str]) -> str:
    size = "x".join(str(s) for s in compared.patch_size)
    image = "x".join(str(s) for s in compared.image_size)
    headers = {"architecture": "architecture", **{m: f"{m} (mean)" for m in metrics}, **{f"{m}_sd": f"{m} ± sd" for m in metrics},
               "seeds": "seeds", "reported_part": "reported part", "vs_reference": f"vs {compared.reference}: {metrics[0]}",
               "ci_low": "95% CI low", "ci_high": "95% CI high", "verdict": "verdict",
               **{f"paper_{m}": f"paper {m}" for m in metrics},
               **COUNTS, "gmac": f"GMac @{compared.in_channels}x{size}", "paper_gmac": "paper GMac @3x512x512",
               "paper_params_m": "paper params (M, 3 in)"}
    overrides = ", ".join(f"`{k}={v}`" for k, v in compared.overrides.items()) or "none"
    weights = ("the last epoch's weights (`last.pt`)" if compared.weights == "last" else
               "the checkpoint with the best validation key metric (`model.pt`), selected on the validation part")
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no CUDA here, so no GPU time"
    paper = (f"the figures each architecture's plugin reports: scores for `{compared.dataset}`, parameter and GMac counts"
             if compared.dataset else "each architecture's published counts; no published scores match this data set")
    notes = [
        (
            f"Same recipe: each architecture ran the bundle's `train.json` with the same overrides ({overrides}) and training "
            f"seeds 0..{compared.seeds - 1}; only `arch` and `seed` differ, so data, parts, "
            "augmentation and schedule are identical."
        ),
        (
            f"Reported part: **test** ({compared.test_images} images, never trained on and never used for selection; the "
            "validation part selects), scored by the bundle's `evaluate.json` with "
            f"{weights}. Each metric is computed per image, then averaged over images: "
            + "; ".join(f"`{m}` = {_definition(m)}" for m in metrics)
            + "."
        ),
        (
            f"Seeds: {compared.seeds}; each score is the mean over seeds, ± the sample standard deviation (none for one seed). "
            f"'vs {compared.reference}' is the mean over test images of (architecture - {compared.reference}) on "
            f"`{metrics[0]}`, each image's score first averaged over seeds, with a 95% percentile bootstrap interval (10000 "
            "resamples of the images, seeded); verdict: better / worse when the interval excludes 0, "
            "else no detectable difference."
        ),
        (
            f"Params and GMac: the trained network (in_channels={compared.in_channels}), one forward pass of a "
            f"{compared.in_channels}x{size} patch under the pinned rule of `segzoo/complexity.py`; the paper's are at 3x512x512."
        ),
        (
            f"Times: median of {compared.repeats} runs after a warm-up, batch 1, one held-out {image} image through the "
            f"evaluation's inferer; CPU (torch threads: {torch.get_num_threads()}){gpu}."
        ),
        f"Paper columns: {paper}.",
    ]
    lines = [
        f"# Comparison of {len(rows)} architectures with the `{compared.bundle_name}` bundle",
        "",
        *(f"- {note}" for note in notes),
        "",
        "| " + " | ".join(headers.values()) + " |",
        "|" + "---|" * len(headers),
    ]
    lines += ["| " + " | ".join(f"{row[k]:+.4f}" if k in SIGNED and row[k] is not None else _cell(row[k], DIGITS.get(k, 4))
                                for k in headers) + " |" for row in rows]
    lines += ["", *(f"- {sentence}" for sentence in sentences)] if sentences else []
    return "\n".join(lines) + "\n"
