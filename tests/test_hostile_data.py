"""Every pixel type the formats allow is read by a documented rule or refused naming the file; outputs never collide."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segzoo.data import DataError, load_folder, load_images
from tests.conftest import hostile

Writer = Callable[[Path], None]


def png(array: np.ndarray, mode: str | None = None) -> Writer:
    return lambda path: Image.fromarray(array, mode).save(path.with_suffix(".png")) if mode is None else \
        Image.fromarray(array).convert(mode).save(path.with_suffix(".png"))


def tif(array: np.ndarray) -> Writer:
    return lambda path: tifffile.imwrite(path.with_suffix(".tif"), array)


def palette_mask(indices: np.ndarray) -> Writer:
    def write(path: Path) -> None:
        img = Image.fromarray(indices.astype(np.uint8), "P")
        img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        img.save(path.with_suffix(".png"))
    return write


RAMP = np.arange(64).reshape(8, 8)
HALF = (RAMP >= 32).astype(np.uint8)  # a binary mask 0/1
GRAY = png(RAMP.astype(np.uint8))


def _folder(root: Path, image: Writer, mask: Writer) -> Path:
    for sub in ("images", "labels"):
        (root / "train" / sub).mkdir(parents=True, exist_ok=True)
    image(root / "train" / "images" / "x")
    mask(root / "train" / "labels" / "x")
    return root


READ = [
    pytest.param(
        png(RAMP.astype(np.uint16) * 1000),
        png(HALF),
        lambda it: it["image"].max() == pytest.approx(63000 / 65535),
        marks=hostile("data", "16-bit PNG image", "read; divided by 65535 (unsigned: by the dtype's maximum)"),
    ),
    pytest.param(
        tif((RAMP * 40 - 1000).astype(np.int16)),
        png(HALF),
        lambda it: it["image"].min() == 0 and it["image"].max() == 1,
        marks=hostile("data", "signed 16-bit TIFF image (e.g. CT, -1000..1520)", "read; scaled by its own min-max to [0, 1]"),
    ),
    pytest.param(
        tif(RAMP.astype(np.float32) / 7),
        png(HALF),
        lambda it: it["image"].max() == 1 and it["image"].dtype == np.float32,
        marks=hostile("data", "float32 TIFF image", "read; scaled by its own min-max to [0, 1]"),
    ),
    pytest.param(
        png(np.zeros((8, 8), np.uint8)),
        png(HALF),
        lambda it: (it["image"] == 0).all(),
        marks=hostile("data", "constant (all-black) image", "read as zeros; no division by zero"),
    ),
    pytest.param(
        png(np.dstack([RAMP, RAMP, RAMP, RAMP * 0 + 255]).astype(np.uint8)),
        png(HALF),
        lambda it: it["image"].shape == (3, 8, 8),
        marks=hostile("data", "RGBA PNG image", "read as RGB: PNG/JPEG/BMP alpha is dropped"),
    ),
    pytest.param(
        png(RAMP.astype(np.uint8), "LA"),
        png(HALF),
        lambda it: it["image"].shape == (1, 8, 8),
        marks=hostile("data", "gray+alpha (LA) PNG image", "read as one gray channel"),
    ),
    pytest.param(
        tif(np.dstack([RAMP, RAMP]).astype(np.uint8)),
        png(HALF),
        lambda it: it["image"].shape == (2, 8, 8),
        marks=hostile(
            "data",
            "TIFF of shape (H, W, 2)",
            "read as 2 channels (channels last when the last axis is <= 4 and the first longer)",
        ),
    ),
    pytest.param(
        tif(np.stack([RAMP] * 5).astype(np.uint8)),
        png(HALF),
        lambda it: it["image"].shape == (5, 8, 8),
        marks=hostile("data", "5-channel TIFF (C, H, W)", "read as 5 channels, kept as stored"),
    ),
    pytest.param(
        GRAY,
        palette_mask(HALF),
        lambda it: set(np.unique(it["label"])) == {0.0, 1.0},
        marks=hostile("data", "palette (P) PNG mask", "its palette indices are the classes (not the colours' gray)"),
    ),
    pytest.param(
        GRAY,
        png(HALF.astype(bool)),
        lambda it: set(np.unique(it["label"])) == {0.0, 1.0},
        marks=hostile("data", "1-bit (boolean) PNG mask", "read as 0/1"),
    ),
    pytest.param(
        GRAY,
        png(HALF.astype(np.uint16) * 65535),
        lambda it: set(np.unique(it["label"])) == {0.0, 1.0},
        marks=hostile("data", "16-bit mask of 0/65535", "binary: 0 and one foreground value"),
    ),
    pytest.param(
        GRAY,
        png(np.dstack([HALF * 255] * 3)),
        lambda it: it["label"].shape == (1, 8, 8),
        marks=hostile("data", "gray mask saved as RGB", "read as one channel (its channels agree)"),
    ),
    pytest.param(
        GRAY,
        tif(HALF.astype(np.float32)),
        lambda it: set(np.unique(it["label"])) == {0.0, 1.0},
        marks=hostile("data", "float32 TIFF mask of whole values", "read as class values"),
    ),
]


@pytest.mark.parametrize(("image", "mask", "check"), READ)
def test_each_pixel_type_is_read_by_its_documented_rule(image: Writer, mask: Writer, check: Callable, tmp_path: Path) -> None:
    (item,) = load_folder(str(_folder(tmp_path, image, mask)), in_channels=None)
    assert item["image"].dtype == np.float32 and 0 <= item["image"].min() and item["image"].max() <= 1
    assert check(item)


REFUSED = [
    pytest.param(
        tif(np.where(RAMP > 60, np.nan, RAMP).astype(np.float32)),
        png(HALF),
        {},
        "images/x.tif has 3 NaN or infinite pixels",
        marks=hostile(
            "data",
            "float image with NaN",
            "refused before training",
            "x.tif has 3 NaN or infinite pixels; fill them (e.g. numpy.nan_to_num)",
        ),
    ),
    pytest.param(
        tif(np.where(RAMP > 62, np.inf, RAMP).astype(np.float32)),
        png(HALF),
        {},
        "has 1 NaN or infinite pixels",
        marks=hostile("data", "float image with +inf", "refused", "has 1 NaN or infinite pixels"),
    ),
    pytest.param(
        tif(RAMP.astype(np.complex64)),
        png(HALF),
        {},
        "holds complex64 pixels",
        marks=hostile(
            "data", "complex-valued TIFF", "refused", "holds complex64 pixels; segzoo reads integer, float or boolean images"
        ),
    ),
    pytest.param(
        tif(np.zeros((0, 8), np.uint8)),
        png(HALF),
        {},
        "is empty (shape (0, 8))",
        marks=hostile("data", "empty (0-pixel) image", "refused", "x.tif is empty (shape (0, 8)); remove it or export it again"),
    ),
    pytest.param(
        tif(np.zeros((2, 3, 8, 8), np.uint8)),
        png(HALF),
        {},
        "has shape (2, 3, 8, 8); segzoo trains on 2D images",
        marks=hostile(
            "data",
            "4D stack as an image",
            "refused",
            "has shape (2, 3, 8, 8); segzoo trains on 2D images ... Extract 2D slices first",
        ),
    ),
    pytest.param(
        GRAY,
        tif(HALF.astype(np.float32) * 0.5),
        {},
        "holds NaN or fractional label values",
        marks=hostile(
            "data",
            "float mask with fractional values",
            "refused",
            "holds NaN or fractional label values; a mask must hold whole class values",
        ),
    ),
    pytest.param(
        GRAY,
        tif(np.where(HALF, np.nan, 0).astype(np.float32)),
        {},
        "holds NaN or fractional label values",
        marks=hostile("data", "float mask with NaN", "refused", "holds NaN or fractional label values"),
    ),
    pytest.param(
        GRAY,
        png(np.dstack([HALF * 255, HALF * 0, HALF * 0]).astype(np.uint8)),
        {},
        "is a colour mask (3 channels that differ)",
        marks=hostile(
            "data", "colour (RGB) mask", "refused", "is a colour mask (3 channels that differ); save masks as one channel"
        ),
    ),
    pytest.param(
        GRAY,
        tif(HALF.astype(np.int16) - 1),
        {"labels": "indexed"},
        "has negative label values [-1]",
        marks=hostile(
            "data",
            "signed mask with -1 (indexed labels)",
            "refused",
            "has negative label values [-1]; class indices start at 0. Pass a label_mapping.",
        ),
    ),
    pytest.param(
        png(RAMP.astype(np.uint8)),
        png(RAMP.astype(np.uint8)),
        {},
        "but a binary mask may only hold 0 and one foreground value",
        marks=hostile(
            "data",
            "gray-level mask where binary was asked",
            "refused",
            "has label values [0, 1, ...] but a binary mask may only hold 0 and one foreground value",
        ),
    ),
]


@pytest.mark.filterwarnings("ignore:.*zero-size array")
@pytest.mark.parametrize(("image", "mask", "options", "message"), REFUSED)
def test_a_pixel_type_that_cannot_be_read_safely_is_refused_naming_the_file(
    image: Writer, mask: Writer, options: dict, message: str, tmp_path: Path
) -> None:
    with pytest.raises(DataError) as err:
        load_folder(str(_folder(tmp_path, image, mask)), **options)
    assert message in str(err.value) and str(tmp_path / "train") in str(err.value)


@hostile("data", "signed mask mapped by label_mapping {-1: 0, 0: 1}", "mapped, negative gray levels included")
def test_a_label_mapping_maps_signed_values(tmp_path: Path) -> None:
    (item,) = load_folder(
        str(_folder(tmp_path, GRAY, tif(HALF.astype(np.int16) - 1))), labels="indexed", label_mapping={-1: 0, 0: 1}
    )
    np.testing.assert_array_equal(item["label"][0], HALF.astype(np.float32))


@hostile("data", "a.png and a.tif in one images folder", "refused before training: their outputs would collide",
         "have the same name apart from the extension; rename or remove one of them")
def test_two_training_images_of_one_name_are_refused(tmp_path: Path) -> None:
    _folder(tmp_path, GRAY, png(HALF))
    tif(RAMP.astype(np.uint8))(tmp_path / "train" / "images" / "x")
    with pytest.raises(DataError, match=r"images/x.png and .*images/x.tif have the same name apart from the extension"):
        load_folder(str(tmp_path))


@hostile("data", "inference inputs a.png and a.tif", "refused: both would be written as a.png",
         "have the same name apart from the extension")
def test_two_inference_inputs_whose_masks_would_overwrite_each_other_are_refused(tmp_path: Path) -> None:
    GRAY(tmp_path / "a")
    tif(RAMP.astype(np.uint8))(tmp_path / "a")
    with pytest.raises(DataError, match="a.png and .*a.tif have the same name apart from the extension"):
        load_images(str(tmp_path), 1)


@hostile("data", "16-bit PNG holding 12-bit data (largest value 4095)",
         "read by the same rule (divided by 65535) with a warning naming the file, its largest value and the range it gets",
         "x.png: a uint16 image whose largest value is 4095 (about 12-bit data) is divided by 65535 ... [0, 0.062]",
         issue=22)
def test_twelve_bit_data_in_a_sixteen_bit_png_is_read_with_a_warning(tmp_path: Path) -> None:
    from segzoo.data.folder import NarrowPixelsWarning

    twelve_bit = (np.linspace(0, 4095, 64).reshape(8, 8)).astype(np.uint16)
    root = _folder(tmp_path, png(twelve_bit), png(HALF))
    with pytest.warns(NarrowPixelsWarning, match=r"x\.png: a uint16 image whose largest value is 4095 \(about 12-bit data\)"):
        (item,) = load_folder(str(root), in_channels=1)
    assert item["image"].max() == pytest.approx(4095 / 65535)

