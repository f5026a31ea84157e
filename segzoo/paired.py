"""Is one model better than another on the same test images? Mean and spread over seeds, and a paired bootstrap.

One seed per row cannot tell a gap from the noise of one run. Every row is therefore trained with several
training seeds on the same parts (:mod:`segzoo.data.split` keeps them fixed), and compared with a reference
row image by image: the per-image scores are first averaged over each row's seeds, then the difference of
the two rows is taken per test image, and its mean gets a 95% percentile bootstrap interval from resampling
the images (seeded, so the same scores always give the same interval). The interval decides the verdict:
entirely above 0 is "better", entirely below "worse", else "no detectable difference". Scores are taken
as higher-is-better (IoU, Dice, AUC).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PerImage = Mapping[str, Mapping[str, float]]  # image name -> metric -> score, of one seed
CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedDifference:
    """The mean per-image difference ``row - reference`` of one metric, with its bootstrap interval."""

    metric: str
    mean: float
    low: float
    high: float
    images: int
    seeds: int

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no detectable difference"

    def sentence(self, row: str, reference: str) -> str:
        """One line a reader can quote, e.g. ``PyConvU-Net vs U-Net on the 6 test images, 2 seeds: +0.004 ...``."""
        seeds = f"{self.seeds} seed{'s' if self.seeds != 1 else ''}"
        return (f"{row} vs {reference} on the {self.images} test images, {seeds}: {self.mean:+.4f} {self.metric} "
                f"({CONFIDENCE:.0%} CI {self.low:+.4f} to {self.high:+.4f}): {self.verdict}")

    def as_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "verdict": self.verdict}


def read_per_image(path: str | Path) -> dict[str, dict[str, float]]:
    """An evaluation's ``per_image.csv`` (columns ``image`` and one per metric) as image -> metric -> score."""
    with open(path, newline="") as f:
        return {row.pop("image"): {k: float(v) for k, v in row.items()} for row in csv.DictReader(f)}


def mean_and_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean over seeds and the sample standard deviation (``None`` for a single seed: one run has no spread)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def seed_averaged(seeds: Sequence[PerImage], metric: str) -> dict[str, float]:
    """Each image's ``metric`` averaged over the seeds (the images every seed scored)."""
    images = set.intersection(*(set(s) for s in seeds)) if seeds else set()
    return {image: statistics.fmean(s[image][metric] for s in seeds) for image in sorted(images)}


def paired_difference(row: Sequence[PerImage], reference: Sequence[PerImage], metric: str, resamples: int = RESAMPLES,
                      seed: int = 0) -> PairedDifference:
    """``row - reference`` on ``metric`` over the test images both scored, seeds averaged, with a bootstrap interval."""
    ours, theirs = seed_averaged(row, metric), seed_averaged(reference, metric)
    images = sorted(set(ours) & set(theirs))
    if not images:
        raise ValueError(f"no test image was scored by both rows on {metric}; they must be evaluated on the same test part")
    differences = np.array([ours[i] - theirs[i] for i in images])
    draws = np.random.default_rng(seed).integers(0, len(images), size=(resamples, len(images)))
    means = differences[draws].mean(axis=1)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return PairedDifference(
        metric, float(differences.mean()), float(low), float(high), len(images), min(len(row), len(reference))
    )
