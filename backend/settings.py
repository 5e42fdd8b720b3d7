"""Environment that keeps Prefect offline and quiet, and where plan-executor keeps its state."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

HOME_ENV = "PLAN_EXECUTOR_HOME"
PORT_ENV = "PLAN_EXECUTOR_PORT"
HOST_ENV = "PLAN_EXECUTOR_HOST"
DEFAULT_PORT = 4200
DEFAULT_HOST = "127.0.0.1"
CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"


def offline_env() -> dict[str, str]:
    """Variables for every Prefect process we start or run in (client and server).

    Telemetry is off on both sides (offline it only logs errors). The console is quieted through
    the console *handler* level: `PREFECT_LOGGING_LEVEL` would also drop the INFO records that
    reach the API and the UI. A console level the user chose is kept.
    """
    return {
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        CONSOLE_LEVEL_ENV: os.environ.get(CONSOLE_LEVEL_ENV, "WARNING"),
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        # a 2-core box needs more than the default 20 s to boot an ephemeral server
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }


def plan_executor_home() -> Path:
    """`$PLAN_EXECUTOR_HOME`, else `~/.plan-executor`: server data, logs and pid files."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".plan-executor"


def configured_port() -> int:
    """`$PLAN_EXECUTOR_PORT`, else 4200."""
    raw = os.environ.get(PORT_ENV)
    if not raw:
        return DEFAULT_PORT
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{PORT_ENV}={raw!r} is not a port number") from None


def configured_host() -> str:
    """`$PLAN_EXECUTOR_HOST`, else 127.0.0.1 (binding elsewhere must be asked for explicitly)."""
    return os.environ.get(HOST_ENV) or DEFAULT_HOST


@contextlib.contextmanager
def temporary_environ(updates: dict[str, str | None]) -> Iterator[None]:
    """Set (str) or remove (None) variables for the duration, then restore them."""
    saved = {name: os.environ.get(name) for name in updates}
    try:
        for name, value in updates.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
