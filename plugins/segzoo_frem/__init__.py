"""Feature Random Enhancement Module (FREM) for an SE U-Net: components of the FREM paper."""

CITATION = (
    "Ando T, Hotta K. Cell image segmentation by Feature Random Enhancement Module. "
    "VISAPP 2021 (arXiv:2101.07983)"
)

# Values the paper's TPE searches found (Table 1: mouse cells, Table 2: Drosophila; Table 3: fixed filters).
MOUSE_FREM = {"B": 162, "X": 632.0}
DROSOPHILA_FREM = {"B": 8, "X": 250.0}
FIXED_FREM = {"B": 10, "X": 10000.0, "mode": "fixed"}
MOUSE_SUPERVISION_WEIGHT = 0.3257
DROSOPHILA_SUPERVISION_WEIGHT = 0.2781
ENCODER_END_CHANNELS = 512
