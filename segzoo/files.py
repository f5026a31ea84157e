"""Files that a crash cannot tear: every file segzoo writes goes through :func:`atomic_open`.

A file is written to a temporary name in its own folder, flushed and fsynced, then renamed over the
target with ``os.replace`` (atomic on POSIX and Windows): a reader, or a run resumed after ``kill -9``,
sees the old file or the new one, never half of one. :func:`read_json` names a file that is torn anyway
(written by another tool, a full disk) and says what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from segzoo.errors import SegzooError


class CorruptFileError(SegzooError, ValueError):
    """A file segzoo needs cannot be parsed; the message names it and the fix."""


class OverwriteError(SegzooError, FileExistsError):
    """A command would write over a file or folder it did not create."""


def refuse_overwrite(path: str | os.PathLike, overwrite: bool = False, reads: Iterable[str | os.PathLike] = ()) -> Path:
    """``path``, checked to be free for a command to write: a file, or a folder that is not empty, is refused naming it and
    ``--overwrite`` (unless ``overwrite``); a file the command ``reads`` (its input checkpoint) is refused even then.

    Every command that writes a result a user may have made or edited (export, pack, evaluation) calls this first,
    so nothing is lost without the user asking for it.
    """
    path = Path(path)
    if any(path.resolve() == Path(source).resolve() for source in reads):
        raise OverwriteError(f"{path} is the file this command reads; writing over it would destroy it. Pass another --output")
    taken = path.is_file() or (path.is_dir() and any(path.iterdir())) or (path.exists() and not path.is_dir())
    if taken and not overwrite:
        what = "a folder that is not empty" if path.is_dir() else "a file"
        raise OverwriteError(f"{path} exists ({what}) and this command did not create it; pass --overwrite to replace it, "
                             "or another --output")
    return path


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path`` in one step.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a run's files are as readable as any other file the user writes
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after ``os.replace`` could otherwise undo it); a no-op where
    folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any, **dumps: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, **dumps))


def read_json(path: str | os.PathLike, what: str, fix: str) -> Any:
    """The JSON in ``path``; an empty or torn file raises :class:`CorruptFileError` naming it, ``what`` it holds and ``fix``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        state = "is empty" if not text.strip() else f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        raise CorruptFileError(f"{path} ({what}) {state}; it was torn by a crash or edited by hand. {fix}") from None
