"""A run that dies is never left RUNNING in MLflow.

A death the process sees (an exception, Ctrl-C, ``SIGTERM`` from a scheduler or ``kill``) closes the run as
FAILED or KILLED (:class:`segzoo.engine.MLflowTracker`, :func:`segzoo.tracking.client.closed_with_status`; SIGTERM is turned into
:class:`~segzoo.errors.Terminated` for that, process-wide, before anything starts).
A death it cannot see (``kill -9``, a lost machine) leaves the run RUNNING: every run carries its host and
process id as tags, and the next training in the experiment on that host closes such runs whose process is
gone as KILLED, with the tag ``segzoo.stale`` saying why.
"""

from __future__ import annotations

import os
import socket
import warnings
from typing import Any

HOST_TAG, PID_TAG, STALE_TAG = "segzoo.host", "segzoo.pid", "segzoo.stale"


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
        warnings.warn(
            f"MLflow run {run.info.run_name} ({run.info.run_id}) was left RUNNING: {reason}", RuntimeWarning, stacklevel=2
        )
        closed.append(run.info.run_id)
    return closed
