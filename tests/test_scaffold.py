"""``segzoo new-plugin``: the generated package installs and passes its own tests as generated; bad requests are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import segzoo
from segzoo.cli import main
from segzoo.errors import SegzooError
from segzoo.scaffold import compatible_range, new_plugin
from tests.test_third_party_plugin import pip_installed, run

NAME = "scaffold_probe"  # registered while the test runs, so it must not clash with any real component


def test_generated_package_installs_and_passes_its_own_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", NAME, "--dir", str(tmp_path)]) == 0
    root = tmp_path / "segzoo-scaffold-probe"
    assert str(root) in capsys.readouterr().out
    with pip_installed(root, "segzoo-scaffold-probe"):
        run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)


def test_generated_plugin_declares_the_running_segzoo_minor_up_to_the_next_major(tmp_path: Path) -> None:
    assert compatible_range("0.1.0") == ">=0.1,<1"
    assert compatible_range("2.3.1") == ">=2.3,<3"
    declared = compatible_range(segzoo.__version__)
    assert Version(segzoo.__version__) in SpecifierSet(declared)
    root = new_plugin("probe_net", tmp_path)
    assert f'return "{declared}"' in (root / "src" / "segzoo_probe_net" / "plugin.py").read_text()
    assert f'"segzoo{declared}"' in (root / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("My-Net", "must be a lowercase Python identifier"),
        ("unet", "architecture 'unet' is already registered by plugin 'baselines'"),
    ],
)
def test_a_name_that_cannot_work_is_refused(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(SegzooError, match=message):
        new_plugin(name, tmp_path)
    assert not any(tmp_path.iterdir())


def test_an_existing_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "segzoo-probe-net").mkdir()
    with pytest.raises(SegzooError, match="already exists"):
        new_plugin("probe_net", tmp_path)
