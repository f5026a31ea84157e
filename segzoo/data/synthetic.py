"""Seeded synthetic EM-like cell images: the default data of every binary bundle, so nothing is downloaded.

Cells are the Voronoi regions of random seeds; membranes are the thin bands where
two regions meet. Interiors carry texture and dark organelle blobs (that belong to
the cell, as in EM), then the image is blurred and noised. Label 1 = cell interior,
0 = membrane, as in ISBI 2012.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field
from scipy import ndimage
from scipy.spatial import cKDTree

from segzoo.registry import Params


class SyntheticCellsParams(Params):
    num_images: int = Field(40, ge=2, description="number of image/mask pairs")
    size: int = Field(256, ge=32, description="height and width in pixels")
    channels: int = Field(1, ge=1, description="image channels (the gray image repeated)")
    cells: int = Field(0, ge=0, description="cells per image; 0 picks one per 24x24 pixels")
    seed: int = Field(0, description="random seed: same seed, same images")


def render_cells(size: int, cells: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One ``(size, size)`` image in [0, 1] and its binary mask."""
    seeds = rng.uniform(0, size, (cells, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    dist, idx = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1), k=2)
    thickness = rng.uniform(1.5, 3.0)
    interior = (dist[:, 1] - dist[:, 0] > thickness).reshape(size, size)
    cell_id = idx[:, 0].reshape(size, size)
    brightness = rng.uniform(0.55, 0.9, cells)[cell_id]
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 2.0) * 0.15
    image = np.where(interior, brightness + texture, rng.uniform(0.05, 0.2))
    blobs = ndimage.gaussian_filter((rng.random((size, size)) > 0.997).astype(float), 2.5)
    image -= 0.5 * interior * blobs / max(blobs.max(), 1e-6)
    image = ndimage.gaussian_filter(image, 1.0) + rng.normal(0, 0.04, (size, size))
    return np.clip(image, 0, 1).astype(np.float32), interior.astype(np.float32)


def default_cell_count(size: int) -> int:
    """One cell per 24x24 pixels, the density of ISBI 2012's slices at 512x512."""
    return max(4, (size // 24) ** 2)


def synthetic_cells(
    num_images: int = 40, size: int = 256, channels: int = 1, cells: int = 0, seed: int = 0
) -> list[dict[str, Any]]:
    """Items ``{"image": (C, H, W), "label": (1, H, W), "name": str}``, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    cells = cells or default_cell_count(size)
    items = []
    for i in range(num_images):
        image, mask = render_cells(size, cells, rng)
        items.append({"image": np.repeat(image[None], channels, 0), "label": mask[None], "name": f"synthetic_{i:03d}"})
    return items
