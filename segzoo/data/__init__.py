"""Data: readers of image/mask folders with up-front validation, the synthetic default, and seeded splits."""

from segzoo.data.folder import DataError, load_folder, load_images, read_image
from segzoo.data.split import split
from segzoo.data.synthetic import synthetic_cells

__all__ = ["DataError", "load_folder", "load_images", "read_image", "split", "synthetic_cells"]
