"""Benchmark of every registered architecture: size, inference latency, training memory and throughput.

Run ``nox -s bench`` (or ``.venv/bin/python benchmarks/bench.py [--quick] [--device cuda]``). It writes
``.bench/bench.json`` (every figure, with the machine) and ``.bench/bench.md`` (the tables, also printed);
on a GPU, ``bench-cuda.json`` and ``bench-cuda.md``. Timings are wall-clock
medians; figures meant for comparison (PyConvU-Net vs U-Net) are ratios of runs interleaved in one loop,
so a machine that gets busier during the run moves both sides. The load average at start and end is
recorded: on a shared machine, read the ratios, not the seconds.

A training probe (``training_overhead.py``) runs in a fresh process per architecture: the peak memory (resident
set on CPU, allocated on GPU) of one training step, then the epoch time of a plain PyTorch loop and of the bundle's trainer
doing the same
work on the bundle's default data (on a GPU, with the GPU's utilisation meanwhile).

On a GPU (``--device cuda``) the bench adds bf16 inference, each network's first call, a training step at batch 5
on 512x512 with its peak memory, and PyConvU-Net / U-Net per PyConv implementation against issue 16's goals
(``gpu_facts.py``: versions, utilisation sampling, CUDA graphs). ``benchmarks/gpu_check.sh`` runs it with
``pytest -m gpu`` on a GPU machine (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gpu_facts
import torch
from torch import nn

import segzoo
from segzoo.complexity import measure
from segzoo_pyconvunet.pyconv import IMPLEMENTATIONS, set_implementation

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".bench"
SIZE = 512  # inference images: 3 x 512 x 512, as Table 3 counts
BIG_BATCH = 8
TRAIN = {"size": 128, "batch_size": 5}  # the bundle's default patch and batch (training steps, memory checks)
STEP = {"size": 512, "batch_size": 5}  # the GPU goal's training step: whole 512x512 images, as the paper trained
GOALS = {"cpu": 0.5, "cuda": 0.7}  # PyConvU-Net inference time / U-Net inference time
# PyConvU-Net (paper preset, each PyConv implementation) / U-Net (paper preset) on a GPU: issue 16's goals
RATIO_GOALS = {"batch1": 1.0, "batch8": 0.7, "batch8_bf16": 0.7, "train_step": 0.7}
DEVICE = torch.device("cpu")  # set once by main() from --device
OVERHEAD_GOAL = 1.05  # bundle epoch time / plain-loop epoch time


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read MemAvailable from /proc/meminfo")


def sync() -> None:
    """Wait for the GPU's queued work, so wall-clock time covers it (a no-op on CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def machine() -> dict[str, Any]:
    gpu = gpu_facts.versions(DEVICE) if DEVICE.type == "cuda" else {}
    return {
        "device": DEVICE.type,
        **gpu,
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default (active)"),
        "simd": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "monai": __import__("monai").__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_available_gib": round(available_memory_bytes() / 2**30, 1),
        "load_average_start": os.getloadavg(),
    }


def matmul_gflops(n: int = 4096, repeats: int = 5) -> float:
    """fp32 GFLOP/s of a large square torch.mm, best of ``repeats``: the machine's attainable dense rate (1 MAC = 2 FLOP)."""
    a, b = torch.randn(n, n, device=DEVICE), torch.randn(n, n, device=DEVICE)
    a @ b
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times) / 1e9


# ---------------------------------------------------------------- models


def configurations(quick: bool) -> list[tuple[str, str, str | None]]:
    """``(label, architecture, preset)``: every architecture at its paper preset (or its defaults),
    and pyconvunet at every preset. ``--quick``: unet and pyconvunet only."""
    rows = []
    for spec in segzoo.list_components("architecture"):
        if quick and spec.name not in ("unet", "pyconvunet"):
            continue
        presets = sorted(spec.presets) if spec.name == "pyconvunet" else (["paper"] if "paper" in spec.presets else [None])
        rows += [(f"{spec.name}[{p}]" if p else spec.name, spec.name, p) for p in presets]
    return rows


def build(name: str, preset: str | None, in_channels: int = 3, **params: Any) -> nn.Module:
    """The architecture with seeded weights and one output channel."""
    torch.manual_seed(0)
    return segzoo.create_model(name, preset, in_channels=in_channels, out_channels=1, **params).to(DEVICE)


