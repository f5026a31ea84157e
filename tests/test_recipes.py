"""Each bundle's faithful recipe (configs/paper*.json merged over train.json) resolves to the paper's values."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser
from monai.inferers import SimpleInferer
from monai.transforms import EnsureTyped

from tests.conftest import BUNDLES

# A stand-in for the network's parameters: the recipes' optimizers are read back without building a network.
NO_NETWORK = {"optimizer#params": "$[torch.nn.Parameter(torch.zeros(1))]"}


def resolved(bundle: str, *recipes: str, **overrides: object) -> ConfigParser:
    """The bundle's train.json with ``recipes`` merged over it in order, as ``--config_file "[...]"`` does."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / name) for name in ("train.json", *recipes)])
    parser.update({**NO_NETWORK, **overrides})
    return parser


def _transforms(parser: ConfigParser) -> list[type]:
    return [type(t) for t in parser.get_parsed_content("train#preprocessing").transforms]


def test_pyconvunet_recipe_is_the_papers_protocol() -> None:
    parser = resolved("pyconvunet", "paper.json", **{"synthetic#num_images": 5, "synthetic#size": 32})
    values = {
        k: parser.get_parsed_content(k)
        for k in ("preset", "loss", "epochs", "batch_size", "learning_rate", "val_fraction", "key_metric")
    }
    assert values == {"preset": "paper", "loss": "bce", "epochs": 50, "batch_size": 5, "learning_rate": 1e-3, "val_fraction": 0.1,
                      "key_metric": "foreground_iou"}
    optimizer = parser.get_parsed_content("optimizer")
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 1e-3
    # 3 of 5 images (1 test, 1 validation), each as itself, flipped twice and rotated twice
    train = parser.get_parsed_content("train#items")
    assert len(train) == 3 * 5 and {i["name"].split("@")[1] for i in train} == {"identity", "flip_h", "flip_v", "rot90", "rot180"}
    assert _transforms(parser) == [EnsureTyped]  # whole images, no random crop or on-line augmentation
    assert isinstance(parser.get_parsed_content("validate#inferer"), SimpleInferer)
    assert parser.get("validate#handlers")[1]["key_metric_filename"] == "model.pt"  # best validation key metric: model.pt


def test_frem_recipes_are_the_papers_per_data_set() -> None:
    drosophila = resolved("frem", "paper.json", **{"synthetic#num_images": 4})
    values = {k: drosophila.get_parsed_content(k) for k in ("epochs", "B", "X", "lambda", "loss", "key_metric")}
    assert values == {"epochs": 2000, "B": 8, "X": 250.0, "lambda": 0.2781, "loss": "ce", "key_metric": "miou_with_background"}
    # 4 slices: 1 test, 1 validation, 2 training of 512x512 -> 4 fixed tiles each
    tiles = drosophila.get_parsed_content("train#items")
    assert len(tiles) == 2 * 4 and {t["image"].shape for t in tiles} == {(1, 256, 256)}
    assert _transforms(drosophila) == [EnsureTyped]
    mouse = resolved("frem", "paper.json", "paper_mouse.json")
    values = {k: mouse.get_parsed_content(k) for k in ("B", "X", "lambda", "out_channels", "epochs")}
    assert values == {"B": 162, "X": 632.0, "lambda": 0.3257, "out_channels": 3, "epochs": 2000}


def test_munet_recipe_is_the_plain_table_1_network_with_learning_rate_decay() -> None:
    parser = resolved("munet", "paper.json")
    values = {
        k: parser.get_parsed_content(k)
        for k in ("multi_scale", "hard_example_mining", "fusion_params", "batch_size", "epochs", "train_sizes")
    }
    assert values == {"multi_scale": False, "hard_example_mining": False, "fusion_params": {"normalize": False}, "batch_size": 64,
                      "epochs": 100, "train_sizes": [256]}
    optimizer = parser.get_parsed_content("optimizer")
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["weight_decay"] == 0
    schedule = parser.get_parsed_content("lr_schedule").lr_scheduler
    assert schedule.lr_lambdas[0](100) == pytest.approx(1 / (1 + 0.01 * 100))  # Keras Adam(decay=0.01)
    assert parser.get_parsed_content("loss_params") == {"lambda_mask": 0.25}


@pytest.mark.parametrize("bundle", ["pyconvunet", "frem"])
def test_evaluation_recipes_score_with_metrics_named_by_definition(bundle: str) -> None:
    from segzoo.bundle.metrics import metric_spec

    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / name)
                        for name in ("train.json", "evaluate.json", "paper_evaluate.json")])
    names = [metric_spec(key, spec)[0] for key, spec in parser.get_parsed_content("metrics").items()]
    assert "miou" not in names and ("foreground_iou" in names or "miou_with_background" in names)


def test_unetpp_row_trains_all_heads_and_is_scored_on_the_full_networks_head() -> None:
    from segzoo.tables import get_table

    row = get_table("pyconvunet-table2", BUNDLES).row("UNet++")
    parser = resolved("pyconvunet", "paper.json", **row.overrides, **{"arch_params#base_channels": 4})
    network = parser.get_parsed_content("network_def")
    assert network.deep_supervision and network.eval_head == "full" and len(network.heads) == 4
    loss, bce = parser.get_parsed_content("loss_function"), torch.nn.functional.binary_cross_entropy_with_logits
    target, heads = torch.zeros(1, 1, 4, 4), [torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), -9.0)]
    assert loss(heads, target) == pytest.approx(float((bce(heads[0], target) + bce(heads[1], target)) / 2))  # the mean over heads
