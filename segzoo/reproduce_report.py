"""The report of ``segzoo reproduce``: one line per row and paper column, as markdown and CSV.

Each line says what was measured (our metric and its definition) on which part (test), as mean ± sd over
how many seeds, how it compares with the table's reference row (paired bootstrap over the test images, see
:mod:`segzoo.paired`), under which protocol, for how many epochs, on which hardware and how long it took,
beside the paper's value and the difference. Rows that did not run say why; data sets that were not given say
where to get them. It takes the reproduction's plain state, never the models.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from segzoo.paired import PairedDifference, paired_difference
from segzoo.tables import Row, Table

SELECTED_ON_REPORTED = "selected on the reported split"
COLUMNS = {  # CSV name -> markdown header
    "row": "row", "column": "paper column -> ours", "paper": "paper", "ours": "ours (mean)", "sd": "± sd", "seeds": "seeds",
    "reported_part": "reported part", "vs_reference": "vs reference (paired mean)", "ci_low": "95% CI low",
    "ci_high": "95% CI high", "verdict": "verdict", "difference": "ours - paper", "difference_pct": "difference (%)",
    "definition": "definition of ours", "protocol": "protocol", "epochs": "epochs run", "hardware": "hardware",
    "wall_s": "wall time (s)",
}


def report_lines(table: Table, rows: list[Row], results: dict[str, dict[str, Any]], dataset: str | None,
                 epochs: int | None, synthetic: bool, select_on_reported: bool = False) -> list[dict[str, Any]]:
    """One dict per (row, column) that ran, with the paper's value when the paper has one for this data set."""
    lines = []
    for row in rows:
        entry = results.get(row.name, {})
        if "result" not in entry:
            continue
        paper = _paper_values(table, row, dataset)
        seeds = list(entry.get("seeds", {}).values())
        for column in table.columns:
            ours = entry["result"].get(column.ours)
            value = paper.get(column.value_of or column.paper)
            value = None if value is None or not column.beside_paper else value / column.paper_scale
            comparable = not synthetic and ours is not None and value is not None
            paired = versus_reference(table, row, results, column.ours)
            lines.append({
                "row": f"{row.name} ({SELECTED_ON_REPORTED})" if select_on_reported and table.kind == "train" else row.name,
                "column": f"{column.paper} -> {column.ours}", "paper": value, "ours": ours,
                "sd": entry.get("sd", {}).get(column.ours), "seeds": len(seeds) or None,
                "reported_part": f"test ({len(seeds[0]['per_image'])} images)" if seeds else None,
                "vs_reference": paired and paired.mean, "ci_low": paired and paired.low, "ci_high": paired and paired.high,
                "verdict": paired and paired.verdict,
                "difference": ours - value if comparable else None,
                "difference_pct": 100 * (ours - value) / value if comparable and value else None, "definition": column.definition,
                "protocol": _protocol(table, row, epochs), "epochs": entry["result"].get("epochs"),
                "hardware": entry.get("hardware"), "wall_s": entry.get("wall_s"),
            })
    return lines


def versus_reference(table: Table, row: Row, results: dict[str, dict[str, Any]], metric: str) -> PairedDifference | None:
    """``row - reference`` on ``metric``, paired over the test images with seeds averaged; ``None`` for the reference
    itself, a table without one, a reference not run, or a metric the per-image scores lack."""
    reference = results.get(table.reference or "", {})
    if row.name == table.reference or "result" not in reference:
        return None
    ours = [run["per_image"] for run in results[row.name].get("seeds", {}).values()]
    theirs = [run["per_image"] for run in reference.get("seeds", {}).values()]
    if not ours or not theirs or any(metric not in scores for run in ours + theirs for scores in run.values()):
        return None
    return paired_difference(ours, theirs, metric)


def _paper_values(table: Table, row: Row, dataset: str | None) -> dict[str, float]:
    if table.kind == "complexity":
        return next(iter(row.paper.values()), {})
    return row.paper.get(dataset, {}) if dataset else {}


def _protocol(table: Table, row: Row, epochs: int | None) -> str:
    recipe = (" + ".join(["train.json", *(Path(c).name for c in table.recipe)]) if table.kind == "train"
              else f"forward pass {'x'.join(map(str, table.input_shape))}")
    changes = ", ".join(f"{k}={v}" for k, v in row.overrides.items())
    shortened = f"; --epochs {epochs} (shortened)" if epochs and table.kind == "train" else ""
    return f"{recipe}; {changes}{shortened}"


