"""Exports: every registered architecture to TorchScript and ONNX, each checked against PyTorch; the export command on a run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from torch import nn

import segzoo
from segzoo.cli import main
from segzoo.export import TOLERANCE, ExportError, export_network, output_names

ARCHITECTURES = [spec.name for spec in segzoo.list_components("architecture")]
# Narrower or shallower than the defaults where an architecture has the knob, to keep the suite fast; the input stays 1x1x256x256.
SMALL = {"base_channels": 8, "depth": 3}
# Where 8 channels cannot be built: the released PyConvU-Net's 16 groups on half a block's channels need 32 (and then
# one pooling keeps it as fast as the others).
SMALLER = {"pyconvunet_released": {"base_channels": 32, "depth": 1}}


def small_network(name: str) -> nn.Module:
    fields = segzoo.get("architecture", name).params.model_fields
    small = SMALLER.get(name, SMALL)
    torch.manual_seed(0)
    return segzoo.create_model(name, in_channels=1, **{k: v for k, v in small.items() if k in fields}).eval()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_exports_to_torchscript_and_onnx_within_1e_4(name: str, tmp_path: Path) -> None:
    import onnxruntime

    network = small_network(name)
    sample = torch.rand(1, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    for fmt in ("torchscript", "onnx"):
        result = export_network(network, fmt, tmp_path / f"{name}.{fmt}", sample)
        assert result.max_abs_diff <= TOLERANCE and result.path.is_file()
        assert result.outputs == output_names(network)
    session = onnxruntime.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    other = torch.rand(1, 1, 128, 192, generator=torch.Generator().manual_seed(1))  # another size: spatial axes are dynamic
    with torch.no_grad():
        expected = network(other)
    first = expected[output_names(network)[0]] if isinstance(expected, dict) else expected
    got = session.run(None, {"image": other.numpy()})
    assert [o.name for o in session.get_outputs()] == list(output_names(network))
    assert np.abs(got[0] - first.numpy()).max() <= TOLERANCE


def test_munet_exports_the_fused_mask_and_the_class_logits_only() -> None:
    assert output_names(small_network("munet")) == ("fused", "logits")


class CountsCalls(nn.Module):
    """Multiplies by how often it was called: tracing bakes the first call in, so the export computes something else."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * self.calls


def test_an_export_that_differs_from_pytorch_is_refused_and_not_kept(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"differs from PyTorch by .* \(tolerance 1e-04\); the file was not kept"):
        export_network(CountsCalls(), "torchscript", tmp_path / "m.ts", torch.rand(1, 1, 32, 32))
    assert not (tmp_path / "m.ts").exists()


def test_a_dict_output_without_export_outputs_names_the_contract(tmp_path: Path) -> None:
    class DictOut(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"mask": x}

    with pytest.raises(ExportError, match="export_outputs"):
        export_network(DictOut(), "torchscript", tmp_path / "m.ts", torch.rand(1, 1, 32, 32))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """What a training leaves: model.pt (CheckpointSaver: the bare state dict) and components.json."""
    run = tmp_path / "runs" / "pyconvunet" / "unet-1"
    run.mkdir(parents=True)
    params = {"preset": None, "in_channels": 1, "out_channels": 1, "base_channels": 8, "depth": 3}
    torch.save(segzoo.create_model("unet", **{k: v for k, v in params.items() if k != "preset"}).state_dict(), run / "model.pt")
    (run / "components.json").write_text(json.dumps({"architecture": {"name": "unet", **params}}))
    return run


def test_segzoo_export_writes_a_checked_onnx_file_beside_the_checkpoint(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(run_dir), "--format", "onnx", "--size", "64"]) == 0
    assert (run_dir / "model.onnx").is_file()
    assert "max |exported - PyTorch| = " in capsys.readouterr().out


def test_segzoo_export_of_a_folder_without_a_checkpoint_says_what_it_needs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tmp_path), "--format", "torchscript"]) == 2
    assert "model.pt or last.pt" in capsys.readouterr().err


def test_compare_registers_the_model_of_the_best_held_out_run(run_dir: Path, tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from segzoo.export.mlflow_model import log_trained_model, register_winner
    from segzoo.tracking.client import get_or_create_experiment

    uri = tracking_uri
    client = MlflowClient(tracking_uri=uri)
    experiment = get_or_create_experiment(client, "pyconvunet")
    entries = {}
    for arch, miou in (("worse", 0.5), ("better", 0.7)):
        run_id = client.create_run(experiment).info.run_id
        uri_of_model = log_trained_model(client, run_id, run_dir)
        assert uri_of_model.startswith("models:/")  # an MLflow 3 logged model
        entries[arch] = {"run_id": run_id, "metrics": {"miou": miou, "dice": 1.0 - miou}, "model": uri_of_model}

    assert register_winner(uri, entries, "segmenter") == "better"
    (version,) = client.search_model_versions("name='segmenter'")
    assert version.run_id == entries["better"]["run_id"] and version.source == entries["better"]["model"]
    # the run keeps a copy as its artifact model/, so runs:/<id>/model loads in MLflow 2 clients too
    artifacts = Path(urlparse(client.get_run(version.run_id).info.artifact_uri).path) / "model"
    assert (artifacts / "MLmodel").is_file() and (artifacts / "artifacts").is_dir()


def test_segzoo_export_mlflow_writes_a_model_folder_that_predicts_masks(run_dir: Path) -> None:
    import mlflow

    assert main(["export", str(run_dir), "--format", "mlflow", "--size", "64"]) == 0
    masks = mlflow.pyfunc.load_model(str(run_dir / "mlflow_model")).predict(
        np.random.default_rng(0).random((1, 1, 40, 50), dtype=np.float32)
    )
    assert masks.shape == (1, 40, 50) and masks.dtype == np.uint8
    assert sorted(p.name for p in run_dir.iterdir()) == ["components.json", "mlflow_model", "model.pt"]  # nothing left beside it


def test_onnx_without_the_export_extra_names_the_pip_install_that_fixes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # as if not installed
    with pytest.raises(ExportError, match=r'needs onnxscript, which is not installed: pip install "segzoo\[export\]"'):
        export_network(small_network("unet"), "onnx", tmp_path / "m.onnx", torch.rand(1, 1, 32, 32))


def test_logging_a_model_leaves_the_processs_tracking_uri_as_the_user_set_it(monkeypatch: pytest.MonkeyPatch,
                                                                              tmp_path: Path) -> None:
    """MLflow's own switch unsets MLFLOW_TRACKING_URI on the way out; a tune worker's next trial then went to the local
    default store instead of the shared server."""
    import mlflow

    from segzoo.export.mlflow_model import using_tracking_uri

    users = f"sqlite:///{tmp_path}/users.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", users)
    with using_tracking_uri(f"sqlite:///{tmp_path}/other.db"):
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/other.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == users
    assert mlflow.get_tracking_uri() == users
