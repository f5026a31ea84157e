"""Baseline architectures the papers compare against (U-Net, ...)."""
