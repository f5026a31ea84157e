"""Inputs are built where the model is: complexity counts, predictions and the bench's probes, checked without a GPU.

Models sit on the ``meta`` device (shapes, no data). Meta kernels accept CPU inputs, so a pre-hook stands in for
the GPU's "Expected all tensors to be on the same device": it refuses an input that is not where the model is."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import segzoo
from segzoo.complexity import measure, model_placement
from segzoo.engine import predict
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench  # noqa: E402
import gpu_facts  # noqa: E402

META = torch.device("meta")


@pytest.fixture
def meta_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "DEVICE", META)


def strict(model: torch.nn.Module) -> torch.nn.Module:
    """``model``, refusing inputs on another device or of another dtype than its weights, as a GPU model does."""

    def check(module: torch.nn.Module, args: tuple) -> None:
        weight = next(module.parameters())
        if args[0].device != weight.device or args[0].dtype != weight.dtype:
            raise RuntimeError(f"input on {args[0].device} ({args[0].dtype}), weights on {weight.device} ({weight.dtype})")

    model.register_forward_pre_hook(check)
    return model


def test_a_cpu_tensor_is_refused_by_a_strict_model_elsewhere() -> None:
    """The failure the GPU bench met (a CPU probe for a model on cuda:0), reproduced: the checks below mean something."""
    with pytest.raises(RuntimeError, match="input on cpu"):
        strict(torch.nn.Conv2d(3, 4, 3).to(META))(torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("name", ["unet", "pyconvunet"])
def test_complexity_is_counted_where_the_model_is(name: str) -> None:
    model = segzoo.create_model(name, "paper")
    on_cpu = measure(model, 3, 32)
    assert measure(strict(model.to(META)), 3, 32) == on_cpu
    assert measure(strict(segzoo.create_model(name, "paper").to(META, torch.bfloat16)), 3, 32) == on_cpu  # and its dtype


def test_model_placement_reads_the_first_floating_point_parameter() -> None:
    assert model_placement(torch.nn.Linear(2, 2).to(META, torch.float16)) == {"device": META, "dtype": torch.float16}
    assert model_placement(torch.nn.ReLU()) == {"device": torch.device("cpu"), "dtype": torch.float32}


def test_predict_defaults_to_the_networks_device() -> None:
    seen = []

    def inferer(batch: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        seen.append(batch.device)
        return torch.zeros(1, 1, *batch.shape[2:])

    network = strict(torch.nn.Conv2d(1, 1, 1).to(META))
    assert predict(network, np.zeros((1, 8, 8), np.float32), inferer).shape == (1, 8, 8)
    assert seen == [META]


def test_the_bench_builds_models_and_inputs_on_its_device(meta_bench: None) -> None:
    model = strict(bench.build("unet", "paper"))
    assert {p.device for p in model.parameters()} == {META}
    assert bench.image(2).device == META and bench.image(1, channels_last=True).is_contiguous(memory_format=torch.channels_last)
    assert bench.activation_elements(model, 3, 128) > 0
    assert measure(model, 3, 64).gmac > 0
    assert bench.peak_step_memory_mib(lambda: None) is None  # GPU memory only on cuda


def test_gpu_facts_say_why_there_is_no_utilisation_off_a_gpu() -> None:
    sampler = gpu_facts.UtilisationSampler(torch.device("cpu"))
    sampler.start()
    assert sampler.stop() == {
        "gpu_utilisation_percent": None,
        "gpu_utilisation_source": "n/a on cpu",
        "gpu_utilisation_samples": 0,
    }


def test_bench_on_cuda_without_a_gpu_stops_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["bench.py", "--quick", "--device", "cuda"])
    with pytest.raises(SystemExit, match="torch sees no GPU"):
        bench.main()


def test_bundle_seeding_leaves_cudnn_to_the_bundles_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    """MONAI's seeding alone would force cuDNN's deterministic kernels and turn its benchmark off on every GPU run."""
    from segzoo.engine import set_determinism
    from segzoo.errors import SegzooError

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)  # restored after the test
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    set_determinism(0, "false", "true")
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False, True)
    set_determinism(0)
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False, False)
    with pytest.raises(SegzooError, match="exclude each other"):
        set_determinism(0, True, True)
