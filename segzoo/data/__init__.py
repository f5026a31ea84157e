"""Data: readers of image/mask folders with up-front validation, the synthetic default, seeded splits, offline
expansion and fixed tiling, and the items a bundle trains on. Part of the plugin API (docs/writing-a-plugin.md)."""

from segzoo.data.folder import SUFFIXES, DataError, FolderParams, load_folder, load_images, read_image, to_labels, to_unit_range
from segzoo.data.items import inference_items, load_items
from segzoo.data.offline import expand_offline, tiles
from segzoo.data.split import split
from segzoo.data.synthetic import default_cell_count, render_cells, synthetic_cells

__all__ = [
    "SUFFIXES",
    "DataError",
    "FolderParams",
    "default_cell_count",
    "expand_offline",
    "inference_items",
    "load_folder",
    "load_images",
    "load_items",
    "read_image",
    "to_labels",
    "to_unit_range",
    "render_cells",
    "split",
    "synthetic_cells",
    "tiles",
]
