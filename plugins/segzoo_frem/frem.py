"""Feature Random Enhancement Module: a training-only forward hook that multiplies B channels by X.

The paper (Sec. 3.2) multiplies B randomly chosen feature maps at the end of the encoder by a large
constant X while training, re-choosing them every epoch, so the layer farthest from the loss gets
large gradients; at test time the network runs unchanged. Being a hook on a named submodule rather
than a layer, it works on any architecture and adds nothing to the model's state dict or its cost.

A trainer drives it with three calls: ``attach(model)`` once, ``on_epoch_start(epoch)`` every epoch
(or ``attach_to_engine(engine)`` for Ignite) and ``detach()`` at the end.
"""

from __future__ import annotations

import difflib
from typing import Literal

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.engine.events import RemovableEventHandle
from pydantic import Field
from torch import nn
from torch.utils.hooks import RemovableHandle

import segzoo
from segzoo_frem import CITATION, DROSOPHILA_FREM, FIXED_FREM, MOUSE_FREM

Mode = Literal["random", "fixed"]


class FREMParams(segzoo.Params):
    B: int = Field(MOUSE_FREM["B"], ge=1, description="number of feature maps (channels) enhanced")
    X: float = Field(MOUSE_FREM["X"], gt=0, description="factor the enhanced feature maps are multiplied by")
    mode: Mode = Field("random", description="random: new channels every epoch (the paper); fixed: the same ones (Table 3)")
    seed: int = Field(0, ge=0, description="seed of the channel choice; the choice of an epoch depends only on seed and epoch")
    layer: str = Field("encoder.4", min_length=1, description="dotted name of the enhanced layer, as for model.get_submodule")


@segzoo.component(
    "train_hook",
    "frem",
    params=FREMParams,
    summary="Feature Random Enhancement: during training multiply B random channels of one layer by X; identity at eval",
    citation=CITATION,
    presets={"mouse": MOUSE_FREM, "drosophila": DROSOPHILA_FREM, "fixed": FIXED_FREM},
)
class FeatureRandomEnhancement:
    """Multiplies ``B`` channels of ``layer``'s output by ``X`` whenever that layer is in training mode."""

    def __init__(self, B: int, X: float, mode: Mode = "random", seed: int = 0, layer: str = "encoder.4") -> None:  # noqa: N803 - the paper's symbols
        self.B = B
        self.X = X
        self.mode = mode
        self.seed = seed
        self.layer = layer
        self.epoch = 0
        self.selected: torch.Tensor | None = None  # channels of the current epoch, chosen at its first training forward
        self._handle: RemovableHandle | None = None

    def select(self, epoch: int, num_channels: int) -> torch.Tensor:
        """The sorted channel indices enhanced during ``epoch``: a function of (seed, epoch) only, so resumed runs agree."""
        if self.B > num_channels:
            raise ValueError(f"frem: B={self.B} channels requested but layer '{self.layer}' has only {num_channels}")
        rng = np.random.default_rng([self.seed, 0 if self.mode == "fixed" else epoch])
        return torch.from_numpy(np.sort(rng.choice(num_channels, size=self.B, replace=False)))

    def on_epoch_start(self, epoch: int) -> None:
        """Start a new epoch: its channels are chosen afresh (in ``random`` mode) at the next training forward."""
        self.epoch = epoch
        self.selected = None

    def attach(self, model: nn.Module) -> RemovableHandle:
        """Register the enhancement on ``model``'s ``layer``; a hook object serves one model at a time."""
        if self._handle is not None:
            raise RuntimeError("frem: already attached to a model; call detach() first")
        self._handle = _named_submodule(model, self.layer).register_forward_hook(self._enhance)
        return self._handle

    def detach(self) -> None:
        """Remove the hook; the model is left exactly as it was before ``attach``."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def attach_to_engine(self, engine: Engine) -> RemovableEventHandle:
        """Call :meth:`on_epoch_start` with Ignite's 1-based epoch at every ``EPOCH_STARTED`` of ``engine``."""
        return engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.on_epoch_start(e.state.epoch))

    def _enhance(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return output
        if not isinstance(output, torch.Tensor) or output.ndim < 2:
            raise TypeError(f"frem: layer '{self.layer}' must output a (batch, channels, ...) tensor, not {type(output)}")
        if self.selected is None:
            self.selected = self.select(self.epoch, output.shape[1])
        scale = torch.ones(output.shape[1], dtype=output.dtype, device=output.device)
        scale[self.selected.to(output.device)] = self.X
        return output * scale.view(1, -1, *([1] * (output.ndim - 2)))


def _named_submodule(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule(name)`` with an error that lists the closest existing names."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        top_level = ", ".join(n for n in names if "." not in n)
        hint = f" Did you mean: {', '.join(close)}?" if close else f" Top-level modules: {top_level}"
        raise ValueError(f"frem: {type(model).__name__} has no submodule '{name}'.{hint}") from None
