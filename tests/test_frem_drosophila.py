"""FREM Table 2 on its own data: the merged ssTEM labels read as the table's four classes, and both IoU aggregations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

import segzoo
from segzoo.data import DataError
from segzoo.tables import get_table
from segzoo_frem.data import TEM_4CLASS
from segzoo_frem.drosophila import class_mapping
from tests.conftest import BUNDLES

CLASS_NAMES = ["background", "membrane", "mitochondria", "synapse"]
GRAYS = [0, 32, 64, 96, 128, 159, 191, 223, 255]  # every value of the merged labels (the data set's README)


def fake_stack(root: Path, slices: int = 3, extra_gray: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    for folder in ("raw", "labels"):
        (root / "stack1" / folder).mkdir(parents=True, exist_ok=True)
    for n in range(slices):
        tifffile.imwrite(root / "stack1" / "raw" / f"{n:02d}.tif", rng.integers(0, 255, (32, 32), dtype=np.uint8))
        label = np.array(GRAYS + [extra_gray or 255] * (32 * 32 - len(GRAYS)), dtype=np.uint8).reshape(32, 32)
        Image.fromarray(label).save(root / "stack1" / "labels" / f"labels{n:08d}.png")
    return root


def table_classes() -> dict[str, list[int]]:
    return get_table("frem-table2", BUNDLES).datasets["drosophila"].overrides["class_values"]


def test_table_maps_every_merged_label_value_to_one_of_the_four_classes() -> None:
    mapping = class_mapping(table_classes(), CLASS_NAMES)
    assert sorted(mapping) == GRAYS and mapping == TEM_4CLASS  # the same mapping --label_mapping_name tem_4class applies
    assert {g for g, c in mapping.items() if CLASS_NAMES[c] == "membrane"} == {0, 32, 64, 96, 128}  # junctions are membrane
    assert {g for g, c in mapping.items() if CLASS_NAMES[c] == "background"} == {159, 255}  # glia / extracellular, intracellular


def test_reader_pairs_slices_with_their_labels_as_class_indices(tmp_path: Path) -> None:
    items = segzoo.build("dataset", "drosophila_vnc", dataset_dir=str(fake_stack(tmp_path)), class_values=table_classes(),
                         class_names=CLASS_NAMES)
    assert [i["name"] for i in items] == ["00", "01", "02"]
    label = items[0]["label"][0].flatten()[: len(GRAYS)]
    assert label.tolist() == [1, 1, 1, 1, 1, 0, 2, 3, 0]
    assert items[0]["image"].shape == (1, 32, 32) and items[0]["image"].dtype == np.float32


def test_a_gray_value_no_class_claims_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"labels00000000\.png has label values \[7\]"):
        segzoo.build("dataset", "drosophila_vnc", dataset_dir=str(fake_stack(tmp_path, 1, extra_gray=7)),
                     class_values=table_classes(), class_names=CLASS_NAMES)


def test_pooled_iou_sums_intersections_and_unions_while_per_tile_scores_an_absent_class_1() -> None:
    label = torch.zeros(2, 1, 4, 4)
    label[0, 0, :2, :2] = 1  # class 1 in the first tile only (4 pixels)
    pred = torch.zeros(2, 2, 4, 4)
    pred[:, 0] = 1
    pred[0, 0, :2, :1], pred[0, 1, :2, :1] = 0, 1  # 2 of the 4 found, none predicted in the second tile
    pooled, per_tile = segzoo.build("metric", "pooled_iou", class_index=1), segzoo.build("metric", "class_iou", class_index=1)
    pooled(pred, label)
    per_tile(pred, label)
    assert float(pooled.aggregate()) == pytest.approx(2 / 4)  # (2 + 0) / (4 + 0)
    assert float(per_tile.aggregate()) == pytest.approx((0.5 + 1.0) / 2)  # the empty second tile counts as 1
    assert pooled.get_buffer().flatten().tolist() == [0.5, 1.0]  # per-image values stay for the paired comparison
