"""The TrainHook contract: ``--train_hook frem`` in the pyconvunet bundle enhances the named layer of any architecture
in training and leaves it untouched in evaluation."""

from __future__ import annotations

import pytest
import torch

from segzoo.bundle import contract as bundles
from segzoo.engine.handlers import TrainHook, TrainHookHandler
from tests.conftest import BUNDLES


@pytest.mark.parametrize("arch", ["unet", "pyconvunet"])
def test_frem_in_the_pyconvunet_bundle_enhances_the_named_layer_in_training_only(arch: str, tmp_path) -> None:
    torch.manual_seed(0)
    overrides = {"arch": arch, "arch_params": {"base_channels": 8}, "train_hook": "frem",
                 "train_hook_params": {"B": 3, "X": 50.0, "layer": "encoder.3"}, "runs_dir": str(tmp_path / "runs"),
                 "synthetic#num_images": 4, "synthetic#size": 64, "patch_size": [64, 64], "device": "$torch.device('cpu')"}
    parser = bundles.load(BUNDLES / "pyconvunet", "training", overrides).parser
    parser.get_parsed_content("train#trainer")  # building the trainer attaches its handlers, the hook's among them
    hook, network = parser.get_parsed_content("train#hook"), parser.get_parsed_content("network")
    assert isinstance(hook, TrainHook) and hook.layer == "encoder.3"

    layer = network.get_submodule("encoder.3")
    seen: dict[str, torch.Tensor] = {}
    layer.register_forward_pre_hook(lambda module, args: seen.update(input=args[0]))
    layer.register_forward_hook(lambda module, args, output: seen.update(output=output))
    x = torch.rand(2, 1, 64, 64)

    network.train()
    network(x)
    plain = layer.forward(seen["input"])  # the layer's own output, without forward hooks
    changed = [c for c in range(plain.shape[1]) if not torch.equal(seen["output"][:, c], plain[:, c])]
    assert changed == hook.selected.tolist() and len(changed) == 3
    assert torch.allclose(seen["output"][:, changed], 50.0 * plain[:, changed])

    network.eval()
    with torch.no_grad():
        network(x)
        assert torch.equal(seen["output"], layer.forward(seen["input"]))


def test_a_hook_without_the_contract_is_refused_naming_what_it_lacks() -> None:
    class OnlyAttach:
        def attach(self, model: torch.nn.Module) -> None: ...

    with pytest.raises(TypeError, match="lacks attach_to_engine, detach"):
        TrainHookHandler(OnlyAttach(), torch.nn.Identity())
