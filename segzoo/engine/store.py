"""The run store: what a bundle run leaves in its folder, and how to find runs under a ``runs_dir``.

A run folder (``runs_dir/run_name``) holds ``model.pt`` (best validation weights), ``last.pt`` (the last
epoch's network, optimizer and trainer state), ``history.json`` (every logged value per epoch),
``components.json`` (what was built) and ``mlflow_run_id.txt``. Every reader and writer of these files goes
through this module, so their names and formats are stated once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from segzoo.registry import SegzooError

BEST = "model.pt"
LAST = "last.pt"
HISTORY_FILE = "history.json"
RUN_ID_FILE = "mlflow_run_id.txt"
RUN_INFO_FILE = "components.json"  # what was built, so a checkpoint can say what it belongs to

History = dict[str, list[tuple[int, float]]]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file, so a crash never leaves ``path`` half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_history(run_dir: str | os.PathLike) -> History:
    """``{name: [(epoch, value), ...]}`` a run logged (train loss, validation metrics); empty if none yet."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return {}
    return {name: [(int(step), float(value)) for step, value in points] for name, points in json.loads(path.read_text()).items()}


def write_history(run_dir: str | os.PathLike, history: History) -> None:
    write_atomically(Path(run_dir) / HISTORY_FILE, json.dumps(history))


def best_value(run_dir: str | os.PathLike, metric: str) -> float | None:
    """The best (highest) value of ``metric`` the run logged, or None if it logged none."""
    return max((value for _, value in read_history(run_dir).get(metric, [])), default=None)


def latest_run(runs_dir: str | os.PathLike, filename: str) -> Path | None:
    """The newest run folder under ``runs_dir`` holding ``filename`` (by the file's modification time), if any."""
    found = sorted(Path(runs_dir).glob(f"*/{filename}"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def latest_checkpoint(runs_dir: str | os.PathLike, filename: str = BEST) -> str:
    """The newest ``filename`` under ``runs_dir`` (what ``evaluate``/``inference`` use when no checkpoint is given)."""
    run_dir = latest_run(runs_dir, filename)
    if run_dir is None:
        raise SegzooError(
            f"no trained model found under {runs_dir}/*/{filename}; train first "
            "(python -m monai.bundle run training --config_file .../train.json) or pass --checkpoint PATH"
        )
    return str(run_dir / filename)


def read_run_id(run_dir: str | os.PathLike) -> str | None:
    """The MLflow run id a run recorded, if it recorded one."""
    path = Path(run_dir) / RUN_ID_FILE
    return path.read_text().strip() if path.exists() else None


def write_run_id(run_dir: str | os.PathLike, run_id: str) -> None:
    write_atomically(Path(run_dir) / RUN_ID_FILE, run_id)


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What the run built (``components.json``): ``{role: {"name": ..., **parameters}}``; empty if unknown."""
    path = Path(run_dir) / RUN_INFO_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def write_run_info(run_dir: str | os.PathLike, info: dict[str, Any]) -> None:
    write_atomically(Path(run_dir) / RUN_INFO_FILE, json.dumps(info, default=str))
