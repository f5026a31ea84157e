"""MUNet: multi-branch segmentation with area-weighted voting and a classification head."""
