"""Kill points for fault-injection tests: ``SEGZOO_FAULT=POINT:N`` ends the process there as ``kill -9`` would, and
``SEGZOO_FAULT=POINT:N:sigterm`` sends it SIGTERM there instead (as a scheduler or ``kill`` would).

Points: ``started:0`` (the MLflow run opened, nothing trained), ``iteration:N`` (after global iteration N),
``after_validation:E`` (epoch E validated and logged, its ``last.pt`` not yet written), ``after_checkpoint:E`` (epoch
E's ``last.pt`` on disk), ``after_epoch:E`` (every handler of epoch E done), ``end_of_run:E`` (training over after E
epochs, curves and panel logged, the MLflow model not yet), ``evaluated:1`` (an evaluation's metrics logged, its run
not yet closed: what ``segzoo compare`` and ``reproduce`` run after each training). ``os._exit`` skips every
``finally``, ``atexit`` and MLflow call, like a real kill.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "SEGZOO_FAULT"
FAULT_EXIT_CODE = 137  # what a shell reports for SIGKILL


def fault_point(point: str, n: int) -> None:
    """End the process at once (or send it SIGTERM) if ``SEGZOO_FAULT`` names this point and count."""
    spec = os.environ.get(FAULT_ENV)
    if spec == f"{point}:{n}":
        os._exit(FAULT_EXIT_CODE)
    if spec == f"{point}:{n}:sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
