"""The base of every error a user can fix, and how it is shown: as the last line they read, no MONAI traceback after it.

MONAI's bundle runner wraps every exception raised while evaluating a config expression in
``RuntimeError: Failed to evaluate ConfigExpression ...``, so the message that names the key and
the fix ends up mid-traceback. :func:`install_excepthook` shows a :class:`SegzooError` found
anywhere in the chain as one ``segzoo: error: ...`` message instead (``SEGZOO_TRACEBACK=1`` prints
the traceback above it); every other exception is shown as Python shows it.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType


class SegzooError(Exception):
    """Base class of the errors a user can fix by changing a config or an install; the message names the fix."""


def user_error(exc: BaseException | None) -> SegzooError | None:
    """The :class:`SegzooError` that caused ``exc`` (itself, or one in its ``__cause__``/``__context__`` chain), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SegzooError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def report(exc: BaseException) -> str:
    """``segzoo: error: <message>`` for a user's error, for the last line of the output."""
    return f"segzoo: error: {user_error(exc) or exc}"


def _close_progress_bars() -> None:
    """Close open tqdm bars now: closed at exit instead, they would print after the message."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if isinstance(exc, KeyboardInterrupt) or user_error(exc) is not None:
        _close_progress_bars()
    if isinstance(exc, KeyboardInterrupt):
        print(f"segzoo: stopped ({exc or 'Ctrl-C'}); a bundle training continues with --resume RUN_DIR; "
              "segzoo compare, tune and reproduce continue when the same command is run again", file=sys.stderr)
        return
    if user_error(exc) is None:
        _previous(kind, exc, tb)
        return
    if os.environ.get("SEGZOO_TRACEBACK"):
        traceback.print_exception(kind, exc, tb)
    print(report(exc), file=sys.stderr)


_previous = sys.excepthook


def install_excepthook() -> None:
    """Show uncaught user errors as one message (idempotent; other exceptions keep the hook that was there)."""
    global _previous
    if sys.excepthook is not _excepthook:
        _previous, sys.excepthook = sys.excepthook, _excepthook
