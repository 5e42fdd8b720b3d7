"""Suite-wide guards: no API key, no telemetry, and no network beyond this machine's loopback."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

# the session's PostgreSQL-backed Prefect server: request `prefect_api_url` by name
pytest_plugins = ["tests.prefect_fixture"]

for _name in [n for n in os.environ if n.startswith("ANTHROPIC_")]:
    del os.environ[_name]
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: object) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _allowed(address):
        raise ConnectionRefusedError(f"tests may not reach {address!r}: loopback only")
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _allowed(address):
        raise ConnectionRefusedError(f"tests may not reach {address!r}: loopback only")
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def shared_dir():
    """`../shared` beside the repository (read-only test data: plans, agents, golden facts)."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    path = Path(os.environ.get("PLAN_EXECUTOR_SHARED", here.parent / "shared"))
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path
