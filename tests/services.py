"""Real services for the group tests: a throwaway PostgreSQL cluster and an ``mlflow server`` on it, on 127.0.0.1.

Each is started by a session fixture (``tests/conftest.py``), bounded in time, and stopped and deleted afterwards.
A machine without PostgreSQL fails these tests with the command that installs it; they are never skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # Debian's layout, newest version first
START_TIMEOUT_S = 60


def free_port() -> int:
    """A TCP port nobody listens on now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_tool(name: str) -> str:
    """The path of PostgreSQL's ``initdb``/``pg_ctl``; fails the test (not skips) with the fix when it is missing."""
    for folder in [*PG_BIN_DIRS, *(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep))]:
        if (folder / name).is_file():
            return str(folder / name)
    pytest.fail(f"PostgreSQL's {name} is not installed, and the service tests need it: run `apt-get install -y postgresql` "
                "(Debian/Ubuntu; .ci/run does this) or put a PostgreSQL bin folder on PATH", pytrace=False)


def as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run ``cmd`` as the unprivileged ``postgres`` user."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root, the service tests start PostgreSQL as the user 'postgres', which does not exist: "
                    "`apt-get install -y postgresql` creates it (or run the tests as a normal user)", pytrace=False)
    # runuser lives in /usr/sbin (util-linux), which a CI environment's PATH may leave out
    runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or "runuser"
    return [runuser, "-u", "postgres", "--", *cmd]


@dataclass(frozen=True)
class Postgres:
    """A running cluster; ``url(db)`` is an SQLAlchemy URL of database ``db`` (created by :meth:`create_database`)."""

    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database ``name``; returns its URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # autocommit: CREATE DATABASE cannot run in a transaction
        return self.url(name)


@contextmanager
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary folder on 127.0.0.1 and a free port, trust auth; stopped and deleted after."""
    data_root = Path(tempfile.mkdtemp(prefix="segzoo-pg-"))
    data = data_root / "data"
    user = "segzoo"
    if os.geteuid() == 0:
        shutil.chown(data_root, "postgres", "postgres")
    port = free_port()
    subprocess.run(as_postgres([pg_tool("initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True, timeout=START_TIMEOUT_S)
    options = f"-h 127.0.0.1 -p {port} -k {data_root} -c fsync=off -c max_connections=100"
    pg_ctl = pg_tool("pg_ctl")
    subprocess.run(
        as_postgres(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(data_root / "log"), "-w", "-t", str(START_TIMEOUT_S), "start"]
        ),
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT_S + 10,
    )
    try:
        yield Postgres(port, user)
    finally:
        subprocess.run(
            as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True, timeout=60, check=False
        )
        shutil.rmtree(data_root, ignore_errors=True)


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: ``uri`` is its tracking URI, ``artifacts`` the folder it stores artifacts in."""

    uri: str
    artifacts: Path
    log: Path


@contextmanager
def mlflow_server(backend_store_uri: str, workdir: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on ``backend_store_uri`` with proxied artifacts in ``workdir/artifacts``, on 127.0.0.1."""
    port = free_port()
    artifacts = workdir / "artifacts"
    log = workdir / "mlflow-server.log"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{uri}/health", server, log)
        yield MlflowServer(uri, artifacts, log)
    finally:
        stop(server)


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the service exited ({process.returncode}) before answering {url}:\n{log.read_text()[-3000:]}", pytrace=False
            )
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    stop(process)
    pytest.fail(f"no answer from {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}", pytrace=False)


def stop(process: subprocess.Popen, grace: float = 5) -> None:
    """SIGTERM the process group ``process`` leads (a server and its workers), SIGKILL it after ``grace`` seconds."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, 15)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(grace)
