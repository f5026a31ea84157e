"""GPU facts for the bench: versions, utilisation while training, and CUDA-graph replay of a forward pass."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def nvidia_smi(field: str, index: int = 0) -> str | None:
    """One ``nvidia-smi --query-gpu`` field of GPU ``index``, or None where nvidia-smi is missing or fails."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        proc = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits", "-i", str(index)],
                              capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def versions(device: torch.device) -> dict[str, Any]:
    """GPU name and memory, driver, CUDA runtime and cuDNN versions (the driver from nvidia-smi, else "unknown")."""
    index = device.index or 0
    props = torch.cuda.get_device_properties(index)
    return {
        "gpu": props.name,
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "driver": nvidia_smi("driver_version", index) or "unknown (no nvidia-smi)",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "conv_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def utilisation_reader(device: torch.device) -> tuple[Callable[[], float] | None, str]:
    """A function returning the GPU's utilisation now (% of the last sample period a kernel ran, as NVML defines it),
    and where it comes from: ``torch.cuda.utilization`` (needs pynvml), else nvidia-smi, else none with the reason."""
    if device.type != "cuda":
        return None, f"n/a on {device.type}"
    try:
        torch.cuda.utilization(device)
        return (lambda: float(torch.cuda.utilization(device))), "torch.cuda.utilization (NVML)"
    except Exception:  # noqa: BLE001 - pynvml missing or NVML failing: try the next source
        pass
    index = device.index or 0
    if nvidia_smi("utilization.gpu", index) is not None:
        return (lambda: float(nvidia_smi("utilization.gpu", index) or "nan")), "nvidia-smi utilization.gpu"
    return None, "unavailable: no pynvml for torch.cuda.utilization and no working nvidia-smi"


class UtilisationSampler:
    """Samples GPU utilisation every ``period`` seconds in a thread between ``start()`` and ``stop()``;
    ``stop()`` returns the mean (or None where no source works) and the source."""

    def __init__(self, device: torch.device, period: float = 0.2) -> None:
        self.read, self.source = utilisation_reader(device)
        self.period = period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(self.read())

    def start(self) -> None:
        if self.read is not None:
            self._thread = threading.Thread(target=self._loop, name="segzoo-gpu-utilisation", daemon=True)
            self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        samples = [s for s in self.samples if s == s]  # NaN: a failed nvidia-smi read
        mean = statistics.mean(samples) if samples else None
        return {"gpu_utilisation_percent": mean, "gpu_utilisation_source": self.source, "gpu_utilisation_samples": len(samples)}


def cuda_graph(model: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The forward pass of ``model`` on the static input ``x`` captured as a CUDA graph: replaying it launches every
    kernel at once, which removes the per-kernel launch gaps that dominate small batches."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as capture requires (cuDNN's choices, PyConv's weight cache)
            model(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        out = model(x)

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay
