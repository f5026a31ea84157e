"""Image/mask sets as MLflow dataset inputs, so the runs table's Dataset column and dataset filters work.

A set is named after its folder (``isbi2012``) or its generator (``synthetic_cells``). Its digest hashes every
item as the network receives it (name, image and mask arrays, in order), so two runs on the same data show the
same digest on any machine, and an edited mask or a different split changes it. The source says where the data
came from: the folder's path, or ``synthetic`` with the generator's name and parameters (seed included).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.data.dataset import Dataset
from mlflow.data.dataset_source import DatasetSource

import segzoo

DIGEST_LENGTH = 10  # MLflow asks for at most 10 characters; 40 bits tell data versions apart


def content_digest(items: list[dict[str, Any]]) -> str:
    """A hash of every item's fields in order: arrays by dtype, shape and bytes, anything else by its text."""
    digest = hashlib.sha256()
    for item in items:
        for key in sorted(item):
            value = item[key]
            digest.update(key.encode())
            if hasattr(value, "shape"):  # numpy arrays and CPU tensors
                array = np.ascontiguousarray(np.asarray(value))
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(array.reshape(-1).view(np.uint8))
            else:
                digest.update(repr(value).encode())
    return digest.hexdigest()[:DIGEST_LENGTH]


class SyntheticSource(DatasetSource):
    """Images drawn by a registered dataset generator: its name and parameters reproduce them exactly."""

    def __init__(self, generator: str, params: dict[str, Any]) -> None:
        self.generator = generator
        self.params = params

    @staticmethod
    def _get_source_type() -> str:
        return "synthetic"

    def load(self, **kwargs: Any) -> list[dict[str, Any]]:
        return segzoo.build("dataset", self.generator, **self.params)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False  # never guessed from a path or URI: built explicitly by the tracker

    @classmethod
    def _resolve(cls, raw_source: Any) -> SyntheticSource:
        raise NotImplementedError("a synthetic source is built from its generator's name and parameters")

    def to_dict(self) -> dict[str, Any]:
        return {"generator": self.generator, **self.params}

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> SyntheticSource:
        params = dict(source_dict)
        return cls(params.pop("generator"), params)


class ImageMaskDataset(Dataset):
    """A list of ``{"image", "label", "name", ...}`` items as MLflow records it: name, content digest, source,
    and a profile with the image count and the first image's shape."""

    def __init__(self, items: list[dict[str, Any]], source: DatasetSource, name: str) -> None:
        self._items = items
        self._profile = {"num_images": len(items), "image_shape": list(np.shape(items[0]["image"])) if items else []}
        super().__init__(source=source, name=name)  # computes the digest from self._items
        del self._items  # the run keeps only what MLflow records, not the arrays

    def _compute_digest(self) -> str:
        return content_digest(self._items)

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    @property
    def schema(self) -> None:
        return None

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


def dataset_origin(dataset_dir: str | None, synthetic: dict[str, Any] | None) -> tuple[str, DatasetSource]:
    """``(name, source)`` of a bundle's data, from the keys every bundle reads it with (``load_items``):
    the folder ``dataset_dir`` if given, else the ``synthetic`` generator and its parameters."""
    from mlflow.data.sources import LocalArtifactDatasetSource  # MLflow's "local" source: a path on this machine

    if dataset_dir:
        folder = Path(dataset_dir).resolve()
        return folder.name, LocalArtifactDatasetSource(str(folder))
    params = dict(synthetic or {})
    generator = params.pop("name", "synthetic_cells")
    return generator, SyntheticSource(generator, params)


def evaluation_context(folder_split: str, part: str) -> str:
    """MLflow's context for the data an evaluation scores: the ``val`` part of the training folder is "validation",
    its ``test`` part or any other folder (``test/``) is "test", the rest of the training folder "training"."""
    if folder_split != "train" or part == "test":
        return "test"
    return "validation" if part == "val" else "training"


def dataset_inputs(datasets: dict[str, list[dict[str, Any]]], name: str, source: DatasetSource) -> list[Any]:
    """One MLflow ``DatasetInput`` per ``context -> items`` (context: "training", "validation" or "test")."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    return [
        DatasetInput(ImageMaskDataset(items, source, name)._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)])
        for context, items in datasets.items()
    ]
