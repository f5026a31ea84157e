"""``segzoo reproduce TABLE``: rerun a paper's table under its protocol and set the paper's numbers beside ours.

The table (rows, paper values, recipe files, metric definitions, data sets) is declared by its bundle
(:mod:`segzoo.tables`); this module only runs it. Every row trains through the bundle's ``train.json`` with the
table's recipe files merged over it and the row's overrides, then is scored by ``evaluate.json`` (+ recipe) on
the test part (validation only selects), once per training seed (``--seeds N``), each seed one MLflow child run
under one parent run that carries the means. A state file in the output folder records each finished seed, so a
rerun with the same ``--output`` resumes (an interrupted training resumes from its ``last.pt``). Rows whose data is missing or
whose mechanism the bundle lacks are listed with the reason, never
filled in. Results go to ``reproduce.md`` and ``reproduce.csv`` (see :mod:`segzoo.reproduce_report`). The parent
run lives in the bundle's MLflow experiment, beside the rows' runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

import segzoo
from segzoo.bundle import contract as bundles
from segzoo.errors import SegzooError
from segzoo.overrides import parse_override
from segzoo.paired import mean_and_sd, read_per_image
from segzoo.reproduce_report import write_report
from segzoo.runfiles import store
from segzoo.study import load_state, save_state, seed_list
from segzoo.tables import Row, Table, get_table, tables

STATE_FILE = "reproduce_state.json"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "reproduce", help="rerun a paper's table under its protocol; paper, ours and difference side by side"
    )
    p.add_argument("table", nargs="?", help="table name, e.g. pyconvunet-table2 (see --list)")
    p.add_argument("--list", action="store_true", help="list the tables with the data each needs")
    p.add_argument(
        "--dataset_dir", help="folder of the paper's data (default: the bundle's synthetic data; numbers not comparable)"
    )
    p.add_argument("--dataset", help="which of the table's data sets --dataset_dir holds (default: guessed from the folder name)")
    p.add_argument("--epochs", type=int, help="shorten every training to this many epochs (a trial, not the paper's protocol)")
    p.add_argument("--rows", help="comma-separated row names to run (default: all)")
    p.add_argument("--seeds", type=int, default=1, help="train every row with seeds 0..N-1; the table shows mean ± sd and a "
                                                        "paired bootstrap comparison with the table's reference row")
    p.add_argument("--select_on_reported", action="store_true",
                   help="the authors' protocol: select checkpoints on the test part that is reported (rows are labelled "
                        "'selected on the reported split'; optimistic)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="extra config override for every row")
    p.add_argument(
        "--output", type=Path, help="folder of the table, runs and state (default: runs/reproduce/TABLE); rerun to resume"
    )
    p.add_argument("--bundles_dir", type=Path, help="folder of the bundles that declare tables (default: ./bundles)")
    p.add_argument("--tracking_uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or MLflow's default)")
    p.set_defaults(func=cmd_reproduce)
    return p


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.list or not args.table:
        print(describe_tables(tables(args.bundles_dir)))
        return 0
    table = get_table(args.table, args.bundles_dir)
    rows = [table.row(name.strip()) for name in args.rows.split(",")] if args.rows else table.rows
    dataset = (args.dataset or table.guess_dataset(args.dataset_dir)) if args.dataset_dir else None
    if dataset is not None and dataset not in table.datasets:
        raise SegzooError(f"--dataset {dataset}: {table.name} has data sets {', '.join(table.datasets)}")
    seed_list(args.seeds)  # a bad --seeds fails before anything runs
    overrides = dict(parse_override(o) for o in args.override)
    output = args.output or Path("runs") / "reproduce" / table.name
    path = reproduce(table, rows, output, args.dataset_dir, dataset, args.epochs, overrides, args.tracking_uri, args.seeds,
                     args.select_on_reported)
    print(path.read_text())
    print(f"table written to {path} (and {path.with_suffix('.csv').name} beside it)")
    return 0


def describe_tables(found: dict[str, Table]) -> str:
    lines = []
    for table in found.values():
        lines.append(f"{table.name}  ({table.kind}, bundle {table.bundle.name}, {len(table.rows)} rows): {table.title}")
        for key, dataset in table.datasets.items():
            lines.append(f"    data {key}: {dataset.description}; source: {dataset.source}; layout: {dataset.layout}")
    return "\n".join(lines) or "no tables found"


def hardware() -> str:
    cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    return f"{torch.cuda.get_device_name()} + {cpu}" if torch.cuda.is_available() else cpu


def reproduce(
    table: Table,
    rows: list[Row],
    output: Path,
    dataset_dir: str | None,
    dataset: str | None,
    epochs: int | None,
    overrides: dict[str, Any],
    tracking_uri: str | None = None,
    seeds: int = 1,
    select_on_reported: bool = False,
) -> Path:
    """Run ``rows`` of ``table`` not yet finished in ``output`` (each training row once per seed), then write and log the
    report; returns the markdown path."""
    from segzoo.tracking.client import closed_with_status, log_params, open_run

    if dataset_dir is None and table.kind == "train":
        print(f"WARNING: no --dataset_dir: {table.name} runs on the bundle's synthetic data; the numbers are NOT comparable "
              "with the paper's.")
    settings = {"table": table.name, "dataset_dir": dataset_dir and str(Path(dataset_dir).resolve()), "dataset": dataset,
                "epochs": epochs, "overrides": overrides, "seeds": seeds, "select_on_reported": select_on_reported}
    state = load_state(output / STATE_FILE, settings, "reproduction", {"rows": {}})
    experiment = bundles.Bundle(table.bundle).name  # beside the rows' runs, so MLflow nests them under the parent
    client, parent = open_run(tracking_uri, experiment, f"reproduce-{table.name}", run_id=state.get("parent_run_id"),
                              description=f"{table.title}; {seeds} seed(s), reported on the test part")
    if "parent_run_id" not in state:
        state["parent_run_id"] = parent
        save_state(output / STATE_FILE, state)
        log_params(client, parent, {k: json.dumps(v) for k, v in settings.items()})
    with closed_with_status(client, parent):
        for row in rows:
            entry = state["rows"].setdefault(row.name, {})
            if "result" in entry or row.skip:
                continue
            if dataset is not None and dataset not in row.paper and table.kind == "train":
                continue  # the paper has no value for this row on this data set
            if table.kind == "complexity":
                entry.update(result=_complexity(table, row, client, parent), hardware=hardware())
            else:
                for seed in seed_list(seeds):
                    run = entry.setdefault("seeds", {}).setdefault(str(seed), {})
                    if "result" in run:
                        continue
                    start = time.perf_counter()
                    _train_and_evaluate(table, row, output, dataset_dir, dataset, epochs,
                                        {**overrides, "seed": seed, **({"select_on": "test"} if select_on_reported else {})},
                                        run, client, parent, seed)
                    run["wall_s"] = run.get("wall_s", 0.0) + time.perf_counter() - start
                    run["hardware"] = hardware()
                    save_state(output / STATE_FILE, state)
                entry.update(_aggregate(entry["seeds"]))
                for name, value in entry["result"].items():
                    if isinstance(value, float):
                        client.log_metric(parent, f"{_slug(row.name)}.{name}_mean", value)
            save_state(output / STATE_FILE, state)
        paths = write_report(table, rows, state["rows"], output, dataset_dir, dataset, epochs, select_on_reported)
        for path in paths:
            client.log_artifact(parent, str(path))
    return paths[0]


def _aggregate(seeds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A row's mean and sd over its seeds, its summed wall time and its hardware (the per-seed entries stay as they are)."""
    results = [run["result"] for run in seeds.values()]
    metrics = [k for k, v in results[0].items() if isinstance(v, float)]
    spread = {k: mean_and_sd([r[k] for r in results]) for k in metrics}
    return {"result": {**{k: m for k, (m, _) in spread.items()}, "epochs": results[0].get("epochs")},
            "sd": {k: sd for k, (_, sd) in spread.items()}, "wall_s": sum(run["wall_s"] for run in seeds.values()),
            "hardware": next(iter(seeds.values()))["hardware"]}


