"""Seeded synthetic multi-class EM-like images, so multi-class bundles run with no download.

The cells and membranes come from :func:`segzoo.data.synthetic.render_cells`; on top of them we
paint dark elliptical mitochondria inside cells and synapses as thickened, darker stretches of
membrane, the three foreground classes of the Drosophila ssTEM data (Gerhard et al. 2013) that the
FREM paper segments. Classes: 0 background (cytoplasm), 1 membrane, 2 mitochondria, 3 synapse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field
from scipy import ndimage

from segzoo import Params
from segzoo.data import default_cell_count, render_cells

CLASS_NAMES = ("background", "membrane", "mitochondria", "synapse")
BACKGROUND, MEMBRANE, MITOCHONDRIA, SYNAPSE = range(len(CLASS_NAMES))


class SyntheticEMParams(Params):
    num_images: int = Field(20, ge=2, description="number of image/mask pairs")
    size: int = Field(512, ge=32, description="height and width in pixels")
    channels: int = Field(1, ge=1, description="image channels (the gray image repeated)")
    cells: int = Field(0, ge=0, description="cells per image; 0 picks one per 24x24 pixels")
    seed: int = Field(0, description="random seed: same seed, same images")


def _mitochondria(interior: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ellipses (3-9 px half-axes, any angle) centred in cell interiors, clipped to them."""
    size = interior.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    centres = np.argwhere(ndimage.binary_erosion(interior, iterations=4))
    mask = np.zeros_like(interior)
    if len(centres) == 0:
        return mask
    for cy, cx in centres[rng.integers(0, len(centres), count)]:
        a, b = rng.uniform(5, 9), rng.uniform(3, 5)
        angle = rng.uniform(0, np.pi)
        u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
        v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
        mask |= (u / a) ** 2 + (v / b) ** 2 <= 1
    return mask & interior


def _synapses(membrane: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` discs (radius 3-5 px) on membrane pixels, widened one pixel into the cells: a thick dark density."""
    size = membrane.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    points = np.argwhere(membrane)
    mask = np.zeros_like(membrane)
    for cy, cx in points[rng.integers(0, len(points), count)]:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(3, 5) ** 2
    return mask & ndimage.binary_dilation(membrane, iterations=1)


def synthetic_em(num_images: int = 20, size: int = 512, channels: int = 1, cells: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """Items ``{"image": (C, H, W), "label": (1, H, W) class indices, "name"}``, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    cells = cells or default_cell_count(size)
    items = []
    for i in range(num_images):
        image, interior = render_cells(size, cells, rng)
        interior = interior.astype(bool)
        label = np.where(interior, BACKGROUND, MEMBRANE)
        mito = _mitochondria(interior, max(1, cells // 2), rng)
        synapse = _synapses(~interior, max(1, cells // 3), rng)
        label[mito] = MITOCHONDRIA
        label[synapse] = SYNAPSE
        # Mitochondria: darker, with faint cristae stripes; synapses: the darkest structure of the image.
        cristae = 0.08 * np.sin(np.arange(size) * 1.3)[None, :]
        image = np.where(mito, 0.35 * image + cristae + 0.1, image)
        image = np.where(synapse, 0.03, image)
        image = ndimage.gaussian_filter(image, 0.7) + rng.normal(0, 0.03, image.shape)
        image = np.clip(image, 0, 1).astype(np.float32)
        items.append(
            {
                "image": np.repeat(image[None], channels, 0),
                "label": label[None].astype(np.float32),
                "name": f"synthetic_em_{i:03d}",
            }
        )
    return items
