"""FREM plugin: the SE U-Net and its ablation rows, the frem train hook, the deep-supervision loss."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from torch import nn
from torch.nn.functional import cross_entropy

import segzoo
from segzoo_frem.frem import FeatureRandomEnhancement


def small_se_unet(**params) -> nn.Module:
    """Bottleneck of 32 channels at encoder.2: fast, and wide enough to pick B channels from."""
    return segzoo.create_model("se_unet", base_channels=8, depth=2, final_activation="identity", **params)


def layer_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` as the rest of the network sees it (after any hook registered before this call)."""
    seen = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    model(x)
    handle.remove()
    return seen[0]


def test_frem_selection_changes_every_epoch_and_is_seeded() -> None:
    hook = FeatureRandomEnhancement(B=8, X=250.0, seed=3)
    epochs = [hook.select(epoch, 512) for epoch in range(1, 6)]
    assert all(len(sel) == 8 and len(set(sel.tolist())) == 8 and sel.max() < 512 for sel in epochs)
    assert len({tuple(sel.tolist()) for sel in epochs}) == 5
    same_seed = FeatureRandomEnhancement(B=8, X=250.0, seed=3)
    assert all(torch.equal(sel, same_seed.select(epoch, 512)) for epoch, sel in enumerate(epochs, start=1))
    assert not torch.equal(FeatureRandomEnhancement(B=8, X=250.0, seed=4).select(1, 512), epochs[0])


def test_fixed_mode_keeps_the_same_channels_all_training() -> None:
    hook = segzoo.build("train_hook", "frem", preset="fixed")
    assert (hook.B, hook.X, hook.mode) == (10, 10000.0, "fixed")
    first = hook.select(1, 512)
    assert all(torch.equal(first, hook.select(epoch, 512)) for epoch in range(2, 20))


def test_frem_scales_exactly_b_channels_by_x_in_training() -> None:
    torch.manual_seed(0)
    model = small_se_unet().train()
    x = torch.randn(2, 1, 16, 16)
    plain = layer_output(model, "encoder.2", x)
    hook = segzoo.build("train_hook", "frem", B=5, X=7.5, layer="encoder.2")
    hook.attach(model)
    enhanced = layer_output(model, "encoder.2", x)
    changed = (enhanced != plain).flatten(2).any(-1).any(0).nonzero().flatten()
    assert torch.equal(changed, hook.selected) and len(changed) == 5
    assert torch.equal(enhanced[:, hook.selected], plain[:, hook.selected] * 7.5)
    hook.detach()
    assert torch.equal(layer_output(model, "encoder.2", x), plain)


def test_frem_is_identity_in_evaluation() -> None:
    torch.manual_seed(0)
    model = small_se_unet()
    x = torch.randn(1, 1, 16, 16)
    hook = FeatureRandomEnhancement(B=5, X=632.0, layer="encoder.2")
    hook.attach(model)
    model.train()(x)  # a training step chooses the channels (and moves the BN statistics)
    assert hook.selected is not None
    with_hook = model.eval()(x)
    hook.detach()
    assert torch.equal(with_hook, model(x))


def test_ignite_engine_reselects_channels_at_every_epoch() -> None:
    torch.manual_seed(0)
    model = small_se_unet().train()
    hook = FeatureRandomEnhancement(B=4, X=10.0, seed=1, layer="encoder.2")
    hook.attach(model)
    seen: dict[int, list[torch.Tensor]] = {}

    def step(engine: Engine, batch: torch.Tensor) -> None:
        model(batch)
        seen.setdefault(engine.state.epoch, []).append(hook.selected.clone())

    engine = Engine(step)
    hook.attach_to_engine(engine)
    engine.run([torch.randn(1, 1, 16, 16)] * 2, max_epochs=3)
    assert sorted(seen) == [1, 2, 3]
    for epoch, selections in seen.items():
        assert all(torch.equal(sel, hook.select(epoch, 32)) for sel in selections)  # stable within an epoch
    assert len({tuple(sel[0].tolist()) for sel in seen.values()}) == 3


