"""Built-in datasets: the synthetic default and a folder of image/mask pairs."""

from __future__ import annotations

import segzoo
from segzoo.data.folder import FolderParams, load_folder
from segzoo.data.synthetic import SyntheticCellsParams, synthetic_cells

folder = segzoo.component(
    "dataset",
    "folder",
    FolderParams,
    "Image/mask pairs from DIR/<split>/images and DIR/<split>/labels (PNG, TIFF, NIfTI, MHA, DICOM)",
)(load_folder)
cells = segzoo.component("dataset", "synthetic_cells", SyntheticCellsParams,
                         "Seeded synthetic EM-like cells with membranes and binary masks (no download)")(synthetic_cells)


@segzoo.hookimpl
def segzoo_components() -> list:
    return [folder, cells]
