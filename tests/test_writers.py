"""Predictions come back in the input's format and geometry."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import itk
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from segzoo.data import load_images
from segzoo.engine import MaskWriter


def predict_and_write(folder: Path, out: Path, save_probabilities: bool = False) -> list[dict]:
    """MaskWriter on every image of ``folder``, with a prediction of 'foreground where the image is bright'."""
    items = load_images(str(folder), 1)
    outputs = [{"pred": torch.from_numpy(item["image"])} for item in items]
    MaskWriter(str(out), save_probabilities=save_probabilities)(
        SimpleNamespace(state=SimpleNamespace(batch=items, output=outputs))
    )
    return items


def test_a_nifti_prediction_keeps_the_spacing_origin_and_direction(tmp_path: Path) -> None:
    array = np.zeros((40, 60), dtype=np.int16)
    array[10:30, 20:50] = 30000  # above half of int16's range: foreground for the stand-in prediction
    image = itk.image_from_array(array)
    image.SetSpacing((0.7, 2.5))
    image.SetOrigin((-12.0, 31.5))
    direction = np.array([[0.0, 1.0], [1.0, 0.0]])
    image.SetDirection(itk.matrix_from_array(direction))
    (tmp_path / "in").mkdir()
    itk.imwrite(image, str(tmp_path / "in" / "slice.nii.gz"))

    predict_and_write(tmp_path / "in", tmp_path / "out", save_probabilities=True)

    mask = itk.imread(str(tmp_path / "out" / "slice.nii.gz"))
    assert tuple(mask.GetSpacing()) == pytest.approx((0.7, 2.5))
    assert tuple(mask.GetOrigin()) == pytest.approx((-12.0, 31.5))
    assert np.allclose(itk.array_from_matrix(mask.GetDirection()), direction)
    assert np.array_equal(itk.array_from_image(mask), (array > 0).astype(np.uint8))  # labels 0/1, same grid
    probabilities = itk.imread(str(tmp_path / "out" / "slice_probabilities.nii.gz"))
    assert itk.array_from_image(probabilities).dtype == np.float32
    assert tuple(probabilities.GetSpacing()) == pytest.approx((0.7, 2.5))


def test_png_and_tiff_inputs_give_png_and_tiff_masks(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    array = np.zeros((32, 32), dtype=np.uint8)
    array[8:24, 8:24] = 200
    Image.fromarray(array).save(tmp_path / "in" / "a.png")
    tifffile.imwrite(tmp_path / "in" / "b.tif", array)

    predict_and_write(tmp_path / "in", tmp_path / "out", save_probabilities=True)

    expected = (array > 0).astype(np.uint8) * 255
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), expected)
    assert np.array_equal(tifffile.imread(tmp_path / "out" / "b.tif"), expected)
    assert tifffile.imread(tmp_path / "out" / "a_probabilities.tif").dtype == np.float32  # PNG cannot hold float32
