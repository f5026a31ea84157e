"""Paper tables that ``segzoo reproduce`` can rerun, declared as JSON files in bundle folders.

A table lives beside the configs it runs, as ``bundles/<bundle>/tables/<name>.json``: its rows (the overrides
that build each row), the paper's values, the recipe files merged over ``train.json`` and ``evaluate.json``,
which of our metrics answers which paper column (with its definition), and the data sets with their public
source and folder layout. Declaring tables as bundle data rather than Python keeps the core free of papers,
puts a table next to the recipe it depends on, and lets a reader check every number against the paper in one
file. The schema below validates a file on load, so a typo names the file and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import segzoo
from segzoo.errors import SegzooError

TABLES_FOLDER = "tables"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Column(_Strict):
    """One paper column and the metric of ours that measures the same quantity."""

    paper: str = Field(description="the paper's column header, e.g. MIoU")
    ours: str = Field(description="our metric key as the evaluation reports it, e.g. foreground_iou")
    definition: str = Field(description="what ours measures and how it is aggregated")
    paper_scale: float = Field(1.0, gt=0, description="divide the paper's value by this to compare (100 for percentages)")
    value_of: str | None = Field(None, description="the paper column whose value this line compares with (default: paper)")
    beside_paper: bool = Field(True, description="set the paper's value and the difference beside this line (false: "
                                                 "another aggregation of the same column, shown for reference)")


class DataSet(_Strict):
    """A data set a table was measured on: what it is, where to get it, how to lay it out."""

    description: str
    source: str = Field(description="public source (URL), or why there is none")
    layout: str = Field(description="the folder layout --dataset_dir must have")
    aliases: list[str] = Field(default_factory=list, description="folder-name fragments that identify it (isbi, isbicell)")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="config overrides this data set needs (classes, label mapping)"
    )


class Row(_Strict):
    name: str
    overrides: dict[str, Any] = Field(default_factory=dict, description="config overrides that make this row (arch, preset, ...)")
    paper: dict[str, dict[str, float]] = Field(default_factory=dict, description="data set -> paper column -> value")
    skip: str | None = Field(None, description="why reproduce cannot run this row (it is listed, not faked)")
    note: str | None = None


class Table(_Strict):
    name: str
    title: str
    citation: str
    kind: Literal["train", "complexity"] = Field("train", description="train and evaluate every row, or count parameters/MACs")
    protocol: str = Field(description="the paper's protocol in one line, as the recipe implements it")
    recipe: list[str] = Field(
        default_factory=list, description="files merged over the bundle's train.json (relative to the bundle)"
    )
    evaluate_recipe: list[str] = Field(default_factory=list, description="files merged over the bundle's evaluate.json")
    weights: Literal["best", "last"] = Field("best", description="evaluate the best-validation checkpoint or the last epoch's")
    split: str = Field("the bundle's train.json parts (test_fraction, test_seed, val_fraction, split_seed)",
                       description="the training / validation / test parts in words, with their seeds")
    reference: str | None = Field(None, description="the row every other row is compared with, paired over the test images")
    input_shape: list[int] = Field(default_factory=lambda: [3, 512, 512], description="complexity tables: C, H, W")
    columns: list[Column]
    datasets: dict[str, DataSet]
    rows: list[Row]
    synthetic_overrides: dict[str, Any] = Field(
        default_factory=dict, description="overrides for the bundle's synthetic data (e.g. its classes)"
    )
    notes: list[str] = Field(default_factory=list, description="where the paper disagrees with itself or we differ")
    bundle: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _reference_is_a_row(self) -> Table:
        if self.reference is not None and self.reference not in {r.name for r in self.rows}:
            raise ValueError(f"reference '{self.reference}' is not a row; rows: {', '.join(r.name for r in self.rows)}")
        return self

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise SegzooError(f"table {self.name} has no row '{name}'; its rows: {', '.join(r.name for r in self.rows)}")

    def recipe_files(self, workflow: Literal["training", "evaluating"]) -> list[Path]:
        return [self.bundle / name for name in (self.recipe if workflow == "training" else self.evaluate_recipe)]

    def guess_dataset(self, dataset_dir: str) -> str:
        """The data set key whose name or alias the folder name contains (``isbi2012`` for ``../data/ISBI-2012``)."""
        folder = re.sub(r"[^a-z0-9]", "", Path(dataset_dir).resolve().name.lower())
        for key, dataset in self.datasets.items():
            if any(re.sub(r"[^a-z0-9]", "", a.lower()) in folder for a in [key, *dataset.aliases]):
                return key
        raise SegzooError(f"cannot tell which of {self.name}'s data sets {dataset_dir} holds; pass --dataset with one of "
                          f"{', '.join(self.datasets)}")


def default_bundles_dir() -> Path:
    """``./bundles`` when run from a checkout, else the ``bundles`` folder beside the installed package."""
    here = Path("bundles")
    return here if here.is_dir() else Path(segzoo.__file__).resolve().parents[1] / "bundles"


def load_table(path: Path) -> Table:
    try:
        table = Table.model_validate(json.loads(path.read_text()))
    except (ValidationError, json.JSONDecodeError) as exc:
        raise SegzooError(f"{path} is not a valid table definition: {exc}") from None
    table.bundle = path.parent.parent
    return table


def tables(bundles_dir: Path | None = None) -> dict[str, Table]:
    """Every table declared under ``bundles_dir/*/tables/``, by name."""
    root = bundles_dir or default_bundles_dir()
    found = {}
    for path in sorted(root.glob(f"*/{TABLES_FOLDER}/*.json")):
        table = load_table(path)
        found[table.name] = table
    return found


def get_table(name: str, bundles_dir: Path | None = None) -> Table:
    known = tables(bundles_dir)
    if name not in known:
        raise SegzooError(f"no table '{name}' under {bundles_dir or default_bundles_dir()}/*/{TABLES_FOLDER}/; "
                          f"known: {', '.join(known) or 'none'} (segzoo reproduce --list)")
    return known[name]
