"""One real `prefect server start` (SQLite, own PREFECT_HOME, 127.0.0.1, free port) for tests/deploy.

The in-process Prefect client points at it for the session; the log and event workers are drained
before the server stops (otherwise the process hangs for a minute at exit, notes §7.2).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy._procs import Background, start_server


@dataclass
class ServerInfo:
    home: Path
    api_url: str
    process: Background


@pytest.fixture(scope="session")
def deploy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    home = tmp_path_factory.mktemp("prefect-home")
    server, api_url = start_server(home)
    try:
        yield ServerInfo(home=home, api_url=api_url, process=server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prefect_client_env(deploy_server: ServerInfo) -> Iterator[ServerInfo]:
    """Point this process's Prefect client (flows run in tests, get_client) at the server."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_LOGGING_TO_API_BATCH_INTERVAL,
        temporary_settings,
    )

    updates = {
        PREFECT_API_URL: deploy_server.api_url,
        PREFECT_LOCAL_STORAGE_PATH: deploy_server.home / "local-storage",
        PREFECT_LOGGING_TO_API_BATCH_INTERVAL: 0.3,
    }
    with temporary_settings(updates=updates):
        try:
            yield deploy_server
        finally:
            _drain_workers()


def _drain_workers() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for pending in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
            if inspect.isawaitable(pending):
                await pending

    run_coro_as_sync(drain())
