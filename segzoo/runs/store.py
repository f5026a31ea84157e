"""The run store: what a bundle run leaves in its folder, and how to find runs under a ``runs_dir``.

A run folder (``runs_dir/run_name``) holds ``model.pt`` (best validation weights), ``last.pt`` (the last
epoch's whole training state), ``history.json`` (every logged value per epoch), ``components.json`` (what was
built), ``settings.json`` (what it trains, checked on resume), ``mlflow_run_id.txt`` and, once its training
ended (all epochs, or an early stop), the marker ``finished``. Every reader and writer of these files goes
through this module, so their names and formats are stated once; every write is atomic (:mod:`segzoo.files`).

A new run never takes an existing folder; only a folder with a ``last.pt`` and no ``finished`` can be resumed,
so a finished run is never reopened for training; "the latest model" is refused when the newest run has none.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from segzoo.errors import SegzooError
from segzoo.files import atomic_write_json, atomic_write_text, read_json
from segzoo.overrides import FALSE_WORDS, NONE_WORDS, TRUE_WORDS

BEST = "model.pt"
LAST = "last.pt"
FINISHED = "finished"
HISTORY_FILE = "history.json"
RUN_ID_FILE = "mlflow_run_id.txt"
RUN_INFO_FILE = "components.json"  # what was built, so a checkpoint can say what it belongs to
SETTINGS_FILE = "settings.json"

History = dict[str, list[tuple[int, float]]]


def is_main_process() -> bool:
    """Whether this process writes the run's files: rank 0 of a distributed run (its process group, else torchrun's
    ``RANK``), or a run of one process. Other ranks train the same run and leave its files to rank 0."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def read_history(run_dir: str | os.PathLike) -> History:
    """``{name: [(epoch, value), ...]}`` a run logged (train loss, validation metrics); empty if none yet."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return {}
    saved = read_json(path, "the run's metric history", "Delete it to go on without the earlier curves, or start a new run.")
    return {name: [(int(step), float(value)) for step, value in points] for name, points in saved.items()}


def write_history(run_dir: str | os.PathLike, history: History) -> None:
    atomic_write_json(Path(run_dir) / HISTORY_FILE, history)


def best_value(run_dir: str | os.PathLike, metric: str) -> float | None:
    """The best (highest) value of ``metric`` the run logged, or None if it logged none."""
    return max((value for _, value in read_history(run_dir).get(metric, [])), default=None)


def read_run_id(run_dir: str | os.PathLike) -> str | None:
    """The MLflow run id a run recorded, if it recorded one."""
    path = Path(run_dir) / RUN_ID_FILE
    return path.read_text().strip() if path.exists() else None


def write_run_id(run_dir: str | os.PathLike, run_id: str) -> None:
    atomic_write_text(Path(run_dir) / RUN_ID_FILE, run_id)


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What the run built (``components.json``): ``{role: {"name": ..., **parameters}}``; empty if unknown."""
    path = Path(run_dir) / RUN_INFO_FILE
    return read_json(path, "what the run built", "Delete it; only messages use it.") if path.exists() else {}


def write_run_info(run_dir: str | os.PathLike, info: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / RUN_INFO_FILE, info, default=str)


def read_settings(run_dir: str | os.PathLike) -> dict[str, str] | None:
    """What the run was started to train (``settings.json``, checked on resume); None for a run without the file."""
    path = Path(run_dir) / SETTINGS_FILE
    return read_json(path, "the settings the run was started with", "Delete it to resume without this check.") if path.exists() else None


def write_settings(run_dir: str | os.PathLike, settings: dict[str, str]) -> None:
    atomic_write_json(Path(run_dir) / SETTINGS_FILE, settings, indent=1)


def mark_finished(run_dir: str | os.PathLike, epoch: int) -> None:
    """The run's training ended (all epochs, or an early stop) after ``epoch``: it is never resumed."""
    atomic_write_text(Path(run_dir) / FINISHED, f"{epoch}\n")


def is_finished(run: Path) -> bool:
    """Whether the training of ``run`` ended (its marker, or a ``last.pt`` of every epoch from before markers existed)."""
    if (run / FINISHED).exists():
        return True
    if not (run / LAST).exists():
        return False
    trainer = torch.load(run / LAST, map_location="cpu", weights_only=True)["trainer"]
    return trainer["iteration"] >= trainer["epoch_length"] * trainer["max_epochs"]


# what a training writes in its folder; evaluation and inference write in sub-folders, so they do not make a run "newer"
TRAINING_FILES = (LAST, BEST, FINISHED, HISTORY_FILE, RUN_ID_FILE, RUN_INFO_FILE)


