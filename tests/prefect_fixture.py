"""pytest plugin: one PostgreSQL-backed Prefect server for the whole test session.

Request `prefect_api_url` by name (it is not autouse, so tests that need no Prefect server pay
nothing). The first test that asks starts a private PostgreSQL cluster and `prefect server start`
on a free port, each with its own PREFECT_HOME and data dir in a temporary directory (about 7 s);
every later test reuses them. PREFECT_API_URL is set in Prefect's in-process settings and in
os.environ (for subprocesses such as `plan-executor run`). At the end of the session the queued
Prefect logs and events of this process are flushed before the server and PostgreSQL stop:
otherwise the log worker retries against the dead server and pytest hangs about a minute at exit.

Unlike `prefect_test_harness` (SQLite), concurrent subflows here run for real, without the
`database is locked` backoff.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tasks.backend.server import (
    ServerConfig,
    ServerInfo,
    drain_client_workers,
    start_server,
    stop_server,
)
from tasks.backend.settings import offline_env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """The session's Prefect server (pids, log path); most tests want `prefect_api_url`."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    root = tmp_path_factory.mktemp("prefect-backend")
    config = ServerConfig(home=root / "home", port=free_port())
    client_home = root / "client-prefect-home"
    client_home.mkdir()
    info = start_server(config, timeout_s=120)
    env = {**offline_env(), "PREFECT_API_URL": info.api_url, "PREFECT_HOME": str(client_home)}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with temporary_settings(updates={PREFECT_API_URL: info.api_url, PREFECT_HOME: client_home}):
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


@pytest.fixture(scope="session")
def prefect_api_url(prefect_server: ServerInfo) -> str:
    """PREFECT_API_URL of the session's PostgreSQL-backed Prefect server (already applied)."""
    return prefect_server.api_url
