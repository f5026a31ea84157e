"""The FREM paper's data: the synthetic 4-class default and the ssTEM gray-code label mapping.

The Drosophila ssTEM ground truth (Gerhard et al. 2013) stores one label PNG per raw TIFF slice,
coding classes as gray levels: 0, 32, 64, 96 and 128 are membrane kinds, 159 glia/extracellular
space, 191 mitochondria, 223 synapse and 255 intracellular space. The paper segments four classes
(membrane, mitochondria, synapse, background), so glia/extracellular and intracellular both become
background. Indices follow :mod:`segzoo_frem.synthetic`: 0 background, 1 membrane, 2 mitochondria,
3 synapse, so real and synthetic data train the same network.
"""

from __future__ import annotations

import segzoo
from segzoo.errors import SegzooError
from segzoo_frem.synthetic import BACKGROUND, MEMBRANE, MITOCHONDRIA, SYNAPSE, SyntheticEMParams, synthetic_em

TEM_4CLASS = {
    **{gray: MEMBRANE for gray in (0, 32, 64, 96, 128)},
    159: BACKGROUND,  # glia / extracellular space
    191: MITOCHONDRIA,
    223: SYNAPSE,
    255: BACKGROUND,  # intracellular space
}

LABEL_MAPPINGS: dict[str, dict[int, int]] = {"tem_4class": TEM_4CLASS}


def label_mapping(name: str | None) -> dict[int, int] | None:
    """The named gray level -> class mapping (``None`` for none); an unknown name lists the known ones."""
    if name is None:
        return None
    if name not in LABEL_MAPPINGS:
        raise SegzooError(f"no label mapping named '{name}'; known mappings: {', '.join(sorted(LABEL_MAPPINGS))}")
    return LABEL_MAPPINGS[name]


synthetic_em_dataset = segzoo.component(
    "dataset", "synthetic_em", SyntheticEMParams,
    "Seeded synthetic EM-like images with 4 classes: background, membrane, mitochondria, synapse (no download)",
)(synthetic_em)