def _complexity(table: Table, row: Row, client: Any, parent: str) -> dict[str, Any]:
    from segzoo.complexity import measure

    params = {**row.overrides}
    arch, preset = params.pop("arch"), params.pop("preset", None)
    channels, *size = table.input_shape
    counts = measure(
        segzoo.build("architecture", arch, preset, in_channels=channels, out_channels=1, **params), channels, tuple(size)
    )
    result = {"params_m": counts.params_m, "gmac": counts.gmac, "epochs": None}
    from segzoo.tracking.client import open_run

    _, child = open_run(client.tracking_uri, bundles.Bundle(table.bundle).name, row.name, parent_run_id=parent)
    for key in ("params_m", "gmac"):
        client.log_metric(child, key, result[key])
    client.set_terminated(child, "FINISHED")
    return result


def _train_and_evaluate(table: Table, row: Row, output: Path, dataset_dir: str | None, dataset: str | None, epochs: int | None,
                        overrides: dict[str, Any], entry: dict[str, Any], client: Any, parent: str, seed: int) -> None:
    """One seed of one row: train (a child run of the parent), score the test part, keep its per-image scores in ``entry``."""
    bundle = bundles.Bundle(table.bundle)
    data = table.datasets[dataset].overrides if dataset else table.synthetic_overrides
    settings = {**data, **row.overrides, **overrides, **({"dataset_dir": dataset_dir} if dataset_dir else {}),
                **({"epochs": epochs} if epochs else {}), "tracking_uri": client.tracking_uri}
    name = f"{_slug(row.name)}-seed{seed}"
    if "run_dir" not in entry:
        # the parser merges into nested
        run_dir = bundles.train_in(output / "runs" / _slug(row.name) / f"seed{seed}", bundle, copy.deepcopy({
            **settings, "parent_run_id": parent, "run_name": name}), table.recipe_files("training"), label=name)
        entry.update(run_dir=str(run_dir), run_id=store.read_run_id(run_dir))
    run_dir = Path(entry["run_dir"])
    # evaluate.json is an overlay over train.json: the training recipe and the row's values apply as in training
    evaluation = bundles.run(bundle, "evaluating", copy.deepcopy({
        **settings, "eval_part": "test",
        "checkpoint": str(run_dir / (store.BEST if table.weights == "best" else store.LAST)), "parent_run_id": entry["run_id"]}),
        [*table.recipe_files("training"), *table.recipe_files("evaluating")])
    metrics = {k: float(v) for k, v in bundles.get(evaluation, "evaluator").state.metrics.items()}
    for key, value in metrics.items():
        client.log_metric(entry["run_id"], f"test_{key}", value)
    trainer = store.read_checkpoint(run_dir / store.LAST)["trainer"]
    entry["per_image"] = read_per_image(Path(bundles.get(evaluation, "evaluation_dir")) / "per_image.csv")
    entry["result"] = {**metrics, "epochs": trainer["iteration"] // max(1, trainer["epoch_length"])}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
