"""The bundles the MONAI way: ``ckpt_export`` on each bundle's checkpoint layouts, and metadata against the kept schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_metadata

from segzoo.export.graph import as_tuple
from segzoo.export.pack import SCHEMA
from tests.conftest import BUNDLES

# bundle, the config id ckpt_export exports, overrides (narrower networks, MUNet's smallest backbone: fast), input shape
CASES = [
    ("pyconvunet", "network_def", {"arch_params": {"base_channels": 8}}, [1, 1, 64, 64]),
    ("frem", "network_def", {"arch_params": {"base_channels": 8}}, [1, 1, 64, 64]),
    ("munet", "export_def", {"backbone": "resnet50"}, [1, 1, 64, 64]),
]


@pytest.mark.parametrize(("bundle", "net_id", "overrides", "shape"), CASES)
def test_ckpt_export_turns_a_training_checkpoint_into_torchscript(bundle: str, net_id: str, overrides: dict, shape: list[int],
                                                                   tmp_path: Path) -> None:
    config = [str(BUNDLES / bundle / "configs" / name) for name in ("train.json", "inference.json")]  # the overlay, merged
    parser = ConfigParser()
    parser.read_config(config)
    parser.update(overrides)
    network = parser.get_parsed_content(net_id).eval()
    # last.pt's layout (segzoo.engine.LastCheckpoint); model.pt (CheckpointSaver) is the bare state dict, exported
    # without --key_in_ckpt
    torch.save({"model": network.state_dict(), "optimizer": {}, "trainer": {}}, tmp_path / "last.pt")
    ckpt_export(net_id=net_id, filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "last.pt"), key_in_ckpt="model",
                meta_file=str(BUNDLES / bundle / "configs" / "metadata.json"), config_file=config,
                use_trace=True, input_shape=shape, **overrides)
    image = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = as_tuple(network(image)), as_tuple(torch.jit.load(str(tmp_path / "model.ts"))(image))
    assert max(float((e - g).abs().max()) for e, g in zip(expected, got)) <= 1e-4


@pytest.mark.parametrize("bundle", ["pyconvunet", "frem", "munet"])
def test_bundle_metadata_passes_the_schema_kept_in_the_repository(bundle: str) -> None:
    verify_metadata(
        meta_file=str(BUNDLES / bundle / "configs" / "metadata.json"), filepath=str(SCHEMA)
    )  # a present file: no download
