"""Run names, data selection and checkpoints shared by every bundle's configs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

import segzoo
from segzoo.engine.store import read_run_info
from segzoo.overrides import as_flag, is_none
from segzoo.registry import SegzooError

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def amp_kwargs(dtype: str) -> dict[str, torch.dtype]:
    """``torch.autocast`` arguments of the engines' ``amp`` (CUDA only): fp16 by default, bf16 on GPUs that have it."""
    if dtype not in AMP_DTYPES:
        raise SegzooError(f"--amp_dtype expects one of {', '.join(AMP_DTYPES)}, got {dtype!r}")
    return {"dtype": AMP_DTYPES[dtype]}


def set_determinism(seed: int, deterministic: bool | str = False, cudnn_benchmark: bool | str = False) -> None:
    """Seed every generator (MONAI's ``set_determinism``), then choose cuDNN's kernels by the bundle's switches.

    With a seed, MONAI also forces cuDNN's deterministic kernels and turns its benchmark pass off, on every run:
    on a GPU that costs speed the default ``deterministic: false`` promises not to spend. Here ``deterministic``
    alone decides (``torch.use_deterministic_algorithms`` and cuDNN's deterministic kernels), and ``cudnn_benchmark``
    lets cuDNN time its algorithms on the first call of each shape (faster steps after a first pass that takes
    seconds for large grouped kernels; ``torch.backends.cudnn.benchmark_limit`` bounds how many it tries).
    """
    from monai.utils import set_determinism as monai_set_determinism

    deterministic, benchmark = as_flag(deterministic, "deterministic"), as_flag(cudnn_benchmark, "cudnn_benchmark")
    if deterministic and benchmark:
        raise SegzooError("--deterministic true and --cudnn_benchmark true exclude each other: the benchmark may pick a "
                          "non-deterministic kernel; leave one of them false")
    if deterministic:  # cuBLAS is deterministic only with a fixed workspace, set before its first call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    monai_set_determinism(seed=seed, use_deterministic_algorithms=deterministic or None)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = benchmark


def train_loader_class(device: torch.device | str) -> type:
    """The training data loader for ``device``: on a GPU, MONAI's ``ThreadDataLoader`` prepares the next batch in a
    thread while the GPU trains; on a CPU the plain ``DataLoader`` runs the transforms inline, because a thread
    would compete with the convolutions for the cores (docs/performance.md measures both against a plain loop)."""
    from monai.data import DataLoader, ThreadDataLoader

    return ThreadDataLoader if torch.device(device).type == "cuda" else DataLoader


def run_name(prefix: str) -> str:
    """``<prefix>-YYYYmmdd-HHMMSS``: unique per run, sortable, readable in the MLflow UI."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_items(dataset_dir: str | None, in_channels: int, synthetic: dict[str, Any], split: str = "train", **folder: Any) -> list[dict[str, Any]]:
    """The items a bundle trains on: the folder ``dataset_dir/<split>`` if given, else the synthetic default."""
    if dataset_dir:
        return segzoo.build("dataset", "folder", dataset_dir=str(dataset_dir), split=split, in_channels=in_channels, **folder)
    return segzoo.build("dataset", synthetic.get("name", "synthetic_cells"), channels=in_channels,
                        **{k: v for k, v in synthetic.items() if k != "name"})


def _describe(arch: dict[str, Any]) -> str:
    details = ", ".join(f"{k} {arch[k]}" for k in ("preset", "in_channels", "out_channels") if k in arch)
    return f"{arch.get('name', '?')} ({details})"


def _trained_as(path: str | os.PathLike) -> str:
    """What the run that wrote ``path`` built, from the ``components.json`` beside it."""
    architecture = read_run_info(Path(path).parent).get("architecture")
    return _describe(architecture) if architecture else "another network"


def load_checkpoint(network: torch.nn.Module, path: str | os.PathLike, key: str = "model", expected: dict[str, Any] | None = None) -> torch.nn.Module:
    """Load weights saved by a bundle (``weights_only=True``); a checkpoint of another network is refused, naming both.

    ``expected`` describes the network asked for (``name``, ``preset``, ``in_channels``, ``out_channels``) for the
    message; by default the network's own record of how it was built (``segzoo_built``).
    """
    record = segzoo.built(network)
    expected = expected or (record.describe() if record is not None else None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get(key, state) if isinstance(state, dict) else state
    own = network.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    if mismatched or missing:
        detail = (f"{mismatched[0]}: checkpoint {tuple(state[mismatched[0]].shape)} vs network {tuple(own[mismatched[0]].shape)}"
                  if mismatched else f"{len(missing)} weights missing, e.g. {missing[0]}")
        raise SegzooError(
            f"checkpoint {path} was trained as {_trained_as(path)} and does not fit the network asked for, "
            f"{_describe(expected) if expected else type(network).__name__}: {detail}. Pass the --arch/--preset/--out_channels it was trained with, "
            "or another --checkpoint."
        )
    network.load_state_dict(state)
    return network


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel/DataParallel wrapper (checkpoints hold the bare weights)."""
    return network.module if hasattr(network, "module") and isinstance(network.module, torch.nn.Module) else network


def inference_items(input_dir: str | None, in_channels: int, synthetic: dict[str, Any]) -> list[dict[str, Any]]:
    """Images to segment: every image of ``input_dir``, or fresh synthetic images (another seed than training's)."""
    from segzoo.data import load_images

    if input_dir:
        return load_images(input_dir, in_channels)
    unseen = {**synthetic, "seed": synthetic.get("seed", 0) + 1, "num_images": min(8, synthetic.get("num_images", 8))}
    return [{"image": item["image"], "name": item["name"]} for item in load_items(None, in_channels, unseen)]


def shared_run_name(prefix: str) -> str:
    """:func:`run_name` agreed by every process of a distributed run (rank 0's), so all write to one folder."""
    import torch.distributed as dist

    name = [run_name(prefix)]
    if dist.is_available() and dist.is_initialized():
        dist.broadcast_object_list(name, src=0)
    return name[0]


def build_optional(kind: str, name: str | None, **params: Any) -> Any:
    """``segzoo.build(kind, name, **params)``, or None when ``name`` is none (an optional component, e.g. a train hook)."""
    return None if is_none(name) else segzoo.build(kind, name, **params)


def prepare_network(network: torch.nn.Module, device: torch.device | str, channels_last: bool = False, compile: bool = False) -> torch.nn.Module:  # noqa: A002 - torch's word
    """Move the network to ``device`` with the bundle's speed options.

    ``channels_last`` stores weights (and so activations) as NHWC, which oneDNN runs grouped
    convolutions (PyConv) much faster with on CPU; ``compile`` wraps it in ``torch.compile``.
    Checkpoints are unaffected: state dicts hold the same tensors either way.
    """
    network = network.to(device, memory_format=torch.channels_last) if as_flag(channels_last, "channels_last") else network.to(device)
    if as_flag(compile, "compile"):
        network.compile()  # in place: the state dict keeps its keys, so checkpoints load without torch.compile
    return network
