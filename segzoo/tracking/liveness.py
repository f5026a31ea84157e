"""A run that dies is never left RUNNING in MLflow.

A death the process sees (an exception, Ctrl-C, ``SIGTERM`` from a scheduler or ``kill``) closes the run as
FAILED or KILLED (:class:`segzoo.engine.MLflowTracker`; SIGTERM is turned into :class:`Terminated` for that).
A death it cannot see (``kill -9``, a lost machine) leaves the run RUNNING: every run carries its host and
process id as tags, and the next training in the experiment on that host closes such runs whose process is
gone as KILLED, with the tag ``segzoo.stale`` saying why.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import warnings
from collections.abc import Callable
from typing import Any

HOST_TAG, PID_TAG, STALE_TAG = "segzoo.host", "segzoo.pid", "segzoo.stale"


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; raised in the main thread so the run is closed as KILLED, like Ctrl-C."""


def owner_tags() -> dict[str, str]:
    """Tags naming the process that runs a training, so a later start can tell whether it is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def close_stale_runs(client: Any, experiment_id: str) -> list[str]:
    """Close as KILLED the RUNNING runs of this host whose process has ended; returns their ids."""
    host = socket.gethostname()
    closed = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=500):
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit() or process_alive(int(tags[PID_TAG])):
            continue
        reason = f"process {tags[PID_TAG]} on {host} ended without closing the run (killed or lost); closed by pid {os.getpid()}"
        client.set_tag(run.info.run_id, STALE_TAG, reason)
        client.set_terminated(run.info.run_id, "KILLED")
        warnings.warn(f"MLflow run {run.info.run_name} ({run.info.run_id}) was left RUNNING: {reason}", RuntimeWarning, stacklevel=2)
        closed.append(run.info.run_id)
    return closed


def raise_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into :class:`Terminated` in the main thread (where the default would end Python with no cleanup);
    returns the function that restores the previous handler. A no-op outside the main thread or under a custom handler."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, terminated)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)
