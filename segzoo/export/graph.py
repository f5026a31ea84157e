"""What an exported graph holds: the network in eval mode, returning tensors only.

A registered architecture exports as it is when, in eval mode, ``forward(image)`` returns one tensor
(training-only parts, such as deep-supervision heads or train hooks, are off in eval mode or never
attached to a freshly built network). A network whose forward returns a dict declares which entries
the graph keeps, in order, with a class attribute (the whole contract, see docs/exporting.md)::

    class MUNet(nn.Module):
        export_outputs = ("fused", "logits")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from segzoo.errors import SegzooError

EXPORT_OUTPUTS = "export_outputs"
SINGLE_OUTPUT = ("pred",)


class ExportError(SegzooError):
    """A network could not be exported, or its export does not compute what the PyTorch network computes."""


def output_names(network: nn.Module) -> tuple[str, ...]:
    """Names of the exported graph's outputs: the network's ``export_outputs``, else one output ``pred``."""
    return tuple(getattr(network, EXPORT_OUTPUTS, None) or SINGLE_OUTPUT)


class InferenceGraph(nn.Module):
    """``network`` in eval mode, its output reduced to a tensor (or a tuple of tensors named by ``export_outputs``)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.eval()
        self.keys = tuple(getattr(network, EXPORT_OUTPUTS, None) or ())

    @property
    def names(self) -> tuple[str, ...]:
        return output_names(self.network)

    # The network's own state dict, so a bundle checkpoint loads into the graph (``monai.bundle ckpt_export``).
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.network.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        return self.network.load_state_dict(state_dict, strict, assign)

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        output = self.network(image)
        if self.keys:
            return tuple(output[key] for key in self.keys)
        if not torch.is_tensor(output):
            raise ExportError(
                f"{type(self.network).__name__}.forward returns {type(output).__name__} in eval mode, not a tensor; declare "
                f"the outputs to export as a class attribute, e.g. {EXPORT_OUTPUTS} = ('mask', 'logits') (docs/exporting.md)"
            )
        return output


def as_tuple(output: torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(output) if isinstance(output, (tuple, list)) else (output,)