def activation_elements(model: nn.Module, in_channels: int, size: int) -> int:
    """Elements of every leaf module's output for one image at ``size``, counted at a small size and scaled."""
    small = 64
    total = 0

    def hook(module: nn.Module, args: tuple, out: Any) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_channels, small, small, device=DEVICE))
    finally:
        for h in handles:
            h.remove()
    return total * (size // small) ** 2


def require_memory(what: str, needed: int) -> None:
    """Refuse to start a run that would not fit in available memory: better a clear error than swapping or the OOM killer."""
    available = torch.cuda.mem_get_info(DEVICE)[0] if DEVICE.type == "cuda" else available_memory_bytes()
    if needed > 0.8 * available:
        raise SystemExit(
            f"bench: {what} needs about {needed / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB "
            f"of {DEVICE.type} memory is available; "
            "free memory or run with --quick"
        )


# ---------------------------------------------------------------- timing


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_seconds(
    calls: dict[str, Callable[[], Any]], repeats: int, warmup: bool = True, first: dict[str, float] | None = None
) -> dict[str, float]:
    """Median seconds of each call, timed round-robin so load changes hit all alike.

    ``warmup=False`` saves a run where a slow first call is already excluded by the median (3 repeats or more)
    and the machine is quiet; the goal ratios keep the warm-up, since one more slow call would move their median.
    ``first`` receives the seconds of each warm-up call (on a GPU with ``cudnn.benchmark``, cuDNN's timing pass).
    """
    if warmup:
        for label, call in calls.items():
            seconds = median_seconds(call, 1)
            if first is not None:
                first[label] = seconds
    times: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(repeats):
        for label, call in calls.items():
            sync()
            start = time.perf_counter()
            call()
            sync()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


@torch.no_grad()
def interleaved_latency(
    models: dict[str, nn.Module],
    inputs: dict[str, torch.Tensor],
    repeats: int,
    warmup: bool = True,
    dtype: torch.dtype | None = None,
    first: dict[str, float] | None = None,
) -> dict[str, float]:
    """Median seconds per forward of each model (under autocast to ``dtype`` when given), interleaved."""
    calls = {label: (lambda m=model, x=inputs[label]: autocast_forward(m, x, dtype)) for label, model in models.items()}
    return interleaved_seconds(calls, repeats, warmup, first)


def autocast_forward(model: Callable[[torch.Tensor], Any], x: torch.Tensor, dtype: torch.dtype | None) -> Any:
    """``model(x)``, under autocast to ``dtype`` on the bench's device when one is given (the bundles' ``amp``)."""
    if dtype is None:
        return model(x)
    with torch.autocast(DEVICE.type, dtype=dtype):
        return model(x)


def image(batch: int, channels_last: bool = False) -> torch.Tensor:
    """The same seeded 3x512x512 batch for every model."""
    x = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


# ---------------------------------------------------------------- training probe (subprocess)


def run_probe(label: str, name: str, preset: str | None) -> dict[str, Any]:
    """The training figures of one architecture (``training_overhead.py``) from a fresh process, after checking
    that it fits in memory."""
    model = build(name, preset, in_channels=1)
    output = model.train()(torch.zeros(2, 1, 64, 64, device=DEVICE))
    if not isinstance(output, torch.Tensor):
        return {
            "error": f"trains on a {type(output).__name__} of outputs, which this bundle's loss does not take (it has its own)"
        }
    activations = activation_elements(model, 1, TRAIN["size"]) * TRAIN["batch_size"]
    # saved activations + their gradients + weights, gradients, two Adam moments and a checkpoint snapshot, in fp32
    require_memory(f"training {label}", 4 * (3 * activations + 5 * sum(p.numel() for p in model.parameters())))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("training_overhead.py")), json.dumps([name, preset, DEVICE.type])],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode:
        killed = " (killed: out of memory?)" if proc.returncode in (-9, 137) else ""
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        log(f"training probe of {label} failed with code {proc.returncode}{killed}: {tail[0]}")
        return {"error": f"exit {proc.returncode}{killed}: {tail[0][:200]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- options


def output_mean(output: Any) -> torch.Tensor:
    """A scalar to backpropagate from any network's output: the sum of the means of its tensors (MUNet returns a dict
    of masks, deep-supervision outputs and class logits), so every head gets its backward pass."""
    if isinstance(output, torch.Tensor):
        return output.float().mean()
    parts = output.values() if isinstance(output, dict) else output
    return sum((output_mean(part) for part in parts), torch.zeros((), device=DEVICE))


def train_step(model: nn.Module, shape: dict[str, int] = TRAIN) -> Callable[[], None]:
    """One training step (forward, backward, Adam) of ``model`` on a seeded batch of ``shape`` (batch size, image size)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(shape["batch_size"], 3, shape["size"], shape["size"], generator=torch.Generator().manual_seed(0)).to(DEVICE)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        output_mean(model(x)).backward()
        optimizer.step()

    return step


def train_step_seconds(model: nn.Module, repeats: int) -> float:
    """Median seconds of one training step on the bundle's default batch (``TRAIN``), after a warm-up step."""
    step = train_step(model)
    step()
    return median_seconds(step, repeats)


def peak_step_memory_mib(step: Callable[[], None]) -> float | None:
    """Peak GPU memory allocated while ``step`` ran (MiB); None on CPU, where the training probe measures the resident set."""
    if DEVICE.type != "cuda":
        return None
    torch.cuda.synchronize(DEVICE)
    torch.cuda.reset_peak_memory_stats(DEVICE)
    step()
    torch.cuda.synchronize(DEVICE)
    return torch.cuda.max_memory_allocated(DEVICE) / 2**20


def implementation_ratios(repeats: int) -> dict[str, dict[str, float]]:
    """PyConvU-Net (paper preset) with each PyConv implementation over U-Net (paper preset): inference at batch 1 and
    ``BIG_BATCH`` in fp32, at ``BIG_BATCH`` under bf16 autocast, and a training step on ``STEP``; all interleaved.

    On a GPU, two more rows: both networks' forward passes replayed as CUDA graphs (``auto`` implementation).
    """
    models = {"unet": build("unet", "paper").eval()}
    for impl in IMPLEMENTATIONS:
        models[impl] = build("pyconvunet", "paper").eval()
        set_implementation(models[impl], impl)
    times = {
        "batch1": interleaved_latency(models, {k: image(1) for k in models}, repeats),
        "batch8": interleaved_latency(models, {k: image(BIG_BATCH) for k in models}, repeats),
        "batch8_bf16": interleaved_latency(models, {k: image(BIG_BATCH) for k in models}, repeats, dtype=torch.bfloat16),
    }
    steps = {k: train_step(model, STEP) for k, model in models.items()}
    times["train_step"] = interleaved_seconds(steps, repeats)
    ratios = {impl: {key: t[impl] / t["unet"] for key, t in times.items()} for impl in IMPLEMENTATIONS}
    if DEVICE.type == "cuda":
        for batch, key in ((1, "batch1"), (BIG_BATCH, "batch8")):
            graphs = {k: gpu_facts.cuda_graph(models[k].eval(), image(batch)) for k in ("unet", "auto")}
            graphed = interleaved_seconds(graphs, repeats)
            ratios.setdefault("auto + CUDA graph (inference only)", {})[key] = graphed["auto"] / graphed["unet"]
    return {"unet_seconds": {key: t["unet"] for key, t in times.items()}, **ratios}


def option_figures(rows: list[tuple[str, str, str | None]], repeats: int, compile_models: bool) -> dict[str, dict[str, Any]]:
    """What each option changes, as a ratio to the default (inference at 512x512 batch 1, or a training step).

    The variants of one architecture are separate models with the same weights, timed in one interleaved loop.
    """
    figures: dict[str, dict[str, Any]] = {}
    for label, name, preset in (r for r in rows if r[1] in ("unet", "pyconvunet")):
        log(f"options: {label}")
        variants = {
            "default": build(name, preset).eval(),
            "channels_last": build(name, preset).eval().to(memory_format=torch.channels_last),
        }
        if name == "pyconvunet":
            for impl in ("grouped", "channels_last", "merged"):
                variants[f"pyconv_{impl}"] = build(name, preset).eval()
                set_implementation(variants[f"pyconv_{impl}"], impl)
        inputs = {key: image(1, channels_last=key == "channels_last") for key in variants}
        latency = interleaved_latency(variants, inputs, repeats, warmup=False)
        row: dict[str, Any] = {
            "default_s": latency["default"],
            **{k: v / latency["default"] for k, v in latency.items() if k != "default"},
        }
        row["compile"] = compile_figures(variants["default"], repeats) if compile_models else {"skipped": "--quick"}
        train_model = build(name, preset)
        row["train_step_s"] = train_step_seconds(train_model, repeats)
        if name == "pyconvunet":
            reference = build(name, preset)
            set_implementation(reference, "grouped")
            row["pyconv_grouped_train_step"] = train_step_seconds(reference, repeats) / row["train_step_s"]
        torch.use_deterministic_algorithms(True)
        try:
            row["deterministic_train_step"] = train_step_seconds(train_model, repeats) / row["train_step_s"]
        except RuntimeError as err:  # an operation without a deterministic kernel on this device is a finding
            row["deterministic_train_step"] = f"fails: {str(err).splitlines()[0][:120]}"
        finally:
            torch.use_deterministic_algorithms(False)
        row.update(autocast_figures(variants["default"], latency["default"], repeats))
        figures[label] = row
    return figures


def autocast_figures(model: nn.Module, default_s: float, repeats: int) -> dict[str, Any]:
    """Inference under bf16 and fp16 autocast relative to fp32 (the bundles' ``amp``); CUDA only."""
    if DEVICE.type != "cuda":
        return {"autocast_bf16": "n/a on CPU (the bundles' amp is for GPUs)", "autocast_fp16": "n/a on CPU"}
    x = image(1)
    figures: dict[str, Any] = {}
    for key, dtype in (("autocast_bf16", torch.bfloat16), ("autocast_fp16", torch.float16)):

        def forward(dtype: torch.dtype = dtype) -> None:
            with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
                model(x)

        forward()  # warm-up: kernels for the new dtype
        figures[key] = median_seconds(forward, repeats) / default_s
    return figures


def compile_figures(model: nn.Module, repeats: int) -> dict[str, Any]:
    """torch.compile (inductor): seconds of the first, compiling call, and steady latency relative to eager, interleaved.

    The compile cache is a fresh directory, so the seconds are those of a first compile, not of a cache hit.
    """
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="segzoo-bench-inductor-")
    try:
        compiled = torch.compile(model)
        x = image(1)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(x)
        sync()
        compile_s = time.perf_counter() - start
        latency = interleaved_latency({"eager": model, "compiled": compiled}, {"eager": x, "compiled": x}, repeats, warmup=False)
        return {"compile_s": compile_s, "ratio": latency["compiled"] / latency["eager"]}
    except Exception as err:  # noqa: BLE001 - a compiler that is missing or fails is a finding, not a crash of the bench
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}