def _last_trained(run: Path) -> float:
    times = [f.stat().st_mtime for f in (run / name for name in TRAINING_FILES) if f.exists()]
    return max(times, default=run.stat().st_mtime)


def runs_newest_first(runs_dir: str | os.PathLike) -> list[Path]:
    """The run folders under ``runs_dir``, the most recently trained first (a resumed run counts as recent)."""
    return sorted((p for p in Path(runs_dir).glob("*") if p.is_dir()), key=_last_trained, reverse=True)


def new_run_dir(runs_dir: str | os.PathLike, run_name: str) -> Path:
    """``runs_dir/run_name``, created now; a name already taken (two runs started in the same second) gets ``-2``, ``-3``...

    Other ranks of a distributed run use rank 0's name as it is (rank 0 created it).
    """
    root = Path(runs_dir)
    if not is_main_process():
        return root / run_name
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = root / (run_name if n == 1 else f"{run_name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise SegzooError(f"{root} already holds {run_name} and 9999 numbered variants; pass another --run_name")


def resume_dir(runs_dir: str | os.PathLike, resume: str | bool) -> Path:
    """The run ``--resume`` names: ``true`` for the newest run when it is unfinished, or a run folder or name.

    A finished run, a run without ``last.pt`` and an ambiguous ``true`` are refused, listing the runs that can be resumed.
    """
    root = Path(runs_dir)
    if isinstance(resume, bool) or str(resume).strip().lower() in TRUE_WORDS:
        runs = runs_newest_first(root)
        if runs and (runs[0] / LAST).exists() and not is_finished(runs[0]):
            return runs[0]
        newest = f"the newest run, {runs[0]}, {'finished' if runs and is_finished(runs[0]) else 'has no completed epoch'}" if runs else f"there is no run under {root}"
        raise SegzooError(f"--resume true: {newest}; {_candidates(root)}")
    named = Path(str(resume)).expanduser()
    run = named if named.is_dir() else root / str(resume)
    if not run.is_dir():
        raise SegzooError(f"--resume {resume}: no run folder {named} or {run}; {_candidates(root)}")
    if is_finished(run):
        raise SegzooError(f"--resume {resume}: {run} finished its training and is never reopened; {_candidates(root)}")
    if not (run / LAST).exists():
        raise SegzooError(f"--resume {resume}: {run} has no {LAST} (no epoch completed), so there is nothing to resume; start a new run")
    return run


def _candidates(root: Path) -> str:
    unfinished = [p for p in runs_newest_first(root) if (p / LAST).exists() and not is_finished(p)]
    if not unfinished:
        return "no run there can be resumed: start a new training without --resume"
    return "runs that can be resumed (newest first): " + ", ".join(str(p) for p in unfinished[:10]) + ". Pass one as --resume RUN_DIR"


def resume_requested(resume: bool | str | None) -> bool:
    """Whether ``--resume`` asks for a resume: anything but false/no/off/0/null/empty (true, or a run folder or name)."""
    return not (resume is None or resume is False or (isinstance(resume, str) and resume.strip().lower() in FALSE_WORDS + NONE_WORDS))


def output_dir(runs_dir: str, run_name: str, resume: bool | str | None = None) -> str:
    """The run folder of a training: a new one (see :func:`new_run_dir`), or with ``resume`` the one it names."""
    return str(resume_dir(runs_dir, resume) if resume_requested(resume) else new_run_dir(runs_dir, run_name))


def run_checkpoint(runs_dir: str | os.PathLike, run: str | None = None, filename: str = BEST) -> str:
    """``filename`` of the run ``run`` (a folder or a name under ``runs_dir``), or of the newest run when none is named.

    The newest run having no ``filename`` is an error, never a silent fall-back to an older run's model.
    """
    root = Path(runs_dir)
    if run:
        folder = Path(run) if Path(run).is_dir() else root / run
        if not (folder / filename).is_file():
            raise SegzooError(f"--from_run {run}: {folder / filename} does not exist; pass a run folder that holds a trained {filename}")
        return str(folder / filename)
    runs = runs_newest_first(root)
    if not runs:
        raise SegzooError(
            f"no trained model found under {root}/*/{filename}; train first "
            "(python -m monai.bundle run training --config_file .../train.json) or pass --checkpoint PATH"
        )
    if not (runs[0] / filename).is_file():
        with_model = [str(p) for p in runs if (p / filename).is_file()][:5]
        raise SegzooError(
            f"the newest run, {runs[0]}, has no {filename} (it failed or is still training), so 'the latest model' is ambiguous. "
            f"Pass --from_run RUN_DIR (or NAME) or --checkpoint PATH; runs with a {filename}: {', '.join(with_model) or 'none'}"
        )
    return str(runs[0] / filename)
