"""Shared fixtures: every test logs to a temporary MLflow store and writes outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from tests import services

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "bundles"
ISBI = ROOT.parent / "shared" / "data" / "isbi2012"

# Set before anything imports mlflow, so no test can write mlflow.db or mlruns/ into the checkout.
_MLFLOW_DIR = tempfile.mkdtemp(prefix="segzoo-mlflow-")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_MLFLOW_DIR}/mlflow.db"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# Runs log CPU/GPU utilisation unless MLflow's switch says no; the suite's tiny runs gain nothing from the sampler.
os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"

TINY_DATA = ["--synthetic#num_images", "6", "--synthetic#size", "64", "--patch_size", "[64,64]"]
TINY = [*TINY_DATA, "--batch_size", "2"]


def skip_gpu_tests_without_cuda(items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped, with the reason, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False): run `pytest -m gpu` on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread() -> None:
    """One intra-op thread for a module's tiny trainings: two on two shared cores run them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def postgres_server() -> services.Postgres:
    """One throwaway PostgreSQL cluster for the session's service tests (``tests/services.py``)."""
    with services.postgres() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mlflow_server(postgres_server: services.Postgres, tmp_path_factory: pytest.TempPathFactory) -> services.MlflowServer:
    """A shared ``mlflow server``: PostgreSQL backend store, proxied artifacts, on 127.0.0.1."""
    backend = postgres_server.create_database("mlflow")
    with services.mlflow_server(backend, tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh MLflow store for one test."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_MLFLOW_DIR}/mlflow.db"


def overlay(configs: Path, name: str) -> str:
    """The ``--config_file`` of an evaluate/inference run: the overlay ``name`` merged over ``train.json``, as the README
    prints it."""
    return f"['{configs / 'train.json'}','{configs / name}']"


def run_bundle(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m monai.bundle ...`` in ``cwd`` (outputs land in ``cwd/runs``); fails the test with the log on error."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"bundle run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


# -- the hostile-input table (docs/hostile-inputs.md) is generated from the tests that mark their case --------------
HOSTILE_AREAS = ("data", "config", "CLI", "model tools", "plugins", "MLflow", "faults", "signals")
SINCE_FIRST_TABLE = 22  # the issue whose hostile tester tried cases beyond the first table's
HOSTILE_TABLE = ROOT / "docs" / "hostile-inputs.md"


def hostile(area: str, case: str, outcome: str, message: str = "", issue: int | None = None) -> pytest.MarkDecorator:
    """Mark a test (or a ``pytest.param``) as one row of the hostile-input table: what a user did, what segzoo does,
    the message they read (empty when nothing is refused), and the ``issue`` whose tester found the case (None: the
    first table's cases, written with the code)."""
    assert area in HOSTILE_AREAS, area
    return pytest.mark.hostile(area=area, case=case, outcome=outcome, message=message, issue=issue)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hostile-table", metavar="PATH", help="write the markdown table of the collected hostile-input cases to PATH"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hostile(area, case, outcome, message): a row of docs/hostile-inputs.md")


def hostile_rows(items: list[pytest.Item]) -> list[dict[str, str]]:
    """One row per marked case, in area order then test order; a case marked twice (parametrized tests) counts once."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for item in items:
        for mark in item.iter_markers("hostile"):
            row = {**mark.kwargs, "test": item.nodeid.split("[")[0]}
            rows.setdefault((row["area"], row["case"]), row)
    return sorted(rows.values(), key=lambda r: HOSTILE_AREAS.index(r["area"]))


def hostile_markdown(rows: list[dict[str, str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    counts = ", ".join(f"{area} {sum(r['area'] == area for r in rows)}" for area in HOSTILE_AREAS)
    later = sum(r.get("issue") == SINCE_FIRST_TABLE for r in rows)
    lines = [
        "# Hostile inputs",
        "",
        "Generated by `pytest --collect-only -q --hostile-table docs/hostile-inputs.md tests` from the tests that mark",
        "their case (`tests/conftest.py: hostile`); `tests/test_hostile_table.py` fails when this file is stale. Every row is",
        f"a test that passes when the suite does: {len(rows)} cases ({counts}).",
        "",
        "## How the cases were chosen",
        "",
        "The first cases were written with the code they test, so they cover what the code was written for. Issue 22's",
        "tester then used segzoo as a hostile but fair user would, outside those cases, and reported 123 cases by kind",
        "(73 handled well, 50 not): config files and values, data too small or out of range, checkpoints and other files",
        "given to the model tools, outputs that already exist, signals at each phase of each command, small CLI inputs.",
        "The next round took each kind the issue lists, tried its cases by hand (the empty, the truncated, the wrong type,",
        "the out-of-range ends, a file where a folder is expected and the reverse, a stop at each phase), fixed them by",
        f"kind and wrote a test per case or per kind: the {later} rows marked {SINCE_FIRST_TABLE} in the last column. The",
        "tester's full list of 123 was not available, so how many of its 50 now pass is not measured here. The signal",
        "rows come from a sweep (`tests/test_signals.py`, marked slow): SIGTERM at each phase of a training, a compare, a",
        "reproduction and a tuning study, each checked to leave no MLflow run RUNNING and to complete when rerun.",
        "",
        "| area | case | what happens | message (excerpt) | test | issue |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['area']} | {cell(r['case'])} | {cell(r['outcome'])} | {cell(r['message']) or '-'} | `{r['test']}` | "
              f"{r.get('issue') or '-'} |"
              for r in rows]
    return "\n".join(lines) + "\n"


# Module fixtures that train a bundle (a comparison, a short training): every test that uses one waits for a training.
TRAINING_FIXTURES = frozenset({"trained", "compared"})


def mark_trainings_slow(items: list[pytest.Item]) -> None:
    """``slow`` means a real training runs: a test that uses a training fixture is marked slow like one that trains itself,
    so ``pytest -m "not slow"`` stays the fast loop."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu_tests_without_cuda(items)
    mark_trainings_slow(items)
    path = config.getoption("--hostile-table")
    if path:
        Path(path).write_text(hostile_markdown(hostile_rows(items)))
