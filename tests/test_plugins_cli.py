"""A plugin that cannot load costs a warning naming it, the others load, and ``segzoo plugins`` lists why it failed."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

import segzoo
from segzoo.cli import main
from segzoo.plugins import ENTRY_POINT_GROUP, PluginManager, SegzooPluginWarning

# module name -> source of the fake plugins, each reached through a fake entry point
FAKE_PLUGINS = {
    "segzoo_test_good_plugin": """
        import segzoo
        from torch import nn

        class NoParams(segzoo.Params):
            pass

        @segzoo.component("loss", "test_l1", params=NoParams, summary="L1")
        def test_l1() -> nn.Module:
            return nn.L1Loss()

        @segzoo.hookimpl
        def segzoo_components():
            return [test_l1]
    """,
    "segzoo_test_broken_plugin": """
        raise ImportError("needs libfoo, which is not installed")
    """,
    "segzoo_test_old_plugin": """
        import segzoo

        @segzoo.hookimpl
        def segzoo_requires():
            return "<0.1"

        @segzoo.hookimpl
        def segzoo_components():
            return []
    """,
}
ENTRY_POINTS = {"good": "segzoo_test_good_plugin", "broken": "segzoo_test_broken_plugin", "too_old": "segzoo_test_old_plugin"}


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginManager]:
    """The installed plugins plus the fakes, loaded as ``segzoo.plugin_manager()`` loads them; the warnings are checked."""
    for module, source in FAKE_PLUGINS.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    fakes = [metadata.EntryPoint(name, module, ENTRY_POINT_GROUP) for name, module in ENTRY_POINTS.items()]
    with pytest.warns(SegzooPluginWarning) as caught:
        loaded = PluginManager().load(entry_points=[*metadata.entry_points(group=ENTRY_POINT_GROUP), *fakes])
    messages = [str(w.message) for w in caught]
    assert any("plugin 'broken'" in m and "needs libfoo" in m for m in messages), messages
    assert any("plugin 'too_old'" in m and "<0.1" in m for m in messages), messages
    monkeypatch.setattr(segzoo, "_manager", loaded)
    yield loaded
    for module in FAKE_PLUGINS:
        sys.modules.pop(module, None)


def test_failed_plugins_do_not_stop_the_others(manager: PluginManager) -> None:
    assert manager.registry.get("loss", "test_l1").plugin == "good"
    assert manager.registry.get("architecture", "unet").plugin == "baselines"
    assert manager.registry.get("loss", "dice").plugin == "segzoo.builtin.losses"


def test_segzoo_plugins_lists_loaded_plugins_and_failures_with_their_reason(
    manager: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins"]) == 0
    loaded, _, failed = capsys.readouterr().out.partition("not loaded:")
    good = next(line for line in loaded.splitlines() if line.startswith("good "))
    assert "segzoo_test_good_plugin" in good and "loss: test_l1" in good
    assert "baselines" in loaded and "broken" not in loaded
    reasons = {line.split()[0]: line for line in failed.splitlines() if line.strip()}
    assert "segzoo_test_broken_plugin" in reasons["broken"] and "ImportError: needs libfoo" in reasons["broken"]
    assert "segzoo_test_old_plugin" in reasons["too_old"] and f"<0.1 but segzoo {segzoo.__version__}" in reasons["too_old"]


def test_segzoo_plugins_json_has_version_module_components_and_error(
    manager: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins["good"] == {
        "name": "good",
        "version": "?",  # a fake entry point has no distribution
        "module": "segzoo_test_good_plugin",
        "components": [{"kind": "loss", "name": "test_l1"}],
        "error": None,
    }
    assert plugins["baselines"]["version"] == segzoo.__version__
    assert plugins["broken"]["components"] == [] and "needs libfoo" in plugins["broken"]["error"]
    assert "<0.1" in plugins["too_old"]["error"]
