"""Image/mask folders, read and checked up front so bad data stops before training, naming the file.

Layout: ``DIR/<split>/images/<name>.<ext>`` with the mask of the same stem in
``DIR/<split>/labels/``. PNG, JPEG, BMP and TIFF are read directly; NIfTI, MHA/MHD,
NRRD and DICOM through ITK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from segzoo.registry import Params, SegzooError

PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}
ITK_SUFFIXES = {".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".dcm"}
SUFFIXES = PIL_SUFFIXES | TIFF_SUFFIXES | ITK_SUFFIXES


class DataError(SegzooError, ValueError):
    """A data problem, naming the file and the fix."""


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix.lower()


def _stem(path: Path) -> str:
    return path.name[: -len(_suffix(path))]


def read_image(path: str | Path) -> np.ndarray:
    """A 2D image as ``(C, H, W)`` in its stored dtype; the error names the file when it cannot be read."""
    path = Path(path)
    suffix = _suffix(path)
    try:
        if suffix in PIL_SUFFIXES:
            from PIL import Image

            with Image.open(path) as img:
                array = np.asarray(img.convert("L") if img.mode in ("P", "1", "LA", "I;16") and img.mode != "I;16" else img)
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            array = tifffile.imread(path)
        else:
            import itk

            array = np.asarray(itk.array_from_image(itk.imread(str(path))))
    except Exception as exc:  # noqa: BLE001 - every reader fails differently; the user needs the file name
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}. Check the file is a valid {suffix} image, or remove it.") from None
    array = np.squeeze(array)
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] not in (3, 4):
        return np.moveaxis(array[..., :3], -1, 0)
    if array.ndim == 3:
        return array
    raise DataError(f"{path} has shape {array.shape}; segzoo trains on 2D images (H, W) or (H, W, C). Extract 2D slices first.")


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """Scale integer images by their dtype's maximum and float images by their own range, to float32 in [0, 1]."""
    if np.issubdtype(image.dtype, np.integer):
        return (image / np.iinfo(image.dtype).max).astype(np.float32)
    lo, hi = float(image.min()), float(image.max())
    return ((image - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def to_labels(mask: np.ndarray, path: Path, mode: str, mapping: dict[int, int] | None) -> np.ndarray:
    """Class-index map ``(1, H, W)``; values outside what ``mode``/``mapping`` allow are an error naming them."""
    mask = mask[:1] if mask.shape[0] > 1 else mask
    values = np.unique(mask)
    if mapping:
        unknown = sorted(set(values.tolist()) - set(mapping))
        if unknown:
            raise DataError(f"{path} has label values {unknown} that the label mapping {mapping} does not map; add them to label_mapping.")
        lut = np.zeros(int(values.max()) + 1, dtype=np.float32)
        for gray, cls in mapping.items():
            if gray < lut.size:
                lut[gray] = cls
        return lut[mask.astype(np.int64)]
    if mode == "binary":
        if len(values) > 2 or (len(values) == 2 and values[0] != 0):
            raise DataError(
                f"{path} has label values {values.tolist()[:10]}{'...' if len(values) > 10 else ''}, but a binary mask may only hold "
                "0 and one foreground value (such as 1 or 255). Save masks losslessly (PNG, not JPEG), or pass a label_mapping."
            )
        return (mask > 0).astype(np.float32)
    return mask.astype(np.float32)


def load_images(image_dir: str, in_channels: int | None = None) -> list[dict[str, Any]]:
    """Every image of a folder (no masks), for inference: ``{"image", "name", "path"}`` items (predictions are written like ``path``)."""
    folder = Path(image_dir)
    images = sorted(p for p in folder.iterdir() if _suffix(p) in SUFFIXES) if folder.is_dir() else []
    if not images:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(SUFFIXES))}); pass --input_dir with the images to segment.")
    return [{"image": to_unit_range(_match_channels(read_image(p), in_channels, p)), "name": _stem(p), "path": str(p)} for p in images]


def _match_channels(image: np.ndarray, in_channels: int | None, path: Path) -> np.ndarray:
    if in_channels is None or image.shape[0] == in_channels:
        return image
    if image.shape[0] == 1:
        return np.repeat(image, in_channels, 0)
    raise DataError(
        f"{path} has {image.shape[0]} channels but the network expects in_channels={in_channels}; "
        f"convert the image or set in_channels to {image.shape[0]}."
    )


class FolderParams(Params):
    dataset_dir: str = Field(description="folder holding <split>/images and <split>/labels")
    split: str = Field("train", description="sub-folder to read (train, test, ...)")
    labels: Literal["binary", "indexed"] = Field("binary", description="binary: 0 and one foreground value; indexed: class indices")
    label_mapping: dict[int, int] | None = Field(None, description="gray level -> class index, e.g. {0: 0, 255: 1}")
    in_channels: int | None = Field(None, ge=1, description="expected image channels; gray images are repeated to match")


def load_folder(
    dataset_dir: str,
    split: str = "train",
    labels: str = "binary",
    label_mapping: dict[int, int] | None = None,
    in_channels: int | None = None,
) -> list[dict[str, Any]]:
    """Read and check every pair: unreadable files, missing masks, size mismatches and bad labels are errors naming the file."""
    root = Path(dataset_dir) / split
    image_dir, label_dir = root / "images", root / "labels"
    if not image_dir.is_dir():
        raise DataError(f"{image_dir} does not exist; a dataset folder needs {split}/images/ and {split}/labels/ with masks of the same name.")
    images = sorted(p for p in image_dir.iterdir() if _suffix(p) in SUFFIXES)
    if not images:
        raise DataError(f"{image_dir} holds no images ({', '.join(sorted(SUFFIXES))}); put the {split} images there.")
    masks = {_stem(p): p for p in label_dir.iterdir() if _suffix(p) in SUFFIXES} if label_dir.is_dir() else {}
    items = []
    for path in images:
        mask_path = masks.get(_stem(path))
        if mask_path is None:
            raise DataError(f"{path} has no mask: expected {label_dir / path.name} (same name, any supported extension).")
        image = read_image(path)
        mask = read_image(mask_path)
        if image.shape[1:] != mask.shape[1:]:
            raise DataError(
                f"{mask_path} is {mask.shape[1]}x{mask.shape[2]} but its image {path} is {image.shape[1]}x{image.shape[2]}; "
                "masks must have the size of their image."
            )
        image = _match_channels(image, in_channels, path)
        items.append({"image": to_unit_range(image), "label": to_labels(mask, mask_path, labels, label_mapping), "name": _stem(path)})
    return items
