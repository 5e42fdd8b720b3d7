"""pytest plugin: one PostgreSQL-backed Prefect server for the whole test session.

Request `prefect_api_url` by name (it is not autouse, so tests that need no Prefect server pay
nothing). The first test that asks starts a private PostgreSQL cluster and `prefect server start`
on a free port, each with its own PREFECT_HOME and data dir in a temporary directory (about 7 s);
every later test reuses them. PREFECT_API_URL and PREFECT_API_AUTH_STRING (the server requires
its home's credential, as every plan-executor server does) are set in Prefect's in-process
settings and in os.environ (for subprocesses such as `plan-executor run`). At the end of the session the queued
Prefect logs and events of this process are flushed before the server and PostgreSQL stop:
otherwise the log worker retries against the dead server and pytest hangs about a minute at exit.

Unlike `prefect_test_harness` (SQLite), concurrent subflows here run for real, without the
`database is locked` backoff.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from backend import postgres
from backend.server import (
    ServerConfig,
    ServerInfo,
    drain_client_workers,
    start_server,
    stop_server,
)
from backend.settings import offline_env

TEST_DIR_PREFIX = "plan-executor-test-"
OWNER_FILE = "owner.pid"


def private_tmp_dir(prefix: str) -> Path:
    """A fresh directory directly under /tmp, not under pytest's base temp, owned by this process.

    As root, PostgreSQL runs as an unprivileged user that must traverse the path to its data
    dir; every pytest session (another one may start at any time on a shared box) resets
    /tmp/pytest-of-root to mode 0700, which would cut a running cluster's tools off.
    """
    assert prefix.startswith(TEST_DIR_PREFIX)
    sweep_abandoned_test_dirs()
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return path


def sweep_abandoned_test_dirs() -> None:
    """Stop the servers and clusters of test sessions that were killed before their teardown
    (their owner process is gone), and delete their directories."""
    for path in Path(tempfile.gettempdir()).glob(f"{TEST_DIR_PREFIX}*"):
        try:
            owner = int((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if psutil.pid_exists(owner):
            continue
        for home in [path / "home", path / "postgres"]:
            if (home / "server.json").exists():
                stop_server(ServerConfig(home=home))
            elif (home / "PG_VERSION").exists():
                postgres.stop_cluster(home)
        shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[ServerInfo]:
    """The session's Prefect server (pids, log path); most tests want `prefect_api_url`."""
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_HOME,
        temporary_settings,
    )

    root = private_tmp_dir(f"{TEST_DIR_PREFIX}prefect-")
    config = ServerConfig(home=root / "home", port=free_port())
    client_home = root / "client-prefect-home"
    client_home.mkdir()
    info = start_server(config, timeout_s=120)
    client = info.client_env()
    env = {**offline_env(), **client, "PREFECT_HOME": str(client_home)}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    settings = {
        PREFECT_API_URL: info.api_url,
        PREFECT_API_AUTH_STRING: client["PREFECT_API_AUTH_STRING"],
        PREFECT_HOME: client_home,
    }
    try:
        with temporary_settings(updates=settings):
            try:
                yield info
            finally:
                drain_client_workers()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_server(config)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api_url(prefect_server: ServerInfo) -> str:
    """PREFECT_API_URL of the session's PostgreSQL-backed Prefect server (already applied)."""
    return prefect_server.api_url


def api_auth() -> tuple[str, str] | None:
    """Basic auth for a raw HTTP request to the session's server (httpx `auth=`): the server
    requires the credential the fixture put in PREFECT_API_AUTH_STRING."""
    credential = os.environ.get("PREFECT_API_AUTH_STRING")
    if not credential:
        return None
    user, _, password = credential.partition(":")
    return user, password
