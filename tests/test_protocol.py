"""Three parts, one purpose each: the split the papers fix, validation alone selecting, test alone reported, and
the paired bootstrap that says whether a gap between two rows is more than noise."""

from __future__ import annotations

import numpy as np
import pytest
from monai.bundle import ConfigParser

from segzoo.data import split
from segzoo.data.split import reported_part_indices
from segzoo.paired import paired_difference
from tests.conftest import BUNDLES

ITEMS = [{"name": f"{i:02d}"} for i in range(30)]


def test_pyconvunet_test_part_is_the_authors_train_test_split_random_state_41() -> None:
    """sklearn's train_test_split(range(30), test_size=0.2, random_state=41) gives test [11, 29, 10, 20, 26, 5]
    (checked against scikit-learn 1.9.1); ISBI's 30 slices are split exactly so."""
    assert reported_part_indices(30, 0.2, 41) == [11, 29, 10, 20, 26, 5]
    assert reported_part_indices(267, 0.2, 41)[:5] == np.random.RandomState(41).permutation(267)[:5].tolist()
    assert len(reported_part_indices(267, 0.2, 41)) == 54  # ceil(0.2 * 267), as ShuffleSplit rounds the test part up


def test_three_parts_are_disjoint_cover_everything_and_keep_the_test_part_whatever_the_validation_seed() -> None:
    parts = {part: split(ITEMS, part, 0.1, 0, 0.2, 41) for part in ("train", "val", "test")}
    assert [len(parts[p]) for p in ("train", "val", "test")] == [21, 3, 6]
    names = [{i["name"] for i in parts[p]} for p in parts]
    assert set.union(*names) == {i["name"] for i in ITEMS} and sum(map(len, names)) == 30
    assert [i["name"] for i in parts["test"]] == ["05", "10", "11", "20", "26", "29"]
    assert split(ITEMS, "test", 0.1, 7, 0.2, 41) == parts["test"] and split(ITEMS, "val", 0.1, 7, 0.2, 41) != parts["val"]
    assert split(ITEMS, "val", 0.2, 1) == split(ITEMS, "val", 0.2, 1, 0.0)  # no test part: the former two-part split


@pytest.mark.parametrize("bundle", ["pyconvunet", "frem", "munet"])
def test_validation_selects_and_the_test_part_is_only_scored(bundle: str) -> None:
    """train.json's validation part (which drives the best checkpoint) never holds an image evaluate.json reports."""
    train, evaluate = ConfigParser(), ConfigParser()
    train.read_config(str(BUNDLES / bundle / "configs" / "train.json"))
    evaluate.read_config([str(BUNDLES / bundle / "configs" / name) for name in ("train.json", "evaluate.json")])  # an overlay
    for parser in (train, evaluate):
        parser.update({"synthetic#num_images": 20, "synthetic#size": 64})
    # no trained run here: the evaluated items come from the training's channels instead of the run's record
    evaluate.update({"evaluation_items": evaluate["evaluation_items"].replace("@trained.in_channels", "@in_channels")})
    names = {key: {i["name"] for i in parser.get_parsed_content(key)}
             for key, parser in (("train#items", train), ("validate#items", train), ("dataset#data", evaluate))}
    assert evaluate["eval_part"] == "test" and train["select_on"] == "val"
    assert names["dataset#data"] and not names["dataset#data"] & (names["train#items"] | names["validate#items"])
    saver = next(h for h in train["validate#handlers"] if isinstance(h, dict) and h["_target_"] == "CheckpointSaver")
    assert saver["save_key_metric"] and saver["key_metric_filename"] == "model.pt"  # the best checkpoint is keyed on validation
    train.update({"select_on": "test"})  # the authors' protocol: selection on the reported part, one override away
    assert {i["name"] for i in train.get_parsed_content("validate#items", lazy=False)} == names["dataset#data"]


def scores(values: list[float]) -> dict[str, dict[str, float]]:
    return {f"img{i}": {"foreground_iou": v} for i, v in enumerate(values)}


def test_paired_bootstrap_calls_a_clear_gap_better_or_worse_and_identical_scores_no_difference() -> None:
    rng = np.random.default_rng(0)
    reference = [scores(list(rng.uniform(0.6, 0.8, 8))) for _ in range(2)]
    better = [{k: {"foreground_iou": v["foreground_iou"] + 0.05} for k, v in seed.items()} for seed in reference]
    gap = paired_difference(better, reference, "foreground_iou")
    assert gap.verdict == "better" and gap.mean == pytest.approx(0.05) and gap.images == 8 and gap.seeds == 2
    assert paired_difference(reference, better, "foreground_iou").verdict == "worse"
    same = paired_difference(reference, reference, "foreground_iou")
    assert same.verdict == "no detectable difference" and same.low == same.high == 0
    noisy = [scores([0.7 + d for d in rng.normal(0, 0.05, 8)]) for _ in range(2)]
    # seeded
    assert paired_difference(noisy, reference, "foreground_iou") == paired_difference(noisy, reference, "foreground_iou")
    sentence = gap.sentence("PyConvU-Net", "U-Net")
    assert sentence.startswith("PyConvU-Net vs U-Net on the 8 test images, 2 seeds: +0.0500 foreground_iou (95% CI +0.05")
    assert sentence.endswith(": better")
