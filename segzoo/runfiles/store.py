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
LOGGING = "logging"  # present while a finished training logs its end-of-run artifacts (model, curves, panel) to MLflow
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


class UnreadableCheckpointError(SegzooError):
    """A checkpoint file that is truncated, corrupt or not a PyTorch state saved by segzoo."""


def read_checkpoint(path: str | os.PathLike) -> Any:
    """What the checkpoint ``path`` holds, loaded as untrusted input: tensors and plain containers only
    (``weights_only=True``, so the file can run no code). A truncated, random or foreign file is an
    :class:`UnreadableCheckpointError` naming it; the advice is never to load it with fewer checks."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UnreadableCheckpointError(
            f"checkpoint {path} does not exist; pass a run folder or a .pt file a training wrote"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means the file is not a checkpoint segzoo wrote
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
        if "weights_only" in str(exc) or "WeightsUnpickler" in str(exc):  # never pass on torch's advice to load it unchecked
            reason = "it holds something other than tensors and plain containers"
        raise UnreadableCheckpointError(
            f"checkpoint {path} cannot be read: it is truncated, corrupt or not a PyTorch weights file ({reason}). Pass the "
            "model.pt or last.pt a segzoo training wrote, or copy it again if it was cut short"
        ) from None


def checkpoint_weights(path: str | os.PathLike, key: str = "model") -> dict[str, torch.Tensor]:
    """The weights (``{name: tensor}``) of a checkpoint: a bare state dict, or the ``key`` entry of a training state
    (``last.pt``); anything else is an :class:`UnreadableCheckpointError` naming the file."""
    state = read_checkpoint(path)
    state = state.get(key, state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnreadableCheckpointError(f"checkpoint {path} holds no network weights (a {type(state).__name__}, not a "
                                        "{name: tensor} state dict); pass the model.pt or last.pt a segzoo training wrote")
    return state


def read_settings(run_dir: str | os.PathLike) -> dict[str, str] | None:
    """What the run was started to train (``settings.json``, checked on resume); None for a run without the file."""
    path = Path(run_dir) / SETTINGS_FILE
    return (
        read_json(path, "the settings the run was started with", "Delete it to resume without this check.")
        if path.exists()
        else None
    )


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
    trainer = read_checkpoint(run / LAST)["trainer"]
    return trainer["iteration"] >= trainer["epoch_length"] * trainer["max_epochs"]


def logging_interrupted(run: Path) -> bool:
    """Whether ``run`` finished training but was stopped while logging its end-of-run artifacts (``--resume`` logs them)."""
    return (run / FINISHED).exists() and (run / LOGGING).exists()


def resumable(run: Path) -> bool:
    """Whether ``--resume`` can continue ``run``: an epoch saved and the training unfinished, or its end-of-run logging
    interrupted."""
    return (run / LAST).exists() and (not is_finished(run) or logging_interrupted(run))


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
    for n in range(1, 10_000):
        candidate = root / (run_name if n == 1 else f"{run_name}-{n}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            if root.is_dir():
                continue
            raise SegzooError(f"--runs_dir {root}: it (or a folder above it) is a file, not a folder; pass a folder") from None
        except OSError as exc:
            raise SegzooError(f"--runs_dir {root}: cannot create the run folder {candidate} ({exc.strerror}); "
                              "pass a --runs_dir you can write to") from None
    raise SegzooError(f"{root} already holds {run_name} and 9999 numbered variants; pass another --run_name")


DATA_FILE = "data.txt"  # in an evaluation's folder: which data its results are of


def evaluation_dir(checkpoint: str | os.PathLike, dataset_dir: str | None, synthetic: dict[str, Any] | None = None, *part: str,
                   folder: str = "eval") -> str:
    """The folder of an evaluation of ``checkpoint``'s run on its data (``dataset_dir`` and the ``part`` of it, or the
    ``synthetic`` generator's settings): ``RUN/eval`` when that is free or holds results of the same data, else a folder
    of its own beside it (``eval-<data folder>``, then ``-2``...), so an evaluation on other data never replaces another's
    results. The folder records its data (``data.txt``), and is printed."""
    import json

    run = Path(checkpoint).parent
    source = str(Path(dataset_dir).resolve()) if dataset_dir else f"synthetic {json.dumps(synthetic or {}, sort_keys=True)}"
    data = " ".join([source, *map(str, part)])
    label = Path(dataset_dir).name if dataset_dir else "synthetic"
    for n in range(1, 10_000):
        candidate = run / (folder if n == 1 else f"{folder}-{label}" if n == 2 else f"{folder}-{label}-{n - 1}")
        record = candidate / DATA_FILE
        same = record.is_file() and record.read_text().strip() == data
        if same or not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            if int(os.environ.get("RANK", "0")) == 0:
                atomic_write_text(record, data + "\n")
            print(f"evaluation of {data} -> {candidate}")
            return str(candidate)
    raise SegzooError(f"{run} holds 9999 evaluations; remove some of its {folder}-* folders")


def fresh_output_dir(path: str | os.PathLike) -> str:
    """``path`` if it does not exist or is an empty folder, else the first free ``path-2``, ``path-3``...: each inference
    writes into a folder of its own, never among an earlier call's masks. The folder is created and printed."""
    path = Path(path)
    for n in range(1, 10_000):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            if not candidate.is_dir() or any(candidate.iterdir()):
                continue
        except OSError as exc:
            raise SegzooError(
                f"--predictions_dir {candidate}: cannot create it ({exc.strerror}); pass a folder you can write to"
            ) from None
        print(f"masks -> {candidate}")
        return str(candidate)
    raise SegzooError(f"{path} and 9999 numbered variants exist; pass another --predictions_dir")