FORMATS = {
    "difference": "{:+.4f}",
    "vs_reference": "{:+.4f}",
    "ci_low": "{:+.4f}",
    "ci_high": "{:+.4f}",
    "difference_pct": "{:+.1f}",
    "wall_s": "{:.1f}",
}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    return FORMATS.get(key, "{:.4f}").format(value) if isinstance(value, float) else str(value)


def write_report(table: Table, rows: list[Row], results: dict[str, dict[str, Any]], output: Path, dataset_dir: str | None,
                 dataset: str | None, epochs: int | None, select_on_reported: bool = False) -> list[Path]:
    """``reproduce.md`` and ``reproduce.csv`` in ``output``."""
    lines = report_lines(table, rows, results, dataset, epochs, table.kind == "train" and dataset_dir is None, select_on_reported)
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "reproduce.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in line.items()} for line in lines)
    (output / "reproduce.md").write_text(_markdown(table, rows, results, lines, dataset_dir, dataset, epochs, select_on_reported))
    return [output / "reproduce.md", output / "reproduce.csv"]


def _markdown(table: Table, rows: list[Row], results: dict[str, dict[str, Any]], lines: list[dict[str, Any]],
              dataset_dir: str | None, dataset: str | None, epochs: int | None, select_on_reported: bool) -> str:
    notes = [f"Paper: {table.citation}.", f"Protocol: {table.protocol}."]
    if table.kind == "train":
        data = (f"`{dataset_dir}` as the paper's **{dataset}** ({table.datasets[dataset].description})" if dataset_dir else
                "**the bundle's synthetic data: these numbers are NOT comparable with the paper's** (no difference is shown)")
        weights = "best validation key metric (`model.pt`)" if table.weights == "best" else "last epoch (`last.pt`)"
        selection = (f"**{SELECTED_ON_REPORTED}** (the authors' protocol, `--select_on_reported`): checkpoints were chosen on "
                     "the same test part that is reported, so these numbers are optimistic" if select_on_reported else
                     "the validation part selects (checkpoints, early stopping); the test part is only scored")
        notes += [f"Data: {data}.", f"Split: {table.split}.", f"Reported part: **test**; {selection}.",
                  f"Weights scored: {weights}.",
                  ("Seeds: every row trained with training seeds 0..N-1 on the same parts; 'ours' is the mean over seeds, "
                   "'± sd' their sample standard deviation (none for one seed)."),
                  (f"Reference row: {table.reference}. 'vs reference' is the mean over test images of (row - reference), "
                   "each image's score first averaged over seeds, with a 95% percentile bootstrap interval (10000 resamples "
                   "of the images, seeded); verdict: better / worse when the interval excludes 0, else no detectable "
                   "difference. It pairs the per-image scores of each evaluation's per_image.csv: for a column pooled over "
                   "the test set, the image's own value of that metric (pooling leaves none to pair)."
                   if table.reference else "No reference row: no paired comparison.")]
        if epochs:
            notes.append(
                f"**Shortened run: {epochs} epoch(s) per row instead of the protocol's**; expect lower scores than the paper."
            )
    notes += table.notes
    out = [f"# {table.title}", "", *(f"- {n}" for n in notes), "",
           "| " + " | ".join(COLUMNS.values()) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(_cell(k, line[k]) for k in COLUMNS) + " |" for line in lines]
    key = table.columns[0].ours
    sentences = [paired.sentence(row.name, table.reference) for row in rows
                 if (paired := versus_reference(table, row, results, key)) is not None]
    if sentences:
        out += ["", "## Against the reference row", "", *(f"- {line}" for line in sentences)]
    out += [f"\n{row.name}: {row.note}" for row in rows if row.note]
    not_run = [f"- {row.name}: {row.skip}" for row in rows if row.skip]
    not_run += [f"- {row.name}: the paper reports no value on {dataset}" for row in rows
                if not row.skip and table.kind == "train" and dataset and dataset not in row.paper]
    not_run += [f"- {row.name}: not finished" for row in rows if not row.skip and "result" not in results.get(row.name, {})
                and not (table.kind == "train" and dataset and dataset not in row.paper)]
    missing = {key: d for key, d in table.datasets.items() if key != dataset}
    if not_run or missing:
        out += ["", "## Not run", "", *not_run]
        out += [f"- data set **{key}** not given ({d.description}): get it from {d.source}; lay it out as {d.layout}; "
                f"then `segzoo reproduce {table.name} --dataset_dir DIR --dataset {key}`" for key, d in missing.items()]
    return "\n".join(out) + "\n"
