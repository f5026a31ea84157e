"""MUNet: multi-branch segmentation with area-weighted voting and a classification head."""

CITATION = "Zhang W, Cheng H, Gan J. MUNet: a multi-scale U-Net framework for medical image segmentation"
