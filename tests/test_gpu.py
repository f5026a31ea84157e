"""Every GPU path on a real GPU: bundles training with amp, channels_last and compile, evaluation, sliding-window
inference, PyConv's implementations, the bench's cuda code and DDP on NCCL. Skipped without CUDA (conftest);
``pytest -m gpu`` on a GPU machine, or ``benchmarks/gpu_check.sh`` there, runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segzoo
from segzoo.complexity import measure
from segzoo.engine import predict
from segzoo_pyconvunet.pyconv import IMPLEMENTATIONS, PyConv
from tests.conftest import BUNDLES, ROOT, TINY, TINY_DATA, overlay, run_bundle
from tests.test_bundle_munet import TINY as MUNET_TINY

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")
TINY_RUN = {"pyconvunet": TINY, "frem": TINY, "munet": MUNET_TINY}  # each bundle's tiny synthetic data


def train(bundle: str, cwd: Path, *options: str) -> Path:
    """Two epochs of ``bundle`` on tiny synthetic data on the default device (the GPU); the run's folder."""
    proc = run_bundle(
        [
            "run",
            "training",
            "--config_file",
            str(BUNDLES / bundle / "configs" / "train.json"),
            "--epochs",
            "2",
            *TINY_RUN[bundle],
            *options,
        ],
        cwd=cwd,
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db"},
    )
    assert "Epoch [2/2]" in proc.stdout + proc.stderr
    (run_dir,) = (cwd / "runs" / bundle).iterdir()
    assert (run_dir / "last.pt").is_file() and (run_dir / "model.pt").is_file()
    return run_dir


@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("bundle", ["pyconvunet", "frem", "munet"])
def test_each_bundle_trains_on_cuda_with_amp(bundle: str, amp_dtype: str, tmp_path: Path) -> None:
    train(bundle, tmp_path, "--amp", "true", "--amp_dtype", amp_dtype, "--cudnn_benchmark", "true")


@pytest.mark.parametrize("bundle", ["pyconvunet", "frem"])
def test_bundles_train_on_cuda_channels_last_and_compiled(bundle: str, tmp_path: Path) -> None:
    train(bundle, tmp_path, "--channels_last", "true", "--compile", "true")


def test_evaluation_and_sliding_window_inference_on_cuda(tmp_path: Path) -> None:
    train("pyconvunet", tmp_path, "--deterministic", "true")
    configs, env = BUNDLES / "pyconvunet" / "configs", {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    run_bundle(["run", "evaluating", "--config_file", overlay(configs, "evaluate.json"), *TINY_DATA], cwd=tmp_path, env=env)
    (run_dir,) = (tmp_path / "runs" / "pyconvunet").iterdir()
    assert (run_dir / "eval" / "summary.csv").is_file()
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 150), dtype=np.uint8)).save(images / "wide.png")
    run_bundle(["run", "inference", "--config_file", overlay(configs, "inference.json"), "--input_dir", str(images),
                "--predictions_dir", str(tmp_path / "masks")], cwd=tmp_path)
    assert np.asarray(Image.open(tmp_path / "masks" / "wide.png")).shape == (80, 150)


@pytest.mark.parametrize("impl", [impl for impl in IMPLEMENTATIONS if impl != "grouped"])
def test_pyconv_implementations_equal_the_reference_on_cuda(impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Strict fp32 (no TF32) forward and gradients, then bf16 autocast within bf16's rounding."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    reference = PyConv(32, 32, groups=[1, 8, 8, 8], bias=True, implementation="grouped").to(CUDA)
    fast = PyConv(32, 32, groups=[1, 8, 8, 8], bias=True, implementation=impl).to(CUDA)
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(2, 32, 24, 24, device=CUDA, requires_grad=True)
    outputs = []
    for block in (fast, reference):
        y = block(x)
        outputs.append([y, *torch.autograd.grad(y.square().sum(), [x, *block.parameters()])])
    for got, want in zip(*outputs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        torch.testing.assert_close(fast(x).float(), reference(x).float(), rtol=0.05, atol=0.05)


def test_complexity_and_prediction_run_where_the_model_is() -> None:
    """The bench's first crash: a CPU probe fed to a GPU model."""
    model = segzoo.create_model("pyconvunet", "paper").to(CUDA)
    assert measure(model, 3, 64) == measure(model.cpu(), 3, 64)
    model.to(CUDA)
    prob = predict(model, np.zeros((3, 64, 64), np.float32), lambda x, net: net(x))
    assert prob.device.type == "cpu" and prob.shape == (1, 64, 64)


def test_the_bench_cuda_path_produces_every_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every section of ``bench.py --device cuda`` at small sizes (the full run is benchmarks/gpu_check.sh's)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench

    monkeypatch.setattr(bench, "DEVICE", CUDA)
    monkeypatch.setattr(bench, "SIZE", 64)
    monkeypatch.setattr(bench, "STEP", {"size": 64, "batch_size": 2})
    result = bench.collect(quick=True, repeats=2, training_probes=False, ratios=True)
    report = bench.markdown(result)
    for text in (
        "first call (s)",
        "batch 8 bf16 (ms)",
        "train step peak (MiB)",
        "| dense |",
        "auto + CUDA graph",
        "bf16 autocast",
    ):
        assert text in report, text
    assert result["machine"]["gpu"] == torch.cuda.get_device_name(CUDA) and result["machine"]["driver"]
    assert all(row["train_step_peak_mib"] > 0 for row in result["architectures"].values())


def test_training_overhead_probe_on_cuda() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training_overhead.py"), '["unet", "paper", "cuda"]'],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert '"bundle_overhead"' in proc.stdout and '"gpu_utilisation' in proc.stdout


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP on NCCL needs two GPUs; this machine has fewer")
def test_ddp_on_nccl_through_multi_gpu_train(tmp_path: Path) -> None:
    configs = BUNDLES / "pyconvunet" / "configs"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29534",
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']",
            "--epochs",
            "1",
            *TINY,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    (run_dir,) = (tmp_path / "runs" / "pyconvunet").iterdir()
    assert (run_dir / "model.pt").is_file()
