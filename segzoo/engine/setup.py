"""Training setup shared by every bundle's configs: AMP, determinism, the data loader, run names, optional components
and the network's speed options."""

from __future__ import annotations

import os
import time
from typing import Any

import torch

import segzoo
from segzoo.errors import SegzooError
from segzoo.overrides import as_flag, is_none

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


def prepare_network(
    network: torch.nn.Module, device: torch.device | str, channels_last: bool = False, compile: bool = False
) -> torch.nn.Module:  # noqa: A002 - torch's word
    """Move the network to ``device`` with the bundle's speed options.

    ``channels_last`` stores weights (and so activations) as NHWC, which oneDNN runs grouped
    convolutions (PyConv) much faster with on CPU; ``compile`` wraps it in ``torch.compile``.
    Checkpoints are unaffected: state dicts hold the same tensors either way.
    """
    network = (
        network.to(device, memory_format=torch.channels_last) if as_flag(channels_last, "channels_last") else network.to(device)
    )
    if as_flag(compile, "compile"):
        network.compile()  # in place: the state dict keeps its keys, so checkpoints load without torch.compile
    return network