# ---------------------------------------------------------------- report


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]


def option_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):  # torch.compile: its ratio and compile time, or why it did not run
        return f"{value['ratio']:.2f}x (compiling {value['compile_s']:.0f} s)" if "ratio" in value else next(iter(value.values()))
    return f"{value:.2f}x" if isinstance(value, float) else str(value)


def gpu_cell(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key.endswith("_mib"):
        return f"{value:.0f}"
    return f"{value:.1f}" if key == "first_call_s" else f"{1000 * value:.2f}"


def implementation_section(ratios: dict[str, dict[str, float]] | None) -> list[str]:
    """The per-implementation ratio table, each against issue 16's goals (met only if every figure of the row is)."""
    title = "## PyConvU-Net (paper) / U-Net (paper) per PyConv implementation"
    if ratios is None:
        return ["", title, "", "GPU only (`--device cuda`): at 512x512 these take too long on a CPU; see the options below."]
    unet = ratios["unet_seconds"]
    keys = list(RATIO_GOALS)
    lines = [
        "",
        title,
        "",
        f"Time ratios, interleaved in one process; goals: batch 1 <= {RATIO_GOALS['batch1']}, "
        f"batch {BIG_BATCH} fp32 and bf16 and "
        f"a training step (batch {STEP['batch_size']}, {STEP['size']}², fp32, Adam) <= {RATIO_GOALS['train_step']}. U-Net: "
        + ", ".join(f"{key} {1000 * unet[key]:.2f} ms" for key in keys)
        + ".",
        "",
    ]
    rows = []
    for impl, row in ratios.items():
        if impl == "unet_seconds":
            continue
        met = all(row[key] <= RATIO_GOALS[key] for key in row)
        rows.append([impl, *(f"{row[key]:.2f}x" if key in row else "-" for key in keys), "met" if met else "not met"])
    return lines + table(
        ["implementation", "batch 1", f"batch {BIG_BATCH}", f"batch {BIG_BATCH} bf16", "train step", "goals"], rows
    )


def markdown(result: dict[str, Any]) -> str:
    m, t = result["machine"], TRAIN
    mm_gmacs = result["matmul_gflops"] / 2
    lines = [
        f"# segzoo {m['device'].upper()} benchmark ({result['date']})",
        "",
        (
            f"{m['gpu']} ({m['gpu_memory_gib']} GiB; driver {m['driver']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}; convolutions "
            f"{'may use TF32' if m['conv_tf32'] else 'in fp32'}, the matmul rate is strict fp32; cudnn.benchmark "
            f"{'on' if m['cudnn_benchmark'] else 'off'}); "
            if m["device"] == "cuda"
            else ""
        )
        + f"{m['cpu']}, {m['cores']} cores, {m['threads']} torch threads (OMP_WAIT_POLICY {m['omp_wait_policy']}), {m['simd']}; "
        f"torch {m['torch']}, MONAI {m['monai']}; load average {m['load_average_start'][0]:.1f} at start, "
        f"{m['load_average_end'][0]:.1f} at end. fp32 torch.mm: **{result['matmul_gflops']:.0f} GFLOP/s** "
        f"= {mm_gmacs:.0f} GMAC/s. "
        f"Total time {result['seconds'] / 60:.1f} min{' (--quick)' if result['quick'] else ''}.",
        "",
        f"## Inference, 3x{SIZE}x{SIZE} -> 1 channel (median of {result['repeats']}, interleaved)",
        "",
    ]
    rows = []
    gpu_columns = {  # on a GPU: milliseconds, bf16 autocast, the first call and a training step on STEP
        "batch1_bf16_s": "batch 1 bf16 (ms)", "batch8_bf16_s": "batch 8 bf16 (ms)", "first_call_s": "first call (s)",
        "train_step_s": f"train step b{STEP['batch_size']} {STEP['size']}² (ms)", "train_step_peak_mib": "train step peak (MiB)",
    }
    on_gpu = m["device"] == "cuda"
    unit, scale = ("ms", 1000) if on_gpu else ("s", 1)
    for label, row in result["architectures"].items():
        rate = row["gmac"] / row["batch1_s"]
        big = [f"{scale * row['batch8_s']:.2f}", f"{BIG_BATCH / row['batch8_s']:.2f}"] if "batch8_s" in row else ["-", "-"]
        sizes = [f"{row['params_m']:.2f}", f"{row['gmac']:.2f}", f"{scale * row['batch1_s']:.2f}"]
        extra = [gpu_cell(key, row.get(key)) for key in gpu_columns] if on_gpu else []
        rows.append([label, *sizes, f"{rate:.1f}", f"{100 * rate / mm_gmacs:.0f}", *big, *extra])
    header = [
        "architecture",
        "params (M)",
        "GMac",
        f"batch 1 ({unit})",
        "GMac/s",
        "% of mm",
        f"batch 8 ({unit})",
        "batch 8 img/s",
    ]
    lines += table([*header, *(gpu_columns.values() if on_gpu else [])], rows)

    goal = GOALS[m["device"]]
    lines += ["", f"## PyConvU-Net / U-Net inference time (goal <= {goal})", ""]
    rows = [
        [label, f"{r['batch1']:.2f}", f"{r['batch8']:.2f}", "yes" if max(r.values()) <= goal else "no"]
        for label, r in result["goal"].items()
    ]
    lines += table(["configuration", "batch 1", "batch 8", "goal met"], rows)
    lines += implementation_section(result.get("implementations"))

    probes = [row for row in result["training"].values() if "error" not in row]
    shape = probes[0] if probes else {"images_per_epoch": "?", "batch_size": "?", "steps_per_epoch": "?", "timed_epochs": "?"}
    memory_note = (
        "GPU memory allocated during the first training step"
        if m["device"] == "cuda"
        else "resident set during the first training step of a fresh process"
    )
    lines += [
        "",
        f"## Training through the bundle vs a plain PyTorch loop (goal: overhead <= {OVERHEAD_GOAL})",
        "",
        (
            f"The bundle's default data ({shape['images_per_epoch']} training images of {t['size']}x{t['size']}, batch "
            f"{shape['batch_size']}, {shape['steps_per_epoch']} steps and a validation per epoch); epochs timed: "
            f"{shape['timed_epochs']} per side after a warm-up, plain / bundle / plain. Both sides train, validate with "
            "the same sliding windows and metrics, and save network and optimizer every epoch "
            f"(benchmarks/training_overhead.py). Peak memory: {memory_note} (in brackets, the increase). "
            "Data wait: the time the bundle's steps waited for a batch. Fixed: the bundle's set-up and its end of run."
        ),
        "",
    ]
    rows = []
    if not result["training"]:
        rows.append(["(training probes not run)", *[""] * 7])
    for label, row in result["training"].items():
        if "error" in row:
            rows.append([label, row["error"], *[""] * 7])
            continue
        memory = f"{row['step_peak_memory_mib']:.0f} (+{row['step_memory_increase_mib']:.0f})"
        step_ms = 1000 * row["bundle_epoch_s"] / row["steps_per_epoch"]
        wait = f"{row['data_wait_ms_per_step']:.1f} ({100 * row['data_wait_ms_per_step'] / step_ms:.1f}%)"
        overhead = f"{row['bundle_overhead']:.3f}x"
        busy = row.get("gpu_utilisation_percent")
        utilisation = f"{busy:.0f}" if busy is not None else row.get("gpu_utilisation_source", "-")
        cells = [
            memory,
            f"{row['plain_epoch_s']:.2f}",
            f"{row['bundle_epoch_s']:.2f}",
            overhead,
            wait,
            f"{row['bundle_fixed_s']:.1f}",
        ]
        rows.append([label, *cells, utilisation])
    memory_title = "step peak GPU memory (MiB)" if m["device"] == "cuda" else "step peak RSS (MiB)"
    header = ["architecture", memory_title, "plain epoch (s)", "bundle epoch (s)", "bundle overhead"]
    lines += table([*header, "data wait per step, ms (% of step)", "bundle fixed (s)", "GPU utilisation (%)"], rows)
    lines += [
        "",
        "GPU utilisation: mean over the bundle's timed epochs, sampled every 0.2 s (NVML's percentage of time a kernel ran).",
    ]

    lines += [
        "",
        f"## {m['device'].upper()} options (time relative to the default; inference 3x{SIZE}x{SIZE} batch 1 unless stated)",
        "",
    ]
    opts = list(result["options"].values())
    if not opts:
        return "\n".join([*lines, "(not run)"]) + "\n"
    rows = [
        ["default inference (s)", *(f"{o['default_s']:.2f}" for o in opts)],
        ["default training step (s)", *(f"{o['train_step_s']:.2f}" for o in opts)],
    ]
    for key, title in [
        ("channels_last", "channels_last model and input"),
        ("pyconv_grouped", "PyConv `grouped` (reference)"),
        ("pyconv_channels_last", "PyConv `channels_last`"),
        ("pyconv_merged", "PyConv `merged` (= `auto` on CPU)"),
        ("pyconv_grouped_train_step", "PyConv `grouped` (training step)"),
        ("compile", "torch.compile (inductor)"),
        ("deterministic_train_step", "deterministic algorithms (training step)"),
        ("autocast_bf16", "bf16 autocast (`--amp true --amp_dtype bfloat16`)"),
        ("autocast_fp16", "fp16 autocast (`--amp true`)"),
    ]:
        rows.append([title, *(option_cell(o.get(key)) for o in opts)])
    lines += table(["option", *result["options"]], rows)
    return "\n".join(lines) + "\n"


def inference_figures(rows: list[tuple[str, str, str | None]], repeats: int) -> dict[str, dict[str, Any]]:
    """Size, inference latency (batch 1 for all, ``BIG_BATCH`` for U-Net and PyConvU-Net on CPU and for all on a GPU)
    and, on a GPU, bf16 autocast latency, the first call's seconds, and a training step on ``STEP`` with its peak memory."""
    models = {label: build(name, preset).eval() for label, name, preset in rows}
    on_gpu = DEVICE.type == "cuda"
    big = [label for label, name, _ in rows if on_gpu or name in ("unet", "pyconvunet")]
    for label, model in models.items():
        require_memory(f"inference of {label}", 4 * activation_elements(model, 3, SIZE) * (BIG_BATCH if label in big else 1))
    sizes = {label: measure(model, 3, 64) for label, model in models.items()}  # per-pixel counts: 512^2 = 64 * 64^2
    first: dict[str, float] = {}
    times = {"batch1_s": interleaved_latency(models, {label: image(1) for label in models}, repeats, first=first)}
    log(f"inference at batch {BIG_BATCH}: {', '.join(big)}")
    times["batch8_s"] = interleaved_latency({k: models[k] for k in big}, {k: image(BIG_BATCH) for k in big}, repeats)
    if on_gpu:
        times["first_call_s"] = first
        for key, batch in (("batch1_bf16_s", 1), ("batch8_bf16_s", BIG_BATCH)):
            times[key] = interleaved_latency(models, {k: image(batch) for k in models}, repeats, dtype=torch.bfloat16)
        steps = {label: train_step(model, STEP) for label, model in models.items()}
        for step in steps.values():
            step()
        times["train_step_s"] = interleaved_seconds(steps, repeats, warmup=False)
        times["train_step_peak_mib"] = {label: peak_step_memory_mib(step) for label, step in steps.items()}
    return {
        label: {
            "params_m": sizes[label].params_m,
            "gmac": sizes[label].gmac * (SIZE // 64) ** 2,
            **{key: figures[label] for key, figures in times.items() if label in figures},
        }
        for label in models
    }


def collect(
    quick: bool, repeats: int, training_probes: bool = True, ratios: bool | None = None, options: bool = True,
    save: Callable[[dict[str, Any]], None] = lambda result: None,
) -> dict[str, Any]:
    """Every figure of one bench run on ``DEVICE``. ``ratios`` (default: on a GPU) adds the per-implementation
    ratios, too slow at 512x512 on a CPU; tests shrink ``SIZE`` and ``STEP`` and leave out probes and options.
    ``save`` receives the figures so far after each section, so a run stopped at a time limit keeps them."""
    started = time.perf_counter()
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick, "repeats": repeats, "machine": machine()}
    log("matmul rate")
    result["matmul_gflops"] = matmul_gflops()
    rows = configurations(quick)
    log(f"inference at batch 1: {', '.join(r[0] for r in rows)}")
    result["architectures"] = inference_figures(rows, repeats)
    arch = result["architectures"]
    unet = next(label for label, name, _ in rows if name == "unet")
    result["goal"] = {
        label: {
            "batch1": arch[label]["batch1_s"] / arch[unet]["batch1_s"],
            "batch8": arch[label]["batch8_s"] / arch[unet]["batch8_s"],
        }
        for label, name, _ in rows
        if name == "pyconvunet"
    }
    save(result)
    if ratios if ratios is not None else DEVICE.type == "cuda":
        log("PyConvU-Net / U-Net per PyConv implementation")
        result["implementations"] = implementation_ratios(repeats)
        save(result)
    result["training"] = {}
    for label, name, preset in rows if training_probes else []:
        log(f"training probe: {label}")
        result["training"][label] = run_probe(label, name, preset)
        save(result)
    result["options"] = option_figures(rows, repeats, compile_models=not quick) if options else {}
    result["machine"]["load_average_end"] = os.getloadavg()
    result["seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="unet and pyconvunet only, 2 repeats, no torch.compile (about 3 minutes on CPU)"
    )
    parser.add_argument("--device", choices=sorted(GOALS), default="cpu", help="where the models run (default: cpu)")
    parser.add_argument(
        "--cudnn-benchmark", action="store_true",
        help="on a GPU, let cuDNN time its kernels on each new shape (the bundles' --cudnn_benchmark true; off by default, "
        "as in the bundles: its first pass over PyConv's grouped kernels can take tens of seconds per network)",
    )
    args = parser.parse_args()
    global DEVICE
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "bench: --device cuda but torch sees no GPU (torch.cuda.is_available() is False); install a CUDA build of "
            "torch on a GPU machine, or leave out --device to bench the CPU"
        )
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if os.getloadavg()[0] > 0.5 and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        log(
            f"the machine is busy (load {os.getloadavg()[0]:.1f}): with OpenMP's default spin-waiting, a busy core slows "
            "many-kernel networks far more than others; OMP_WAIT_POLICY=PASSIVE keeps the ratios meaningful (docs/performance.md)"
        )
    repeats = (2 if args.quick else 3) * (5 if DEVICE.type == "cuda" else 1)  # GPU calls are milliseconds
    OUT.mkdir(exist_ok=True)
    stem = "bench" if DEVICE.type == "cpu" else f"bench-{DEVICE.type}"

    def save(result: dict[str, Any]) -> None:
        (OUT / f"{stem}.json").write_text(json.dumps(result, indent=2))

    result = collect(args.quick, repeats, save=save)
    save(result)
    report = markdown(result)
    (OUT / f"{stem}.md").write_text(report)
    print(report)
    log(f"wrote {OUT / stem}.md and {OUT / stem}.json in {result['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
