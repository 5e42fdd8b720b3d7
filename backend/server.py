"""The Prefect server lifecycle: start | stop | status, over the private PostgreSQL cluster.

Everything lives under the plan-executor home (`ServerConfig.home`):

    postgres/         the cluster's data directory (also its Unix socket)
    prefect/          PREFECT_HOME of the server process
    logs/server.log   the Prefect server's output; logs/postgres.log the cluster's
    server.json       what is running: pids (with their start times), host, port
    server.pid        the Prefect server's pid, for humans and scripts
    server.lock       serialises start/stop between processes
    leases/<pid>-<n>  runs using a server that was started for a run only
    api-auth.credential  the API credential (0600): the server requires it on every request
                      but GET /api/health and /api/ready (`backend.credentials`)
    postgres.credential  the PostgreSQL password (0600)

`prefect server start` is spawned with `subprocess.Popen`, not through `tasks.shell`: it is a
long-lived daemon with a pid file, not a command run to completion. It gets its own session so
that one signal to its process group reaches anything it forks.

A server started by `plan-executor server start` is persistent. One that `backend()` starts for
a run is not: it stops when the last run holding a lease on it ends. If a run is SIGKILLed, the
next start or run finds its server through server.json: a healthy one is reused, anything else
(dead pid, pid reused by another program, unhealthy server, dead postgres) is cleaned and
replaced. So is a running server that answers the API without the credential (one started
by an older version) or refuses it (the credential file was replaced).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.client
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
from pydantic import BaseModel

from backend import postgres
from backend.credentials import api_auth_path, ensure_api_auth, read_api_auth
from backend.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    HOST_ENV,
    PORT_ENV,
    configured_host,
    configured_port,
    offline_env,
    plan_executor_home,
)
from plan_parser.errors import PlanExecutorError

STOP_GRACE_S = 10.0
HEALTH_ATTEMPTS = 3
# Settings the server must not inherit from the caller: they would point it (or its UI) at
# another server or database.
_FOREIGN_SETTINGS = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_PROFILE",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_SERVER_API_AUTH_STRING",
)
AUTH_PROBE_PATH = "/api/admin/version"
"""What the UI itself asks to learn whether its login holds: any API route but the health
checks answers 401 without the credential."""


class ServerConfig(BaseModel):
    home: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @classmethod
    def from_env(
        cls, home: Path | None = None, host: str | None = None, port: int | None = None
    ) -> ServerConfig:
        """Explicit values, else PLAN_EXECUTOR_HOME / PLAN_EXECUTOR_HOST / PLAN_EXECUTOR_PORT."""
        return cls(
            home=home or plan_executor_home(),
            host=host or configured_host(),
            port=port or configured_port(),
        )


class ServerInfo(BaseModel):
    url: str
    """The UI."""
    api_url: str
    """What PREFECT_API_URL should be set to."""
    server_pid: int
    postgres_pid: int
    log_path: Path
    reused: bool
    auth_file: Path
    """The 0600 file with the API credential (PREFECT_API_AUTH_STRING); never the value."""

    def client_env(self) -> dict[str, str]:
        """PREFECT_API_URL and PREFECT_API_AUTH_STRING for a client of this server."""
        env = {"PREFECT_API_URL": self.api_url}
        auth = read_api_auth(self.auth_file.parent)
        if auth:
            env["PREFECT_API_AUTH_STRING"] = auth
        return env


class ServerError(PlanExecutorError, RuntimeError):
    """The server could not be started."""


class PortInUseError(ServerError):
    """Something that is not our server holds the port."""


class _State(BaseModel):
    host: str
    port: int
    server_pid: int
    server_create_time: float
    postgres_pid: int
    log_path: Path
    persistent: bool = True


class _Paths:
    def __init__(self, home: Path) -> None:
        self.home = home.expanduser().resolve()
        self.pgdata = self.home / "postgres"
        self.prefect_home = self.home / "prefect"
        self.server_log = self.home / "logs" / "server.log"
        self.postgres_log = self.home / "logs" / "postgres.log"
        self.state = self.home / "server.json"
        self.pid_file = self.home / "server.pid"
        self.lock = self.home / "server.lock"
        self.leases = self.home / "leases"
        self.api_auth = api_auth_path(self.home)


# Servers this process spawned, so that stopping one also reaps it (no zombie left behind).
_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}


@contextlib.contextmanager
def _locked(paths: _Paths) -> Iterator[None]:
    paths.home.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def connect_host(host: str) -> str:
    """Where a local client reaches a server bound to `host` (wildcards mean loopback)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _base_url(host: str, port: int) -> str:
    reach = connect_host(host)
    return f"http://[{reach}]:{port}" if ":" in reach else f"http://{reach}:{port}"


