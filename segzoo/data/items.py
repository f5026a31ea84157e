"""The items a bundle trains on and the images it segments: a dataset folder, or the registry's synthetic default."""

from __future__ import annotations

from typing import Any

import segzoo
from segzoo.data.folder import load_images


def load_items(
    dataset_dir: str | None, in_channels: int, synthetic: dict[str, Any], split: str = "train", **folder: Any
) -> list[dict[str, Any]]:
    """The items a bundle trains on: the folder ``dataset_dir/<split>`` if given, else the synthetic default."""
    if dataset_dir:
        return segzoo.build("dataset", "folder", dataset_dir=str(dataset_dir), split=split, in_channels=in_channels, **folder)
    return segzoo.build("dataset", synthetic.get("name", "synthetic_cells"), channels=in_channels,
                        **{k: v for k, v in synthetic.items() if k != "name"})


def inference_items(input_dir: str | None, in_channels: int, synthetic: dict[str, Any]) -> list[dict[str, Any]]:
    """Images to segment: every image of ``input_dir``, or fresh synthetic images (another seed than training's)."""
    if input_dir:
        return load_images(input_dir, in_channels)
    unseen = {**synthetic, "seed": synthetic.get("seed", 0) + 1, "num_images": min(8, synthetic.get("num_images", 8))}
    return [{"image": item["image"], "name": item["name"]} for item in load_items(None, in_channels, unseen)]
