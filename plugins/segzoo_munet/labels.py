"""Reading classification targets in the shapes MONAI pipelines produce."""

from __future__ import annotations

import torch


def class_indices(y: torch.Tensor) -> torch.Tensor:
    """Class indices ``(B,)`` from indices shaped ``(B,)`` or ``(B, 1)``, or one-hot rows ``(B, C)``."""
    if y.ndim > 2:
        raise ValueError(f"classification targets are (B,), (B, 1) or one-hot (B, C), got shape {tuple(y.shape)}")
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(1)
    return y.reshape(len(y)).round().long()