def api_status(host: str, port: int, auth: str | None, timeout_s: float = 5.0) -> int | None:
    """The HTTP status of an API request (the UI's login check), with `auth` or without any
    credential; None when nothing answers."""
    connection = http.client.HTTPConnection(connect_host(host), port, timeout=timeout_s)
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    try:
        connection.request("GET", AUTH_PROBE_PATH, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _enforces(state: _State, auth: str) -> bool:
    """The server refuses requests without the credential and accepts `auth`."""
    return (
        api_status(state.host, state.port, None) == 401
        and api_status(state.host, state.port, auth) == 200
    )


def _healthy(host: str, port: int, timeout_s: float = 3.0) -> bool:
    connection = http.client.HTTPConnection(connect_host(host), port, timeout=timeout_s)
    try:
        connection.request("GET", "/api/health")
        response = connection.getresponse()
        return response.status == 200 and response.read().strip() == b"true"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _read_state(paths: _Paths) -> _State | None:
    try:
        return _State.model_validate_json(paths.state.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_state(paths: _Paths, state: _State) -> None:
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(paths.state)
    paths.pid_file.write_text(f"{state.server_pid}\n")


def _forget_state(paths: _Paths) -> None:
    for path in (paths.state, paths.pid_file):
        path.unlink(missing_ok=True)


def _server_process(state: _State) -> psutil.Process | None:
    """The recorded server process if it is still that process (not a reused pid or a zombie)."""
    try:
        proc = psutil.Process(state.server_pid)
        if abs(proc.create_time() - state.server_create_time) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _info(paths: _Paths, state: _State, *, reused: bool) -> ServerInfo:
    url = _base_url(state.host, state.port)
    return ServerInfo(
        url=url,
        api_url=f"{url}/api",
        server_pid=state.server_pid,
        postgres_pid=state.postgres_pid,
        log_path=state.log_path,
        reused=reused,
        auth_file=paths.api_auth,
    )


def _live_state(paths: _Paths) -> _State | None:
    """The recorded server if it runs, answers its health check and its database runs."""
    state = _read_state(paths)
    if state is None or _server_process(state) is None:
        return None
    cluster = postgres.cluster_status(paths.pgdata)
    if cluster is None or cluster.pid != state.postgres_pid:
        return None
    # A loaded box can make a healthy server slow to answer: replacing it would be worse than
    # waiting, so only several failed checks in a row count as unhealthy.
    for attempt in range(HEALTH_ATTEMPTS):
        if _healthy(state.host, state.port, timeout_s=5.0):
            return state
        if attempt + 1 < HEALTH_ATTEMPTS:
            time.sleep(1.0)
    return None


def _terminate_server(state: _State) -> bool:
    """SIGTERM the server's process group, SIGKILL it after a grace period; True if it ran."""
    proc = _server_process(state)
    if proc is None:
        _reap(state.server_pid)
        return False
    family = [proc, *proc.children(recursive=True)]
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.server_pid, sig)
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                member.send_signal(sig)
        _reap(state.server_pid, wait_s)
        _, alive = psutil.wait_procs(family, timeout=wait_s)
        if not alive:
            break
    _reap(state.server_pid)
    return True


def _reap(pid: int, timeout_s: float = 0.0) -> None:
    child = _SPAWNED.get(pid)
    if child is None:
        return
    try:
        child.wait(timeout=max(timeout_s, 0.01))
    except subprocess.TimeoutExpired:
        return
    del _SPAWNED[pid]


def _check_port(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServerError(f"cannot bind to host {host!r}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # the same option uvicorn sets, so a port in TIME_WAIT does not count as taken
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            raise PortInUseError(
                f"port {port} on {host} is already in use by another program. Choose another "
                f"port: `plan-executor server start --port <N>` or {PORT_ENV}=<N> (and "
                f"{HOST_ENV} for the address)."
            ) from None


def port_in_use(host: str, port: int) -> bool:
    """Whether another program holds ``port`` on ``host`` (what `start` refuses with exit 2)."""
    try:
        _check_port(host, port)
    except PortInUseError:
        return True
    return False


def free_port(host: str) -> int:
    """A port that is free on ``host`` now (the kernel's choice; taken again only by a race)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, 0, socket.AF_UNSPEC, socket.SOCK_STREAM
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.bind(address)
        return int(probe.getsockname()[1])


def _server_env(
    config: ServerConfig, paths: _Paths, cluster: postgres.PostgresCluster
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    env.update(offline_env())
    auth = ensure_api_auth(paths.home)
    env.update(
        {
            "PREFECT_HOME": str(paths.prefect_home),
            # carries the PostgreSQL password: only this environment holds it
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": cluster.sqlalchemy_url(),
            # every API request but the health checks needs it (the UI asks for it at login)
            "PREFECT_SERVER_API_AUTH_STRING": auth,
            # the server's own clients (its services) talk to it as any client does
            "PREFECT_API_AUTH_STRING": auth,
            # the UI derives its API address from these, not from the --host/--port flags
            "PREFECT_SERVER_API_HOST": config.host,
            "PREFECT_SERVER_API_PORT": str(config.port),
            # this console is the server log file: keep its INFO lines
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",
        }
    )
    if config.host in ("0.0.0.0", "::") and "PREFECT_UI_API_URL" not in env:
        # a browser elsewhere cannot call 0.0.0.0: give the UI this machine's name
        env["PREFECT_UI_API_URL"] = f"http://{socket.gethostname()}:{config.port}/api"
    return env


def _spawn(config: ServerConfig, paths: _Paths, cluster: postgres.PostgresCluster) -> _State:
    paths.prefect_home.mkdir(parents=True, exist_ok=True)
    paths.server_log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "prefect", "server", "start"]
    argv += ["--host", config.host, "--port", str(config.port)]
    with paths.server_log.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(argv)}\n".encode())
        log.flush()
        child = subprocess.Popen(  # a daemon, see the module docstring
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_server_env(config, paths, cluster),
            cwd=paths.home,
            start_new_session=True,
            close_fds=True,
        )
    _SPAWNED[child.pid] = child
    return _State(
        host=config.host,
        port=config.port,
        server_pid=child.pid,
        server_create_time=psutil.Process(child.pid).create_time(),
        postgres_pid=cluster.pid,
        log_path=paths.server_log,
    )


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_healthy(state: _State, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _healthy(state.host, state.port, timeout_s=2.0):
            return
        child = _SPAWNED.get(state.server_pid)
        if child is not None and child.poll() is not None:
            raise ServerError(
                f"the Prefect server exited with code {child.returncode} during start-up; "
                f"{state.log_path} ends with:\n{_log_tail(state.log_path)}"
            )
        time.sleep(0.25)
    _terminate_server(state)
    raise ServerError(
        f"the Prefect server was not healthy after {timeout_s:.0f} s and was stopped; "
        f"{state.log_path} ends with:\n{_log_tail(state.log_path)}"
    )


def _start_locked(
    config: ServerConfig, paths: _Paths, timeout_s: float, persistent: bool
) -> ServerInfo:
    live = _live_state(paths)
    if live is not None and not _enforces(live, ensure_api_auth(paths.home)):
        # started by an older version without a credential, or its credential file was
        # replaced: either way it must not go on serving, so it is replaced like a dead one
        _terminate_server(live)
        live = None
    if live is not None:
        if persistent and not live.persistent:
            live.persistent = True  # `server start` keeps a run's server running afterwards
            _write_state(paths, live)
        return _info(paths, live, reused=True)
    stale = _read_state(paths)
    if stale is not None:
        _terminate_server(stale)  # unhealthy, or its database died: replace it
        _forget_state(paths)
    _check_port(config.host, config.port)
    started_at = time.monotonic()
    cluster = postgres.ensure_cluster(paths.pgdata, paths.postgres_log)
    state = _spawn(config, paths, cluster)
    state.persistent = persistent
    _write_state(paths, state)
    try:
        _wait_healthy(state, max(1.0, timeout_s - (time.monotonic() - started_at)))
    except ServerError:
        _forget_state(paths)
        postgres.stop_cluster(paths.pgdata)
        raise
    return _info(paths, state, reused=False)


def start_server(
    config: ServerConfig, *, timeout_s: float = 90, persistent: bool = True
) -> ServerInfo:
    """Start the server and its database in the background, or report the running one.

    A running healthy server of this home is reused (`reused=True`), whatever port `config`
    asks for. Leftovers of a killed one are cleaned first. `persistent=False` marks a server
    started for one run (see `backend`).
    """
    paths = _Paths(config.home)
    with _locked(paths):
        return _start_locked(config, paths, timeout_s, persistent)


def _stop_locked(paths: _Paths) -> bool:
    stopped = False
    state = _read_state(paths)
    if state is not None:
        stopped = _terminate_server(state)
    stopped = postgres.stop_cluster(paths.pgdata) or stopped
    _forget_state(paths)
    for lease in paths.leases.glob("*") if paths.leases.is_dir() else []:
        lease.unlink(missing_ok=True)
    return stopped


def stop_server(config: ServerConfig) -> bool:
    """Stop the Prefect server, then PostgreSQL; True if something was running."""
    paths = _Paths(config.home)
    with _locked(paths):
        return _stop_locked(paths)


def server_status(config: ServerConfig) -> ServerInfo | None:
    """The running, healthy server of this home, or None."""
    paths = _Paths(config.home)
    live = _live_state(paths)
    return _info(paths, live, reused=True) if live is not None else None


def recorded_server(config: ServerConfig) -> ServerInfo | None:
    """What server.json records, if its server process is still alive (healthy or not)."""
    paths = _Paths(config.home)
    state = _read_state(paths)
    if state is None or _server_process(state) is None:
        return None
    return _info(paths, state, reused=True)


# -- leases: runs sharing a server that was started for a run -------------------------------


def _live_leases(paths: _Paths) -> list[int]:
    holders = []
    for lease in paths.leases.glob("*") if paths.leases.is_dir() else []:
        try:
            pid = int(lease.name.split("-", 1)[0])
        except ValueError:
            continue
        if psutil.pid_exists(pid):
            holders.append(pid)
        else:
            lease.unlink(missing_ok=True)  # its run was killed
    return holders


def acquire_for_run(
    config: ServerConfig, *, timeout_s: float = 90
) -> tuple[ServerInfo, str | None]:
    """A server for one run: the running one, or a new one that stops with the last run.

    Returns the server and, for a server started for runs (by this run or by one that was
    killed), the lease this run must hand to `release_for_run`.
    """
    paths = _Paths(config.home)
    with _locked(paths):
        info = _start_locked(config, paths, timeout_s, persistent=False)
        state = _read_state(paths)
        if state is None or state.persistent:
            return info, None
        paths.leases.mkdir(exist_ok=True)
        lease = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        (paths.leases / lease).touch()
        return info, lease


def release_for_run(config: ServerConfig, lease: str) -> bool:
    """Drop this run's lease; stop the server if it was started for runs and none is left.

    Call `drain_client_workers()` first, while Prefect still points at this server.

    Returns True if the server was stopped.
    """
    paths = _Paths(config.home)
    with _locked(paths):
        (paths.leases / lease).unlink(missing_ok=True)
        state = _read_state(paths)
        if state is None or state.persistent or _live_leases(paths):
            return False
        return _stop_locked(paths)


def drain_client_workers(timeout_s: float = 30) -> None:
    """Flush this process's queued Prefect logs and events before its server goes away.

    Without this, the log worker retries against a dead server at interpreter exit and the
    process hangs for about a minute (65 s measured, on Prefect 3.8.8). Only workers that
    exist are drained: creating one here would start a client (and maybe an ephemeral server).
    """
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for service in (APILogWorker, EventsWorker):
            pending = service.drain_all(timeout=timeout_s, at_exit=False)
            if inspect.isawaitable(pending):
                await pending

    run_coro_as_sync(drain())
