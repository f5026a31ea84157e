"""Figures logged with every run: training curves and an image / mask / prediction panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def save_curves(history: dict[str, list[tuple[int, float]]], path: Path, title: str = "") -> Path | None:
    """Loss on the left, validation metrics on the right, per epoch."""
    if not history:
        return None
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in history.items():
        ax = loss_ax if "loss" in name else metric_ax
        steps, values = zip(*points)
        ax.plot(steps, values, marker="o", markersize=3, label=name)
    for ax, label in ((loss_ax, "loss"), (metric_ax, "validation metric")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _show(image: Any) -> np.ndarray:
    array = torch.as_tensor(image).detach().float().cpu().numpy()
    if array.shape[0] == 1:
        return array[0]
    if array.shape[0] == 3:
        return np.moveaxis(array, 0, -1)
    return array.argmax(0)


def prediction_panel(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> plt.Figure:
    """One row per image: ``image``, ``label`` and one prediction per model (paper Fig. 4's layout)."""
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.6 * len(columns), 2.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c, key in enumerate(columns):
            ax = axes[r][c]
            shown = _show(row[key])
            # masks on a fixed scale, so an all-foreground prediction shows white, not the colormap's minimum
            limits = {} if key == "image" else {"vmin": 0, "vmax": max(1, int(shown.max()))}
            ax.imshow(shown, cmap="gray", interpolation="nearest", **limits)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(key)
        axes[r][0].set_ylabel(str(row.get("name", "")), fontsize=8)
    fig.tight_layout()
    return fig
