"""FREM Table 2's data as published: stack 1 of the ssTEM Drosophila VNC set (Gerhard et al. 2013), read as it lies.

Layout: ``DIR/stack1/raw/NN.tif`` (1024x1024 8-bit slices) and ``DIR/stack1/labels/labelsNNNNNNNN.png`` (merged
labels, one gray value per structure), paired by slice number. The gray values become class indices through a
``class_values`` mapping (class name -> gray values) that the table declares, so the reader holds no paper choice.
A gray value no class claims, or a slice without its label, is an error naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field

import segzoo
from segzoo import Params
from segzoo.data import DataError, read_image, to_labels, to_unit_range

STACK = "stack1"


class DrosophilaParams(Params):
    dataset_dir: str = Field(description="the data set's folder, holding stack1/raw and stack1/labels")
    class_values: dict[str, list[int]] = Field(description="class name -> the merged label's gray values of that class")
    class_names: list[str] = Field(description="class names in class-index order (index 0 first)")
    in_channels: int = Field(1, ge=1, description="image channels (the gray slice repeated)")


def class_mapping(class_values: dict[str, list[int]], class_names: list[str]) -> dict[int, int]:
    """Gray value -> class index; a class not in ``class_names`` or a gray value claimed twice is an error."""
    mapping: dict[int, int] = {}
    for name, grays in class_values.items():
        if name not in class_names:
            raise DataError(f"class_values names class '{name}', which is not one of class_names {class_names}; rename it")
        for gray in grays:
            if gray in mapping:
                raise DataError(f"class_values gives gray value {gray} to two classes; give it to one")
            mapping[int(gray)] = class_names.index(name)
    return mapping


def _by_number(folder: Path, pattern: str) -> dict[int, Path]:
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = re.fullmatch(pattern, path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def read_drosophila(dataset_dir: str, class_values: dict[str, list[int]], class_names: list[str],
                    in_channels: int = 1) -> list[dict[str, Any]]:
    """Every labelled slice of stack 1 as ``{"image", "label", "name"}`` (name: the slice number, ``00``..``19``)."""
    root = Path(dataset_dir) / STACK
    raw, labels = _by_number(root / "raw", r"(\d+)\.tiff?"), _by_number(root / "labels", r"labels(\d+)\.png")
    if not raw:
        raise DataError(f"{root / 'raw'} holds no NN.tif slices; pass --dataset_dir with the data set's folder (it holds "
                        f"{STACK}/raw and {STACK}/labels)")
    mapping = class_mapping(class_values, class_names)
    items = []
    for number, path in raw.items():
        if number not in labels:
            raise DataError(f"{path} has no label: expected {root / 'labels'}/labels{number:08d}.png")
        image = read_image(path)
        image = image.repeat(in_channels, 0) if image.shape[0] == 1 else image
        label = to_labels(read_image(labels[number], mask=True), labels[number], "indexed", mapping)
        items.append({"image": to_unit_range(image, path), "label": label, "name": f"{number:02d}"})
    return items


drosophila_dataset = segzoo.component(
    "dataset", "drosophila_vnc", DrosophilaParams,
    "Stack 1 of the ssTEM Drosophila VNC set (FREM Table 2): raw slices and merged labels mapped to classes by class_values",
)(read_drosophila)
