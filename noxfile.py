"""Developer sessions: ``nox -s tests`` and ``nox -s bench``.

Both run in the environment nox itself runs in (``venv_backend="none"``): the project is heavy
(torch, MONAI, MLflow), so the sessions reuse the installed virtualenv instead of building a new
one each time. Run them as ``.venv/bin/nox -s tests`` so that environment is the project's.
Arguments after ``--`` go to pytest or to the bench (``nox -s bench -- --quick``).
"""

from __future__ import annotations

import os
import sys

import nox

nox.options.sessions = ["tests"]


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite."""
    session.run(sys.executable, "-m", "pytest", "-q", *session.posargs, external=True)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Benchmark of every registered architecture; writes .bench/bench.md and .bench/bench.json (about 13 minutes on 2 CPU
    cores, --quick 4; ``-- --device cuda`` on a GPU writes bench-cuda.md and bench-cuda.json).

    OpenMP threads sleep instead of spinning while they wait (OMP_WAIT_POLICY=PASSIVE) unless the caller
    chooses otherwise: on a shared 2-core machine, spinning threads that lose their core to another process
    slow networks of many small kernels several times more than U-Net, which makes the ratios meaningless.
    """
    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    session.run(sys.executable, "benchmarks/bench.py", *session.posargs, env=env, external=True)
