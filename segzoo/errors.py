"""The base of every error a user can fix, and how it is shown: as the last line they read, no MONAI traceback after it.

MONAI's bundle runner wraps every exception raised while evaluating a config expression in
``RuntimeError: Failed to evaluate ConfigExpression ...``, so the message that names the key and
the fix ends up mid-traceback. :func:`install_excepthook` shows a :class:`SegzooError` found
anywhere in the chain as one ``segzoo: error: ...`` message instead (``SEGZOO_TRACEBACK=1`` prints
the traceback above it); every other exception is shown as Python shows it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any


class SegzooError(Exception):
    """Base class of the errors a user can fix by changing a config or an install; the message names the fix."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; raised in the main thread so every open run is closed as KILLED, like Ctrl-C."""


def raise_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into :class:`Terminated` in the main thread (where the default would end Python with no cleanup,
    leaving MLflow runs RUNNING); returns the function that restores the previous handler. A no-op outside the main
    thread or under a custom handler. Installed once per process, before anything starts: by the ``segzoo`` command
    and by importing :mod:`segzoo.engine` (every bundle config does first), so a stop in any phase is handled."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, terminated)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


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


# How to continue after Ctrl-C or SIGTERM, read from the disk when the stop comes: a command's advice (compare, tune,
# reproduce: run it again) wins over a training's (resume its folder, if it saved an epoch).
_stop_advice: dict[str, Callable[[], str]] = {}


def advise_on_stop(advice: Callable[[], str], scope: str = "run") -> None:
    """Say how to continue when the process is stopped: ``advice()`` is called at the stop, so it can check the disk.
    ``scope="command"`` (a whole ``segzoo`` command) wins over ``"run"`` (one training inside it)."""
    _stop_advice[scope] = advice


# What must run when the process ends on an uncaught error or a stop (close MLflow runs still RUNNING), whoever opened them.
_on_failure: list[Callable[[BaseException], None]] = []


def on_failure(cleanup: Callable[[BaseException], None]) -> None:
    """Call ``cleanup(exc)`` when the process ends on an error or a stop (once per function, however often it is added)."""
    if cleanup not in _on_failure:
        _on_failure.append(cleanup)


def run_failure_cleanups(exc: BaseException) -> None:
    """Run the :func:`on_failure` clean-ups; a clean-up that fails is skipped, so the user still reads the real cause."""
    for cleanup in _on_failure:
        try:
            cleanup(exc)
        except Exception:  # noqa: BLE001, S110 - the original error is what the user must see
            pass


def stop_message(exc: BaseException) -> str:
    """The one line printed on Ctrl-C or SIGTERM: what stopped, and how to continue from what is on disk now (open
    progress bars are closed first, so the line is the last one)."""
    _close_progress_bars()
    advice = _stop_advice.get("command") or _stop_advice.get("run")
    try:
        how = advice() if advice is not None else "nothing was saved yet: run the command again"
    except Exception as err:  # noqa: BLE001 - the stop line must print even when the disk cannot be read
        how = f"run the command again (what was saved could not be checked: {err})"
    return f"segzoo: stopped ({exc or 'Ctrl-C'}); {how}"


def _close_progress_bars() -> None:
    """Close open tqdm bars now: closed at exit instead, they would print after the message."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    run_failure_cleanups(exc)
    if user_error(exc) is not None:
        _close_progress_bars()
    if isinstance(exc, KeyboardInterrupt):
        print(stop_message(exc), file=sys.stderr)
        return
    if user_error(exc) is None:
        _previous(kind, exc, tb)
        return
    if os.environ.get("SEGZOO_TRACEBACK"):
        traceback.print_exception(kind, exc, tb)
    print(report(exc), file=sys.stderr)


_previous = sys.excepthook


def _not_a_stop(record: logging.LogRecord) -> bool:
    """Drop a log record carrying a Ctrl-C/SIGTERM traceback (MONAI's StatsHandler logs one on the root logger): a stop
    is reported once, by :func:`stop_message`."""
    return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


def install_excepthook() -> None:
    """Show uncaught user errors as one message, and a stop as one line (idempotent; other exceptions keep the hook
    that was there)."""
    global _previous
    if sys.excepthook is not _excepthook:
        _previous, sys.excepthook = sys.excepthook, _excepthook
    if _not_a_stop not in logging.getLogger().filters:
        logging.getLogger().addFilter(_not_a_stop)
