"""Seeded training / validation / test parts, identical for every architecture and every training seed.

Three parts, one purpose each: training fits the weights, validation selects (checkpoints, early stopping,
tuning), test is only scored for the reported numbers. The test part is drawn first, exactly as
scikit-learn's ``train_test_split(range(n), test_size=test_fraction, random_state=test_seed)`` draws it
(``ShuffleSplit``: ``np.random.RandomState(test_seed).permutation(n)``, the first ``ceil(test_fraction * n)``
indices are the test part), so a paper's published split (PyConvU-Net's ``random_state=41``) is reproduced
exactly. Validation is then carved out of the rest by ``seed``. Both seeds are split seeds: a training's
``seed`` may vary over repeated runs while the parts stay the same, which a paired comparison needs.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

Part = Literal["train", "val", "test", "all"]


def reported_part_indices(n: int, test_fraction: float, test_seed: int) -> list[int]:
    """Indices of the test part as scikit-learn's ``train_test_split(range(n), test_size=test_fraction,
    random_state=test_seed)`` returns them (in its order); none when ``test_fraction`` is 0."""
    if test_fraction <= 0 or n < 2:
        return []
    n_test = min(math.ceil(test_fraction * n), n - 1)
    return np.random.RandomState(test_seed).permutation(n)[:n_test].tolist()


def split(items: list[dict[str, Any]], part: Part, val_fraction: float = 0.2, seed: int = 0, test_fraction: float = 0.0,
          test_seed: int = 0) -> list[dict[str, Any]]:
    """The ``part`` of ``items`` (in their order): ``test`` is ``test_fraction`` of them drawn by ``test_seed`` (see
    :func:`reported_part_indices`), ``val`` is ``round(val_fraction * len(items))`` of the rest drawn by ``seed`` (at least one,
    and at least one item is left to train on), ``train`` the remainder, ``all`` everything."""
    if part == "all":
        return list(items)
    test = reported_part_indices(len(items), test_fraction, test_seed)
    if part == "test":
        return [items[i] for i in sorted(test)]
    rest = np.setdiff1d(np.arange(len(items)), test)
    order = rest[np.random.default_rng(seed).permutation(len(rest))]
    n_val = min(max(1, round(len(items) * val_fraction)), len(rest) - 1) if len(rest) > 1 else 0
    chosen = order[:n_val] if part == "val" else order[n_val:]
    return [items[i] for i in sorted(chosen.tolist())]
