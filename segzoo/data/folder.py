"""Image/mask folders, read and checked up front so bad data stops before training, naming the file.

Layout: ``DIR/<split>/images/<name>.<ext>`` with the mask of the same stem in
``DIR/<split>/labels/``. PNG, JPEG, BMP and TIFF are read directly; NIfTI, MHA/MHD,
NRRD and DICOM through ITK.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from segzoo.errors import SegzooError
from segzoo.processing import scale
from segzoo.registry import Params

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


def read_image(path: str | Path, mask: bool = False) -> np.ndarray:
    """A 2D image as ``(C, H, W)`` in its stored dtype; the error names the file when it cannot be read.

    Layout: ``(H, W)``; ``(H, W, C)`` when the last axis has at most 4 entries and the first more; else ``(C, H, W)``.
    PNG/JPEG/BMP: alpha is dropped (RGBA -> RGB, LA -> L) and a palette image becomes gray, while a palette mask keeps
    its indices (the class labels). TIFF and ITK channels are kept as stored.
    """
    path = Path(path)
    suffix = _suffix(path)
    try:
        if suffix in PIL_SUFFIXES:
            from PIL import Image

            with Image.open(path) as img:
                array = np.asarray(_pil_mode(img, mask))
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            array = tifffile.imread(path)
        else:
            import itk

            array = np.asarray(itk.array_from_image(itk.imread(str(path))))
    except Exception as exc:  # noqa: BLE001 - every reader fails differently; the user needs the file name
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}. "
                        f"Check the file is a valid {suffix} image, or remove it.") from None
    if array.size == 0:
        raise DataError(f"{path} is empty (shape {array.shape}); remove it or export it again.")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise DataError(f"{path} holds {array.dtype} pixels; segzoo reads integer, float or boolean images. "
                        "Convert it to a real-valued image.")
    array = np.squeeze(array)
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return np.moveaxis(array, -1, 0) if array.shape[-1] <= 4 < array.shape[0] else array
    raise DataError(f"{path} has shape {array.shape}; segzoo trains on 2D images (H, W) or (H, W, C). Extract 2D slices first.")


# PIL modes read through a conversion: alpha dropped, palette and 1-bit images as gray
PIL_CONVERSIONS = {"P": "L", "PA": "L", "1": "L", "LA": "L", "RGBA": "RGB"}


def _pil_mode(img: Any, mask: bool) -> Any:
    """What :func:`read_image` keeps of a PIL image (see there)."""
    if img.mode in PIL_CONVERSIONS and not (mask and img.mode == "P"):
        return img.convert(PIL_CONVERSIONS[img.mode])
    return img


class NarrowPixelsWarning(UserWarning):
    """An unsigned image uses a small part of its type's range (12-bit data in a 16-bit file, say)."""


def to_unit_range(image: np.ndarray, path: str | Path = "image") -> np.ndarray:
    """Float32 in [0, 1] by the recorded input rule (:func:`segzoo.processing.scale`); NaN or infinite pixels are refused,
    naming the file. A 16-bit (or wider) unsigned image whose largest value is below 1/8 of its type's maximum is
    still divided by that maximum, as the rule says, but not silently: a warning names the file and the range it gets."""
    try:
        scaled = scale(image, str(path))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.unsignedinteger) and image.dtype.itemsize >= 2 and image.size:
        top, peak = np.iinfo(image.dtype).max, int(image.max())
        if 0 < peak < top / 8:
            bits = peak.bit_length()
            warnings.warn(
                f"{path}: a {image.dtype} image whose largest value is {peak} (about {bits}-bit data) is divided by {top} "
                f"like every {image.dtype} image, so its pixels lie in [0, {peak / top:.3f}]. Fine if the whole data set is "
                f"stored this way; otherwise rescale the files to the type's range first.",
                NarrowPixelsWarning,
                stacklevel=2,
            )
    return scaled


