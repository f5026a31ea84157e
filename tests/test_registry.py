"""The registry's promises: build by name, and errors that say what to fix."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from torch import nn

import segzoo
from segzoo.plugins import PluginManager, SegzooPluginWarning
from segzoo.registry import UnknownKindError, UnknownPresetError


def test_build_validates_and_returns_the_object() -> None:
    net = segzoo.build("architecture", "unet", base_channels=8, in_channels=1)
    assert isinstance(net, nn.Module)
    assert net.encoder[0][0][0].in_channels == 1 and net.encoder[0][0][0].out_channels == 8


def test_unknown_name_names_the_kind_and_closest_names() -> None:
    with pytest.raises(segzoo.UnknownComponentError) as err:
        segzoo.build("architecture", "pyconvunte")
    message = str(err.value)
    assert "no architecture named 'pyconvunte'" in message
    assert "Did you mean: pyconvunet" in message


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(UnknownKindError, match="did you mean architecture"):
        segzoo.build("architectures", "unet")


def test_invalid_parameter_names_component_field_value_and_expectation() -> None:
    with pytest.raises(segzoo.ComponentParamsError) as err:
        segzoo.build("architecture", "unet", base_channels="wide")
    message = str(err.value)
    assert "architecture 'unet'" in message
    assert "'base_channels'" in message and "'wide'" in message
    assert "integer" in message


def test_unknown_parameter_offers_the_closest_valid_one() -> None:
    with pytest.raises(segzoo.ComponentParamsError, match="Did you mean: base_channels"):
        segzoo.build("architecture", "unet", base_channel=16)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(UnknownPresetError, match="available presets: paper"):
        segzoo.build("architecture", "unet", preset="tiny")


def _plugin(name: str, kind: str = "loss"):
    """A minimal plugin object contributing one component (without parameters) called ``name``."""

    @segzoo.component(kind, name, params=segzoo.Params, summary="test component")
    def factory() -> nn.Module:
        return nn.L1Loss()

    class Plugin:
        @staticmethod
        @segzoo.hookimpl
        def segzoo_components() -> list:
            return [factory]

    return Plugin()


def test_a_second_plugin_registering_the_same_name_is_refused_naming_both_and_the_first_stays() -> None:
    manager = PluginManager()
    manager.register(_plugin("twin"), name="first-plugin", version="1.0")
    with pytest.warns(
        SegzooPluginWarning, match="loss 'twin' is registered twice: by plugin 'first-plugin' and by plugin 'second-plugin'"
    ):
        assert manager.register(_plugin("twin"), name="second-plugin", version="2.0") is None
    assert manager.registry.get("loss", "twin").plugin == "first-plugin"


def test_a_plugin_that_fails_to_import_warns_and_the_others_load() -> None:
    broken = EntryPoint(name="broken", value="segzoo_no_such_module_xyz.plugin", group="segzoo")
    working = EntryPoint(name="pyconvunet", value="segzoo_pyconvunet.plugin", group="segzoo")
    with pytest.warns(SegzooPluginWarning, match="'broken'"):
        manager = PluginManager().load(entry_points=[broken, working])
    assert ("architecture", "pyconvunet") in manager.registry
    failed = [p for p in manager.plugins if p.error]
    assert [p.name for p in failed] == ["broken"] and "ModuleNotFoundError" in failed[0].error


def test_an_architecture_without_the_parameters_bundles_pass_is_refused_at_registration() -> None:
    manager = PluginManager()
    with pytest.warns(
        SegzooPluginWarning, match="lacks in_channels, out_channels, final_activation.*segzoo.nn.ArchitectureParams"
    ):
        manager.register(_plugin("no_channels", kind="architecture"), name="careless", version="1.0")
    assert ("architecture", "no_channels") not in manager.registry and manager.plugins[-1].error


def test_builtins_are_registered_as_plugins_like_any_other() -> None:
    names = {p.name for p in segzoo.plugin_manager().plugins}
    assert {"segzoo.builtin.losses", "segzoo.builtin.metrics", "pyconvunet", "baselines"} <= names
    assert segzoo.get("loss", "dice_bce").plugin == "segzoo.builtin.losses"
    assert segzoo.get("architecture", "pyconvunet").plugin == "pyconvunet"
