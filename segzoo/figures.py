"""Every figure segzoo draws: a run's training curves, a comparison's curves, an image / mask / prediction panel and a
search's trials."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    return _save(fig, path)


def save_comparison_curves(histories: dict[str, dict[str, list[tuple[int, float]]]], path: Path) -> Path:
    """Paper Fig. 2-3: one panel per curve (train loss, each validation metric), one line per architecture."""
    from matplotlib.ticker import MaxNLocator

    names = sorted({name for history in histories.values() for name in history}, key=lambda n: (n != "train_loss", n))
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        for arch, history in histories.items():
            if name in history:
                steps, values = zip(*history[name])
                ax.plot(steps, values, marker="o", markersize=3, label=arch)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def save_trials(trials: list[Any], names: list[str], metric: str, path: Path) -> Path:
    """A search's trials in the plane of its first two keys, coloured by ``metric`` (one key: metric against it)."""
    values = [t.value for t in trials]
    fig, ax = plt.subplots(figsize=(6, 5))
    if len(names) >= 2:
        points = ax.scatter(
            [t.params[names[1]] for t in trials], [t.params[names[0]] for t in trials], c=values, cmap="coolwarm", edgecolors="k"
        )
        fig.colorbar(points, ax=ax, label=metric)
        ax.set_xlabel(names[1])
        ax.set_ylabel(names[0])
    else:
        ax.scatter([t.params[names[0]] for t in trials], values, c=values, cmap="coolwarm", edgecolors="k")
        ax.set_xlabel(names[0])
        ax.set_ylabel(metric)
    ax.set_title(f"TPE search: {len(trials)} trials")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
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
