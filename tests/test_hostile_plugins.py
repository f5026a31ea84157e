"""Nothing a plugin does at import or registration stops segzoo: it is reported, whole or not at all."""

from __future__ import annotations

import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from segzoo.cli import main
from segzoo.plugins import ENTRY_POINT_GROUP, PluginManager, SegzooPluginWarning
from tests.conftest import hostile

GOOD_LOSS = """
    import segzoo
    from torch import nn

    class NoParams(segzoo.Params):
        pass

    @segzoo.component("loss", "hostile_ok", params=NoParams, summary="L1")
    def hostile_ok() -> nn.Module:
        return nn.L1Loss()
"""

# case -> (plugin source after GOOD_LOSS, message shown by `segzoo plugins`)
CASES = [
    pytest.param(
        "raise RuntimeError('boom at import')",
        "import failed: RuntimeError: boom at import",
        marks=hostile(
            "plugins",
            "plugin raises at import",
            "plugin skipped, listed under 'not loaded'",
            "import failed: RuntimeError: boom at import",
        ),
    ),
    pytest.param(
        "import sys; sys.exit(3)",
        "import failed: SystemExit: 3",
        marks=hostile(
            "plugins", "plugin calls sys.exit() at import", "plugin skipped; segzoo goes on", "import failed: SystemExit: 3"
        ),
    ),
    pytest.param(
        """
        @segzoo.hookimpl
        def segzoo_components():
            raise SystemExit("no GPU")
    """,
        "SystemExit: no GPU",
        marks=hostile("plugins", "segzoo_components() calls sys.exit()", "plugin skipped; segzoo goes on", "SystemExit: no GPU"),
    ),
    pytest.param(
        """
        @segzoo.hookimpl
        def segzoo_components():
            return [hostile_ok, segzoo.get("architecture", "unet")]
    """,
        "architecture 'unet' is registered twice: by plugin 'baselines' and by plugin 'hostile'",
        marks=hostile(
            "plugins",
            "plugin registers a name another plugin has",
            "plugin skipped whole: none of its components registered",
            "architecture 'unet' is registered twice: by plugin 'baselines' and by plugin 'hostile'",
        ),
    ),
    pytest.param(
        """
        @segzoo.hookimpl
        def segzoo_components():
            return [hostile_ok, hostile_ok]
    """,
        "loss 'hostile_ok' is registered twice",
        marks=hostile(
            "plugins", "plugin registers one name twice", "plugin skipped whole", "loss 'hostile_ok' is registered twice"
        ),
    ),
    pytest.param(
        """
        @segzoo.hookimpl
        def segzoo_components():
            return hostile_ok
    """,
        "segzoo_components() must return a list of components, got function",
        marks=hostile(
            "plugins",
            "segzoo_components() returns one component, not a list",
            "plugin skipped",
            "segzoo_components() must return a list of components, got function",
        ),
    ),
    pytest.param(
        """
        @segzoo.hookimpl
        def segzoo_components():
            return [hostile_ok, "unet"]
    """,
        "'unet' is not a segzoo component: decorate it with @segzoo.component",
        marks=hostile(
            "plugins",
            "segzoo_components() returns a string among components",
            "plugin skipped whole",
            "'unet' is not a segzoo component: decorate it with @segzoo.component(...)",
        ),
    ),
    pytest.param(
        """
        @segzoo.component("loss", "hostile_bad_params", params=dict, summary="params is not a model")
        def bad(): ...

        @segzoo.hookimpl
        def segzoo_components():
            return [hostile_ok, bad]
    """,
        "params must be a segzoo.Params subclass",
        marks=hostile(
            "plugins",
            "component whose params is not a pydantic model",
            "plugin skipped whole",
            "component 'loss'/'hostile_bad_params': params must be a segzoo.Params subclass",
        ),
    ),
    pytest.param(
        """
        class Broken(segzoo.Params):
            width: int = __import__("pydantic").Field(default_factory=lambda: 1 / 0)

        @segzoo.component("loss", "hostile_broken_model", params=Broken, summary="defaults raise")
        def broken(): ...

        @segzoo.hookimpl
        def segzoo_components():
            return [hostile_ok, broken]
    """,
        "its params model Broken is broken (ZeroDivisionError",
        marks=hostile(
            "plugins",
            "component whose params model fails to build its defaults",
            "plugin skipped whole",
            "its params model Broken is broken (ZeroDivisionError: division by zero)",
        ),
    ),
    pytest.param(
        """
        class WrongDefault(segzoo.Params):
            base_channels: int = "wide"

        @segzoo.component("loss", "hostile_wrong_default", params=WrongDefault, summary="default of another type")
        def wrong(): ...

        @segzoo.hookimpl
        def segzoo_components():
            return [hostile_ok, wrong]
    """,
        "a default of its params model WrongDefault does not fit its own type (base_channels = 'wide'",
        marks=hostile(
            "plugins",
            "params model whose default is of the wrong type (`base_channels: int = 'wide'`)",
            "plugin skipped whole, the reason in `segzoo plugins` (it used to load and train)",
            "a default of its params model WrongDefault does not fit its own type (base_channels = 'wide': ...)",
            issue=22,
        ),
    ),
    pytest.param(
        """
        @segzoo.hookimpl
        def segzoo_requires():
            return 5
    """,
        "TypeError",
        marks=hostile("plugins", "segzoo_requires() returns a number", "plugin skipped", "TypeError: ..."),
    ),
]


@pytest.mark.parametrize(("source", "message"), CASES)
def test_a_hostile_plugin_is_reported_whole_and_segzoo_goes_on(
    source: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "segzoo_hostile_plugin.py").write_text(textwrap.dedent(GOOD_LOSS) + textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "segzoo_hostile_plugin", raising=False)
    fake = metadata.EntryPoint("hostile", "segzoo_hostile_plugin", ENTRY_POINT_GROUP)
    with pytest.warns(SegzooPluginWarning, match="plugin 'hostile'"):
        manager = PluginManager().load(entry_points=[*metadata.entry_points(group=ENTRY_POINT_GROUP), fake])
    sys.modules.pop("segzoo_hostile_plugin", None)
    (failed,) = [p for p in manager.plugins if p.name == "hostile"]
    assert message in failed.error
    assert ("loss", "hostile_ok") not in manager.registry  # whole or nothing
    assert manager.registry.get("architecture", "unet").plugin == "baselines"  # the others are untouched

    monkeypatch.setattr("segzoo._manager", manager)
    assert main(["plugins"]) == 0 and main(["list", "--kind", "architecture"]) == 0
    assert message in capsys.readouterr().out.partition("not loaded:")[2]