def test_frem_attaches_to_the_baseline_unet_at_a_named_layer() -> None:
    torch.manual_seed(0)
    model = segzoo.create_model("unet", in_channels=1, out_channels=2, base_channels=4, depth=3, final_activation="identity")
    x = torch.randn(1, 1, 16, 16)
    plain = layer_output(model, "encoder.3.1", x)
    hook = FeatureRandomEnhancement(B=3, X=4.0, layer="encoder.3.1")
    hook.attach(model)
    enhanced = layer_output(model, "encoder.3.1", x)
    assert len(hook.selected) == 3 and plain.shape[1] == 32
    assert torch.equal(enhanced[:, hook.selected], plain[:, hook.selected] * 4.0)
    with pytest.raises(RuntimeError, match="already attached"):
        hook.attach(model)
    with pytest.raises(ValueError, match="Did you mean: encoder.3"):
        FeatureRandomEnhancement(B=3, X=4.0, layer="encoder.33").attach(model)
    with pytest.raises(ValueError, match="B=64 channels requested"):
        FeatureRandomEnhancement(B=64, X=4.0, layer="encoder.3").select(1, 32)


@pytest.mark.parametrize("row", ["baseline", "without_deep_layers", "supervision", "dropout_mouse", "frem"])
def test_every_ablation_row_trains_on_a_64x64_image(row: str) -> None:
    torch.manual_seed(0)
    model = segzoo.create_model("se_unet", preset="baseline" if row == "frem" else row, final_activation="identity").train()
    if row == "frem":
        segzoo.build("train_hook", "frem", preset="mouse").attach(model)
    loss_fn = segzoo.build("loss", "deep_supervision" if row == "supervision" else "ce")
    out = model(torch.randn(1, 1, 64, 64))
    outputs = out if isinstance(out, list) else [out]
    assert [o.shape for o in outputs] == [(1, 4, 64, 64)] * (2 if row == "supervision" else 1)
    loss_fn(out, torch.randint(0, 4, (1, 1, 64, 64))).backward()
    deepest = model.encoder[-1].conv[0][0].weight.grad
    assert deepest is not None and torch.isfinite(deepest).all() and deepest.abs().sum() > 0
    assert len(model.encoder) == (4 if row == "without_deep_layers" else 5)


def test_dropout_row_drops_channels_only_at_the_encoder_end() -> None:
    model = segzoo.create_model("se_unet", preset="dropout_mouse")
    dropouts = {name: m for name, m in model.named_modules() if isinstance(m, nn.Dropout2d)}
    assert list(dropouts) == ["encoder.4.dropout"] and dropouts["encoder.4.dropout"].p == 162 / 512
    assert model.encoder[-1].conv[-1][0].out_channels == 512


def test_deep_supervision_loss_matches_eq_1() -> None:
    torch.manual_seed(0)
    main, aux = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    target = torch.randint(0, 4, (2, 1, 8, 8))
    loss = segzoo.build("loss", "deep_supervision", aux_weight=0.25)
    expected = 0.75 * cross_entropy(main, target[:, 0]) + 0.25 * cross_entropy(aux, target[:, 0])
    assert torch.allclose(loss([main, aux], target), expected)
    assert torch.allclose(loss(main, target), cross_entropy(main, target[:, 0]))


def test_supervision_head_is_gone_in_evaluation() -> None:
    torch.manual_seed(0)
    model = small_se_unet(deep_supervision=True).eval()
    out = model(torch.randn(1, 1, 16, 16))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 4, 16, 16)


def test_se_block_gates_channels_between_zero_and_one() -> None:
    torch.manual_seed(0)
    block = segzoo.build("block", "se", in_channels=4, reduction=16)
    x = torch.rand(2, 4, 8, 8) + 0.1
    gates = block(x) / x
    assert gates.shape == x.shape and (gates > 0).all() and (gates < 1).all()
    assert torch.allclose(gates, gates[..., :1, :1].expand_as(gates))  # one gate per image and channel
