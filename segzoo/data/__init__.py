"""Data: readers of image/mask folders with up-front validation, the synthetic default, seeded splits, offline
expansion and fixed tiling."""

from segzoo.data.folder import DataError, load_folder, load_images, read_image
from segzoo.data.offline import expand_offline, tiles
from segzoo.data.split import split
from segzoo.data.synthetic import synthetic_cells

__all__ = ["DataError", "expand_offline", "load_folder", "load_images", "read_image", "split", "synthetic_cells", "tiles"]
