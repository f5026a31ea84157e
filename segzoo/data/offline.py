"""Data sets a paper built before training, rebuilt deterministically: offline augmentation and fixed tiles.

Some papers expand a small data set once, before training, instead of augmenting on the fly (PyConvU-Net
adds flipped and rotated copies of every image), or cut large images into a fixed grid of tiles (FREM trains
and tests on the 16 non-overlapping 256x256 tiles of each 1024x1024 slice). Both change what an epoch is
(more, smaller or transformed samples), so a faithful recipe needs them as data, not as random transforms.
Items are the dicts the bundles load: ``image`` and ``label`` arrays ``(C, H, W)`` and a ``name``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segzoo.errors import SegzooError

AUGMENTATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "flip_h": lambda a: a[..., ::-1],  # left-right
    "flip_v": lambda a: a[..., ::-1, :],  # top-bottom
    "rot90": lambda a: np.rot90(a, 1, axes=(-2, -1)),
    "rot180": lambda a: np.rot90(a, 2, axes=(-2, -1)),
    "rot270": lambda a: np.rot90(a, 3, axes=(-2, -1)),
}


def expand_offline(items: Sequence[dict[str, Any]], augmentations: Sequence[str]) -> list[dict[str, Any]]:
    """Every item once per augmentation (``identity`` keeps the original), named ``<name>@<augmentation>``."""
    unknown = [a for a in augmentations if a not in AUGMENTATIONS]
    if unknown or not augmentations:
        raise SegzooError(f"offline augmentations {unknown or '[]'} unknown or empty; choose from {', '.join(AUGMENTATIONS)}")
    return [
        {**item, "name": f"{item.get('name', i)}@{aug}",
         **{key: np.ascontiguousarray(AUGMENTATIONS[aug](item[key])) for key in ("image", "label") if key in item}}
        for i, item in enumerate(items) for aug in augmentations
    ]


def tiles(items: Sequence[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The non-overlapping ``size`` x ``size`` tiles of every item, row by row, named ``<name>@r<row>c<col>``."""
    out = []
    for i, item in enumerate(items):
        height, width = item["image"].shape[-2:]
        if height % size or width % size:
            raise SegzooError(
                f"image '{item.get('name', i)}' is {height}x{width}, which {size}x{size} tiles do not cover without overlap; "
                f"set the tile size to a divisor of both sides or crop the images"
            )
        for row in range(height // size):
            for col in range(width // size):
                window = (..., slice(row * size, (row + 1) * size), slice(col * size, (col + 1) * size))
                out.append({**item, "name": f"{item.get('name', i)}@r{row}c{col}",
                            **{key: np.ascontiguousarray(item[key][window]) for key in ("image", "label") if key in item}})
    return out
