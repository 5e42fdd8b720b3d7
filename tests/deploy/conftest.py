"""tests/deploy run against the session's PostgreSQL-backed `prefect server start`
(`prefect_server` / `prefect_api_url` from tests/prefect_fixture.py); CLI processes started here
(deploy, worker) get their own PREFECT_HOME."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class ServerInfo:
    api_url: str
    cli_home: Path
    """PREFECT_HOME for the Prefect CLI processes these tests start."""


@pytest.fixture(scope="session")
def prefect_client_env(
    prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory
) -> ServerInfo:
    """The server's API URL (this process's Prefect client already points at it)."""
    return ServerInfo(api_url=prefect_api_url, cli_home=tmp_path_factory.mktemp("prefect-cli-home"))
