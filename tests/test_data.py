"""Data loading: the synthetic default, real folders, and bad data stopped up front with the file named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segzoo
from segzoo.data import DataError, expand_offline, load_folder, split, tiles
from tests.conftest import ISBI, hostile


def test_synthetic_cells_are_reproducible_and_binary() -> None:
    a = segzoo.build("dataset", "synthetic_cells", num_images=3, size=64, seed=5)
    b = segzoo.build("dataset", "synthetic_cells", num_images=3, size=64, seed=5)
    c = segzoo.build("dataset", "synthetic_cells", num_images=3, size=64, seed=6)
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert not np.array_equal(a[0]["image"], c[0]["image"])
    assert a[0]["image"].shape == (1, 64, 64) and set(np.unique(a[0]["label"])) == {0.0, 1.0}
    assert 0.5 < a[0]["label"].mean() < 0.95  # mostly cell interior, with membranes


def test_split_is_seeded_disjoint_and_80_20() -> None:
    items = [{"name": str(i)} for i in range(30)]
    train, val = split(items, "train", 0.2, seed=1), split(items, "val", 0.2, seed=1)
    assert len(train) == 24 and len(val) == 6
    assert not {i["name"] for i in train} & {i["name"] for i in val}
    assert val == split(items, "val", 0.2, seed=1)


def test_isbi_2012_folder_loads_as_binary_pairs() -> None:
    items = load_folder(str(ISBI))
    assert len(items) == 30
    assert items[0]["image"].shape == (1, 512, 512) and items[0]["image"].dtype == np.float32
    assert set(np.unique(items[0]["label"])) == {0.0, 1.0}


def _pair(root: Path, name: str, image: np.ndarray, mask: np.ndarray) -> None:
    (root / "train" / "images").mkdir(parents=True, exist_ok=True)
    (root / "train" / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "train" / "images" / name)
    Image.fromarray(mask).save(root / "train" / "labels" / name)


@hostile(
    "data", "mask of another size than its image", "refused naming both files", "labels/a.png is 16x32 but its image ... is 32x32"
)
def test_mask_of_another_size_names_the_file(tmp_path: Path) -> None:
    _pair(tmp_path, "a.png", np.zeros((32, 32), np.uint8), np.zeros((16, 32), np.uint8))
    with pytest.raises(DataError, match=r"labels/a.png is 16x32 but its image .* is 32x32"):
        load_folder(str(tmp_path))


def test_unexpected_label_values_name_the_file_and_fix(tmp_path: Path) -> None:
    _pair(tmp_path, "a.png", np.zeros((8, 8), np.uint8), np.arange(64, dtype=np.uint8).reshape(8, 8))
    with pytest.raises(DataError, match=r"a.png has label values .* label_mapping"):
        load_folder(str(tmp_path))


@hostile(
    "data",
    "corrupt image file",
    "refused naming the file",
    "cannot read .../images/a.png: ... Check the file is a valid .png image, or remove it",
)
def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    _pair(tmp_path, "a.png", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    (tmp_path / "train" / "images" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read .*images/a.png"):
        load_folder(str(tmp_path))


@hostile("data", "image without a mask", "refused naming the file", "b.png has no mask: expected .../labels/b.png")
def test_empty_folder_and_missing_mask_are_errors(tmp_path: Path) -> None:
    (tmp_path / "train" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_folder(str(tmp_path))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "train" / "images" / "b.png")
    with pytest.raises(DataError, match=r"b.png has no mask"):
        load_folder(str(tmp_path))


@hostile(
    "data",
    "RGB image for a 1-channel network",
    "refused naming the file and both fixes",
    "rgb.png has 3 channels but the network expects in_channels=1",
)
def test_wrong_channel_count_names_the_file(tmp_path: Path) -> None:
    _pair(tmp_path, "rgb.png", np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"rgb.png has 3 channels but the network expects in_channels=1"):
        load_folder(str(tmp_path), in_channels=1)
    assert load_folder(str(tmp_path), in_channels=3)[0]["image"].shape == (3, 8, 8)


def test_tiff_and_itk_formats_and_label_mapping(tmp_path: Path) -> None:
    import itk
    import tifffile

    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "labels").mkdir(parents=True)
    image = (np.arange(64, dtype=np.uint16) * 100).reshape(8, 8)
    tifffile.imwrite(tmp_path / "train" / "images" / "s1.tif", image)
    itk.imwrite(
        itk.image_from_array(np.where(image > 3000, 191, 32).astype(np.uint8)), str(tmp_path / "train" / "labels" / "s1.mha")
    )
    items = load_folder(str(tmp_path), labels="indexed", label_mapping={32: 0, 191: 2})
    assert items[0]["image"].max() == pytest.approx(6300 / 65535)
    assert set(np.unique(items[0]["label"])) == {0.0, 2.0}
    assert items[0]["label"][0, 7, 7] == 2.0 and items[0]["label"][0, 0, 0] == 0.0


def test_offline_expansion_adds_each_flip_and_rotation_once() -> None:
    image = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    items = expand_offline(
        [{"image": image, "label": image > 2, "name": "a"}], ["identity", "flip_h", "flip_v", "rot90", "rot180"]
    )
    assert [i["name"] for i in items] == ["a@identity", "a@flip_h", "a@flip_v", "a@rot90", "a@rot180"]
    assert items[1]["image"][0].tolist() == [[2, 1, 0], [5, 4, 3]] and items[2]["image"][0].tolist() == [[3, 4, 5], [0, 1, 2]]
    assert items[3]["image"].shape == (1, 3, 2) and items[4]["image"][0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert all(np.array_equal(i["label"], i["image"] > 2) for i in items)  # masks move with their image
    with pytest.raises(segzoo.SegzooError, match="rot45.*choose from"):
        expand_offline(items, ["rot45"])


def test_fixed_tiles_cover_the_image_without_overlap() -> None:
    image = np.arange(16 * 16, dtype=np.float32).reshape(1, 16, 16)
    parts = tiles([{"image": image, "label": image, "name": "s"}], 4)
    assert len(parts) == 16 and parts[1]["name"] == "s@r0c1" and parts[1]["image"].shape == (1, 4, 4)
    assert sorted(np.concatenate([p["image"].ravel() for p in parts]).tolist()) == image.ravel().tolist()
    with pytest.raises(segzoo.SegzooError, match="16x16.*divisor"):
        tiles([{"image": image, "name": "t"}], 6)