def to_labels(mask: np.ndarray, path: Path, mode: str, mapping: dict[int, int] | None) -> np.ndarray:
    """Class-index map ``(1, H, W)``; values outside what ``mode``/``mapping`` allow are an error naming them.

    A mask must hold whole numbers (NaN and fractions are refused); a multi-channel mask whose channels differ (a
    colour mask) is refused, one whose channels agree (gray saved as RGB) is read as one channel.
    """
    if mask.shape[0] > 1 and not (mask == mask[:1]).all():
        raise DataError(f"{path} is a colour mask ({mask.shape[0]} channels that differ); "
                        "save masks as one channel of class values.")
    mask = mask[:1]
    if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        if not np.isfinite(mask).all() or (mask != np.round(mask)).any():
            raise DataError(f"{path} holds NaN or fractional label values; a mask must hold whole class values "
                            "(e.g. 0 and 1, or 0 and 255).")
        mask = mask.astype(np.int64)
    values = np.unique(mask)
    if mapping:
        unknown = sorted(set(values.tolist()) - set(mapping))
        if unknown:
            raise DataError(f"{path} has label values {unknown} that the label mapping {mapping} does not map; "
                            "add them to label_mapping.")
        grays = np.array(sorted(mapping))
        return np.array([mapping[g] for g in grays], dtype=np.float32)[np.searchsorted(grays, mask)]
    if mode == "binary":
        if len(values) > 2 or (len(values) == 2 and values[0] != 0):
            raise DataError(
                f"{path} has label values {values.tolist()[:10]}{'...' if len(values) > 10 else ''}, "
                "but a binary mask may only hold "
                "0 and one foreground value (such as 1 or 255). Save masks losslessly (PNG, not JPEG), or pass a label_mapping."
            )
        return (mask > 0).astype(np.float32)
    if values[0] < 0:
        raise DataError(f"{path} has negative label values {values[values < 0].tolist()[:5]}; "
                        "class indices start at 0. Pass a label_mapping.")
    return mask.astype(np.float32)


def _by_stem(paths: list[Path]) -> dict[str, Path]:
    """Files by name without extension; two files of one stem (a.png and a.tif) are refused, since their outputs
    (masks, per-image rows) would overwrite each other."""
    found: dict[str, Path] = {}
    for path in paths:
        other = found.setdefault(_stem(path), path)
        if other != path:
            raise DataError(f"{other} and {path} have the same name apart from the extension; rename or remove one of them.")
    return found


def load_images(image_dir: str, in_channels: int | None = None) -> list[dict[str, Any]]:
    """Every image of a folder (no masks), for inference: ``{"image", "name", "path"}`` items (predictions are written like
    ``path``)."""
    folder = Path(image_dir)
    images = _by_stem(sorted(p for p in folder.iterdir() if _suffix(p) in SUFFIXES)) if folder.is_dir() else {}
    if not images:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(SUFFIXES))}); pass --input_dir with the images to segment.")
    return [{"image": to_unit_range(_match_channels(read_image(p), in_channels, p), p), "name": stem, "path": str(p)}
            for stem, p in images.items()]


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
    labels: Literal["binary", "indexed"] = Field(
        "binary", description="binary: 0 and one foreground value; indexed: class indices"
    )
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
        raise DataError(f"{image_dir} does not exist; a dataset folder needs {split}/images/ and {split}/labels/ "
                        "with masks of the same name.")
    images = _by_stem(sorted(p for p in image_dir.iterdir() if _suffix(p) in SUFFIXES))
    if not images:
        raise DataError(f"{image_dir} holds no images ({', '.join(sorted(SUFFIXES))}); put the {split} images there.")
    masks = _by_stem(sorted(p for p in label_dir.iterdir() if _suffix(p) in SUFFIXES)) if label_dir.is_dir() else {}
    items = []
    for stem, path in images.items():
        mask_path = masks.get(stem)
        if mask_path is None:
            raise DataError(f"{path} has no mask: expected {label_dir / path.name} (same name, any supported extension).")
        image = read_image(path)
        mask = read_image(mask_path, mask=True)
        if image.shape[1:] != mask.shape[1:]:
            raise DataError(
                f"{mask_path} is {mask.shape[1]}x{mask.shape[2]} but its image {path} is {image.shape[1]}x{image.shape[2]}; "
                "masks must have the size of their image."
            )
        image = _match_channels(image, in_channels, path)
        items.append(
            {"image": to_unit_range(image, path), "label": to_labels(mask, mask_path, labels, label_mapping), "name": stem}
        )
    return items
