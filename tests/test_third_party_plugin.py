"""A third-party plugin package, installed as users install one, is listed and trains through a bundle by name alone.

The package is ``plugins/segzoo-multiresunet``, which is not part of segzoo's install: the test installs
it into this environment (offline, no dependencies) and uninstalls it afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from tests.conftest import BUNDLES, ROOT, run_bundle

PLUGIN_SOURCE = ROOT / "plugins" / "segzoo-multiresunet"
# Smaller than conftest.TINY: MultiResUNet's paper preset is slow on CPU, and 32 is a multiple of its stride 16.
TINY_32 = ["--synthetic#num_images", "4", "--synthetic#size", "32", "--patch_size", "[32,32]", "--batch_size", "2"]
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")


def run(*command: str | os.PathLike, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command to completion; a failure shows its output instead of only its exit status."""
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@contextmanager
def pip_installed(source: Path, distribution: str) -> Iterator[None]:
    """``source`` installed into this interpreter's environment for the duration, then uninstalled.

    No dependencies, no build isolation and no index: it works offline, with the environment's setuptools. The
    environment is shared by every pytest-xdist worker (and any other test run on this machine), so one process at a
    time holds it from install to uninstall: another worker waits instead of uninstalling it under a running test.
    """
    with FileLock(Path(tempfile.gettempdir()) / f"segzoo-pip-{distribution}.lock"):
        run(*PIP, "install", "--no-deps", "--no-build-isolation", "--no-index", source)
        try:
            yield
        finally:
            run(*PIP, "uninstall", "--yes", distribution)


@pytest.fixture(scope="module")
def multiresunet_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Built from a copy: building in place would leave build/ and *.egg-info in the checkout.
    source = tmp_path_factory.mktemp("plugin") / PLUGIN_SOURCE.name
    shutil.copytree(PLUGIN_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    with pip_installed(source, "segzoo-multiresunet"):
        yield


def test_segzoo_list_shows_the_architecture_with_its_plugin_and_version(multiresunet_installed: None) -> None:
    rows = json.loads(run(sys.executable, "-m", "segzoo", "list", "--kind", "architecture", "--json").stdout)
    row = next((r for r in rows if r["name"] == "multiresunet"), None)
    assert row is not None, f"multiresunet not listed; architectures: {[r['name'] for r in rows]}"
    assert (row["plugin"], row["plugin_version"]) == ("multiresunet", "0.1.0")


@pytest.mark.slow
def test_trains_one_epoch_through_the_pyconvunet_bundle_by_name_override_alone(
    multiresunet_installed: None, tracking_uri: str, tmp_path: Path
) -> None:
    import mlflow

    train_json = BUNDLES / "pyconvunet" / "configs" / "train.json"
    run_bundle(
        ["run", "training", "--config_file", str(train_json), "--arch", "multiresunet", "--epochs", "1", *TINY_32], cwd=tmp_path
    )

    assert len(list(tmp_path.glob("runs/pyconvunet/*/model.pt"))) == 1
    client = mlflow.MlflowClient(tracking_uri)
    (run_info,) = client.search_runs([client.get_experiment_by_name("pyconvunet").experiment_id])
    assert run_info.info.status == "FINISHED"
    assert "val_miou_with_background" in run_info.data.metrics
    assert run_info.data.params["architecture"] == "multiresunet"
    assert run_info.data.tags["segzoo.plugin.multiresunet"] == "0.1.0"
