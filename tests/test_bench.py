"""The bench at toy sizes on the CPU: inference, the per-implementation ratios the GPU goals are read from, and the
report, so a GPU run does not meet a broken code path first (the training probes and option rows run in `nox -s bench`)."""

from __future__ import annotations

import sys

import pytest
import torch

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench  # noqa: E402


@pytest.mark.slow  # times a training epoch of every architecture
def test_quick_bench_at_toy_sizes_reports_every_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "DEVICE", torch.device("cpu"))
    monkeypatch.setattr(bench, "SIZE", 32)
    monkeypatch.setattr(
        bench, "configurations", lambda quick: [("unet[paper]", "unet", "paper"), ("pyconvunet[paper]", "pyconvunet", "paper")]
    )
    monkeypatch.setattr(bench, "BIG_BATCH", 2)
    monkeypatch.setattr(bench, "STEP", {"size": 32, "batch_size": 1})
    monkeypatch.setattr(bench, "matmul_gflops", lambda: 1.0)
    result = bench.collect(quick=True, repeats=1, training_probes=False, ratios=True, options=False)

    assert set(result["architectures"]) == {"unet[paper]", "pyconvunet[paper]"}
    ratios = result["implementations"]
    assert set(ratios) == {"unet_seconds", "auto", "grouped", "channels_last", "merged", "dense", "dense_merged"}
    assert all(
        set(row) == set(bench.RATIO_GOALS) and min(row.values()) > 0 for key, row in ratios.items() if key != "unet_seconds"
    )
    report = bench.markdown(result)
    assert "| dense_merged |" in report and ("| met |" in report or "| not met |" in report)
    assert "(training probes not run)" in report
