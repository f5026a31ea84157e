"""Predictions written in the format and geometry of the image they were predicted from.

NIfTI, MHA/MHD and NRRD go through ITK with the source's spacing, origin and direction (a 2D slice stored as a
3D volume of one slice keeps that shape); DICOM becomes NIfTI (a DICOM series needs tags a mask lacks); TIFF
stays TIFF; PNG, JPEG and BMP become PNG (lossless). Probability maps are float32, so a PNG source gets TIFF.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from segzoo.data.folder import ITK_SUFFIXES, TIFF_SUFFIXES, _suffix

PNG = ".png"
TIFF = ".tif"


def output_suffix(source: str | Path | None, floating: bool = False) -> str:
    """The suffix a prediction of ``source`` is written with (PNG when there is no source file, e.g. synthetic images)."""
    suffix = _suffix(Path(source)) if source else PNG
    if suffix == ".dcm":
        return ".nii.gz"
    if suffix in ITK_SUFFIXES or suffix in TIFF_SUFFIXES:
        return suffix
    return TIFF if floating else PNG


def write_like(array: np.ndarray, path: str | Path, source: str | Path | None) -> Path:
    """Write ``array`` (``(H, W)`` or ``(C, H, W)``) to ``path`` + the suffix of :func:`output_suffix`; the path written."""
    floating = np.issubdtype(array.dtype, np.floating)
    suffix = output_suffix(source, floating)
    out = Path(f"{path}{suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(".partial-" + out.name)  # same suffix, so each writer picks the format; renamed when complete
    if suffix == PNG:
        from PIL import Image

        Image.fromarray(array).save(partial)
    elif suffix in TIFF_SUFFIXES:
        import tifffile

        tifffile.imwrite(partial, array)
    else:
        _write_itk(array, partial, Path(source))
    os.replace(partial, out)
    return out


def _write_itk(array: np.ndarray, out: Path, source: Path) -> None:
    """``array`` as an ITK image with ``source``'s geometry, reshaped to its dimensions (a slice may be stored as 3D)."""
    import itk

    reference = itk.imread(str(source))
    spatial = tuple(reversed(itk.size(reference)))  # numpy order
    channels = array.shape[0] if array.ndim == 3 else 1
    if array.ndim == 3 and channels == 1:
        array = array[0]
    if array.size != channels * int(np.prod(spatial)):
        raise ValueError(f"a prediction of shape {array.shape} does not fit {source}'s grid {spatial}")
    if channels > 1:
        image = itk.image_from_array(np.ascontiguousarray(np.moveaxis(array, 0, -1).reshape(*spatial, channels)), is_vector=True)
    else:
        image = itk.image_from_array(np.ascontiguousarray(array.reshape(spatial)))
    image.SetSpacing(reference.GetSpacing())
    image.SetOrigin(reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    itk.imwrite(image, str(out), compression=True)
