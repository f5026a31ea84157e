"""A seeded train/validation split, identical for every architecture compared on the same data."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np


def split(items: list[dict[str, Any]], part: Literal["train", "val", "all"], val_fraction: float = 0.2, seed: int = 0) -> list[dict[str, Any]]:
    """The ``part`` of a seeded ``1 - val_fraction`` / ``val_fraction`` split (at least one item on each side)."""
    if part == "all":
        return list(items)
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = min(max(1, round(len(items) * val_fraction)), len(items) - 1) if len(items) > 1 else 0
    chosen = order[:n_val] if part == "val" else order[n_val:]
    return [items[i] for i in sorted(chosen)]
