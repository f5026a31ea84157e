"""MUNet's data: images with a mask *and* a class, split and sampled so the rare class is seen often enough.

Items are ``{"image": (C, H, W), "label": (1, H, W) mask, "class": int, "name": str}``; ``label`` stays the
mask so segzoo's readers, writers and segmentation metrics work unchanged, ``class`` is the image's class.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from scipy import ndimage
from torch.utils.data import WeightedRandomSampler

import segzoo
from segzoo.data import SUFFIXES, DataError, FolderParams, load_folder, split
from segzoo.data import load_items as core_load_items
from segzoo_munet import CITATION


class SyntheticLesionsParams(segzoo.Params):
    num_images: int = Field(40, ge=4, description="number of images")
    size: int = Field(256, ge=32, description="height and width in pixels")
    channels: int = Field(1, ge=1, description="image channels (the gray image repeated)")
    malignant_fraction: float = Field(0.3, gt=0, lt=1, description="share of class 1 (spiculated) images: the minority class")
    seed: int = Field(0, description="random seed: same seed, same images")


def lesion_radius(angles: np.ndarray, spiculated: bool, rng: np.random.Generator) -> np.ndarray:
    """Relative radius along ``angles``: a smooth low-frequency contour, plus sharp spikes for the malignant class."""
    radius = np.ones_like(angles)
    for harmonic in (2, 3):
        radius += rng.uniform(0.03, 0.08) * np.cos(harmonic * angles + rng.uniform(0, 2 * np.pi))
    if spiculated:
        spikes = rng.integers(7, 13)
        radius += rng.uniform(0.35, 0.5) * np.abs(np.cos(spikes * angles / 2 + rng.uniform(0, np.pi))) ** 8
    return radius


def render_lesion(size: int, spiculated: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One speckled ultrasound-like ``(size, size)`` image in [0, 1] with a dark lesion, and the lesion's mask."""
    centre = rng.uniform(0.35, 0.65, 2) * size
    base = rng.uniform(0.12, 0.2) * size
    yy, xx = np.mgrid[0:size, 0:size]
    angles = np.arctan2(yy - centre[0], xx - centre[1])
    mask = np.hypot(yy - centre[0], xx - centre[1]) <= base * lesion_radius(angles, spiculated, rng)
    speckle = ndimage.gaussian_filter(rng.rayleigh(0.25, (size, size)), 1.0)
    image = np.where(mask, rng.uniform(0.1, 0.25), rng.uniform(0.45, 0.6)) + speckle - 0.25
    image = ndimage.gaussian_filter(image, 0.8) + rng.normal(0, 0.03, (size, size))
    return np.clip(image, 0, 1).astype(np.float32), mask.astype(np.float32)


def synthetic_lesions(
    num_images: int = 40, size: int = 256, channels: int = 1, malignant_fraction: float = 0.3, seed: int = 0
) -> list[dict[str, Any]]:
    """Seeded two-class data that differ in shape (smooth benign vs spiculated malignant blobs), so the bundle runs offline."""
    rng = np.random.default_rng(seed)
    malignant = max(1, round(num_images * malignant_fraction))
    classes = rng.permutation([1] * malignant + [0] * (num_images - malignant))
    items = []
    for i, cls in enumerate(classes):
        image, mask = render_lesion(size, bool(cls), rng)
        items.append(
            {"image": np.repeat(image[None], channels, 0), "label": mask[None], "class": int(cls), "name": f"lesion_{i:03d}"}
        )
    return items


class LabelledFolderParams(FolderParams):
    classes_csv: str = Field("classes.csv", description="CSV with columns image,label in DIR/<split>/ (image: file name or stem)")


def image_stem(name: str) -> str:
    """``a.png`` and ``a`` both name the image ``a`` (the CSV may list file names or stems)."""
    path = Path(name)
    return path.stem if path.suffix.lower() in SUFFIXES else path.name


def read_classes(path: Path) -> dict[str, int]:
    """``image stem -> class`` from a CSV with an ``image`` and a ``label`` column."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; MUNet needs a CSV with columns image,label giving every image's class.")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise DataError(f"{path} needs a header 'image,label' and one row per image.")
    try:
        return {image_stem(row["image"]): int(row["label"]) for row in rows}
    except ValueError as err:
        raise DataError(f"{path}: every label must be an integer class index ({err}).") from None


def labelled_folder(
    dataset_dir: str,
    split: str = "train",
    labels: Literal["binary", "indexed"] = "binary",
    label_mapping: dict[int, int] | None = None,
    in_channels: int | None = None,
    classes_csv: str = "classes.csv",
) -> list[dict[str, Any]]:
    """The folder dataset's image/mask pairs with each image's class from ``DIR/<split>/<classes_csv>``."""
    items = load_folder(dataset_dir, split, labels, label_mapping, in_channels)
    csv_path = Path(dataset_dir) / split / classes_csv
    classes = read_classes(csv_path)
    missing = [item["name"] for item in items if item["name"] not in classes]
    if missing:
        raise DataError(f"{csv_path} gives no class for {len(missing)} image(s), e.g. {missing[0]}; "
                        "add a row 'image,label' for each.")
    return [{**item, "class": classes[item["name"]]} for item in items]


def load_items(
    dataset_dir: str | None, in_channels: int, synthetic: dict[str, Any], split: str = "train"
) -> list[dict[str, Any]]:
    """The labelled folder ``dataset_dir/<split>`` if given, else the synthetic lesions (what the bundle trains on)."""
    if dataset_dir:
        return labelled_folder(str(dataset_dir), split, in_channels=in_channels)
    return core_load_items(None, in_channels, synthetic)


def stratified_split(items: list[dict[str, Any]], part: Literal["train", "val", "test", "all"], val_fraction: float = 0.2,
                     seed: int = 0, test_fraction: float = 0.0, test_seed: int = 0) -> list[dict[str, Any]]:
    """segzoo's seeded split applied per class, so validation and test hold every class (AUC needs both).

    Each returned item gets ``index``, its position in the part: samplers and hard-example mining address images by it.
    """
    by_class: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        by_class.setdefault(item["class"], []).append(item)
    chosen = [
        item for cls in sorted(by_class) for item in split(by_class[cls], part, val_fraction, seed, test_fraction, test_seed)
    ]
    chosen.sort(key=lambda item: item["name"])
    return [{**item, "index": i} for i, item in enumerate(chosen)]


def class_weights(items: list[dict[str, Any]]) -> torch.Tensor:
    """Per-image sampling weight 1 / (images of its class): every class is drawn equally often."""
    counts = Counter(item["class"] for item in items)
    return torch.tensor([1.0 / counts[item["class"]] for item in items], dtype=torch.double)


def balanced_sampler(items: list[dict[str, Any]], seed: int = 0) -> WeightedRandomSampler:
    """The paper's cost-sensitive balancing: draw ``len(items)`` images per epoch with inverse class frequency."""
    return WeightedRandomSampler(
        class_weights(items), len(items), replacement=True, generator=torch.Generator().manual_seed(seed)
    )


synthetic = segzoo.component(
    "dataset", "synthetic_lesions", SyntheticLesionsParams,
    "Seeded two-class lesions (smooth benign vs spiculated malignant) with masks and a class per image", CITATION,
)(synthetic_lesions)
folder = segzoo.component(
    "dataset", "labelled_folder", LabelledFolderParams,
    "Image/mask pairs of DIR/<split>/images and labels, with a class per image from DIR/<split>/classes.csv", CITATION,
)(labelled_folder)

DATASETS = [synthetic, folder]