def resume_dir(runs_dir: str | os.PathLike, resume: str | bool) -> Path:
    """The run ``--resume`` names: ``true`` for the newest run when it is unfinished, or a run folder or name.

    A finished run (unless its end-of-run logging was interrupted: the resume logs what is missing), a run without
    ``last.pt`` and an ambiguous ``true`` are refused, listing the runs that can be resumed.
    """
    root = Path(runs_dir)
    if isinstance(resume, bool) or str(resume).strip().lower() in TRUE_WORDS:
        runs = runs_newest_first(root)
        if runs and resumable(runs[0]):
            return runs[0]
        newest = (
            f"the newest run, {runs[0]}, {'finished' if runs and is_finished(runs[0]) else 'has no completed epoch'}"
            if runs
            else f"there is no run under {root}"
        )
        raise SegzooError(f"--resume true: {newest}; {_candidates(root)}")
    named = Path(str(resume)).expanduser()
    run = named if named.is_dir() else root / str(resume)
    if not run.is_dir():
        raise SegzooError(f"--resume {resume}: no run folder {named} or {run}; {_candidates(root)}")
    if is_finished(run) and not logging_interrupted(run):
        raise SegzooError(f"--resume {resume}: {run} finished its training and is never reopened; {_candidates(root)}")
    if not (run / LAST).exists():
        raise SegzooError(f"--resume {resume}: {run} has no {LAST} (no epoch completed), "
                          "so there is nothing to resume; start a new run")
    return run


def _candidates(root: Path) -> str:
    unfinished = [p for p in runs_newest_first(root) if resumable(p)]
    if not unfinished:
        return "no run there can be resumed: start a new training without --resume"
    return (
        "runs that can be resumed (newest first): "
        + ", ".join(str(p) for p in unfinished[:10])
        + ". Pass one as --resume RUN_DIR"
    )


def resume_requested(resume: bool | str | None) -> bool:
    """Whether ``--resume`` asks for a resume: anything but false/no/off/0/null/empty (true, or a run folder or name)."""
    return not (
        resume is None or resume is False or (isinstance(resume, str) and resume.strip().lower() in FALSE_WORDS + NONE_WORDS)
    )


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
            raise SegzooError(f"--from_run {run}: {folder / filename} does not exist; "
                              f"pass a run folder that holds a trained {filename}")
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
